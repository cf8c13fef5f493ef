rule report:
    input:
        upstream("report"),
    output:
        marker=marker("report"),
    log:
        stage_log("report"),
    resources:
        **stage_resources("report"),
    params:
        config_hash=CONFIG_HASHES["report"],
    shell:
        shell_command("report", QWEN_ARGS)
