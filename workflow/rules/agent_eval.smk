rule agent_eval:
    input:
        upstream("agent_eval"),
    output:
        marker=marker("agent_eval"),
    log:
        stage_log("agent_eval"),
    resources:
        **stage_resources("agent_eval"),
    params:
        config_hash=CONFIG_HASHES["agent_eval"],
    shell:
        shell_command("agent_eval", QWEN_ARGS)
