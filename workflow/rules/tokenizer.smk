rule tokenizer:
    input:
        upstream("tokenizer"),
    output:
        marker=marker("tokenizer"),
    log:
        stage_log("tokenizer"),
    resources:
        **stage_resources("tokenizer"),
    params:
        config_hash=CONFIG_HASHES["tokenizer"],
    shell:
        shell_command("tokenizer", QWEN_ARGS)
