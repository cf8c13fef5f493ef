rule reward_model:
    input:
        upstream("reward_model"),
    output:
        marker=marker("reward_model"),
    log:
        stage_log("reward_model"),
    resources:
        **stage_resources("reward_model"),
    params:
        config_hash=CONFIG_HASHES["reward_model"],
    shell:
        shell_command("reward_model", QWEN_ARGS)
