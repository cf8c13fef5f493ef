rule code_pretrain:
    input:
        upstream("code_pretrain"),
    output:
        marker=marker("code_pretrain"),
    log:
        stage_log("code_pretrain"),
    resources:
        **stage_resources("code_pretrain"),
    params:
        config_hash=CONFIG_HASHES["code_pretrain"],
    shell:
        shell_command("code_pretrain", QWEN_ARGS)
