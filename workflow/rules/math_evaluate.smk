rule math_evaluate:
    input:
        upstream("math_evaluate"),
    output:
        marker=marker("math_evaluate"),
    log:
        stage_log("math_evaluate"),
    resources:
        **stage_resources("math_evaluate"),
    params:
        config_hash=CONFIG_HASHES["math_evaluate"],
    shell:
        shell_command("math_evaluate", QWEN_ARGS)
