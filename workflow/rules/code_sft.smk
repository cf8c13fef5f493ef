rule code_sft:
    input:
        upstream("code_sft"),
    output:
        marker=marker("code_sft"),
    log:
        stage_log("code_sft"),
    resources:
        **stage_resources("code_sft"),
    params:
        config_hash=CONFIG_HASHES["code_sft"],
    shell:
        shell_command("code_sft", QWEN_ARGS)
