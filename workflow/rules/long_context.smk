rule long_context:
    input:
        upstream("long_context"),
    output:
        marker=marker("long_context"),
    log:
        stage_log("long_context"),
    resources:
        **stage_resources("long_context"),
    params:
        config_hash=CONFIG_HASHES["long_context"],
    shell:
        shell_command("long_context", QWEN_ARGS)
