rule ppo:
    input:
        upstream("ppo"),
    output:
        marker=marker("ppo"),
    log:
        stage_log("ppo"),
    resources:
        **stage_resources("ppo"),
    params:
        config_hash=CONFIG_HASHES["ppo"],
    shell:
        shell_command("ppo", QWEN_ARGS)
