rule data:
    input:
        upstream("data"),
    output:
        marker=marker("data"),
    log:
        stage_log("data"),
    resources:
        **stage_resources("data"),
    params:
        config_hash=CONFIG_HASHES["data"],
    shell:
        shell_command("data", QWEN_ARGS)
