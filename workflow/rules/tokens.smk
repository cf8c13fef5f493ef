rule tokens:
    input:
        upstream("tokens"),
    output:
        marker=marker("tokens"),
    log:
        stage_log("tokens"),
    resources:
        **stage_resources("tokens"),
    params:
        config_hash=CONFIG_HASHES["tokens"],
    shell:
        shell_command("tokens", QWEN_ARGS)
