rule reward_model_pmp:
    input:
        upstream("reward_model_pmp"),
    output:
        marker=marker("reward_model_pmp"),
    log:
        stage_log("reward_model_pmp"),
    resources:
        **stage_resources("reward_model_pmp"),
    params:
        config_hash=CONFIG_HASHES["reward_model_pmp"],
    shell:
        shell_command("reward_model_pmp", QWEN_ARGS)
