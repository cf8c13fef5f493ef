rule report:
    input:
        upstream("report"),
    output:
        marker=marker("report"),
    log:
        stage_log("report"),
    params:
        config_hash=CONFIG_HASHES["report"],
    shell:
        shell_command("report", QWEN_ARGS)
