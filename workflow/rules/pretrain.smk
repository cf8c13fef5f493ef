rule pretrain:
    input:
        upstream("pretrain"),
    output:
        marker=marker("pretrain"),
    log:
        stage_log("pretrain"),
    resources:
        **stage_resources("pretrain"),
    params:
        config_hash=CONFIG_HASHES["pretrain"],
    shell:
        shell_command("pretrain", QWEN_ARGS)
