rule export_hf:
    input:
        upstream("export_hf"),
    output:
        marker=marker("export_hf"),
    log:
        stage_log("export_hf"),
    resources:
        **stage_resources("export_hf"),
    params:
        config_hash=CONFIG_HASHES["export_hf"],
    shell:
        shell_command("export_hf", QWEN_ARGS)
