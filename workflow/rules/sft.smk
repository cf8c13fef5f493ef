rule sft:
    input:
        upstream("sft"),
    output:
        marker=marker("sft"),
    log:
        stage_log("sft"),
    resources:
        **stage_resources("sft"),
    params:
        config_hash=CONFIG_HASHES["sft"],
    shell:
        shell_command("sft", QWEN_ARGS)
