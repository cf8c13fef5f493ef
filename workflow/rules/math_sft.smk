rule math_sft:
    input:
        upstream("math_sft"),
    output:
        marker=marker("math_sft"),
    log:
        stage_log("math_sft"),
    resources:
        **stage_resources("math_sft"),
    params:
        config_hash=CONFIG_HASHES["math_sft"],
    shell:
        shell_command("math_sft", QWEN_ARGS)
