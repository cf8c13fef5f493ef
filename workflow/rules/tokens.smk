rule tokens:
    input:
        upstream("tokens"),
    output:
        marker=marker("tokens"),
    log:
        stage_log("tokens"),
    params:
        config_hash=CONFIG_HASHES["tokens"],
    shell:
        shell_command("tokens", QWEN_ARGS)
