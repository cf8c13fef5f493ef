rule evaluate:
    input:
        upstream("evaluate"),
    output:
        marker=marker("evaluate"),
    log:
        stage_log("evaluate"),
    resources:
        **stage_resources("evaluate"),
    params:
        config_hash=CONFIG_HASHES["evaluate"],
    shell:
        shell_command("evaluate", QWEN_ARGS)
