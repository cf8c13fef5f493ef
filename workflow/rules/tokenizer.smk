rule tokenizer:
    input:
        upstream("tokenizer"),
    output:
        marker=marker("tokenizer"),
    log:
        stage_log("tokenizer"),
    params:
        args=QWEN_ARGS,
    shell:
        "qwen-hpc tokenizer {params.args} > {log} 2>&1"
