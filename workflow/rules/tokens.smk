rule tokens:
    input:
        rules.data.output.marker,
        rules.tokenizer.output.marker,
    output:
        marker=marker("tokens"),
    log:
        stage_log("tokens"),
    params:
        args=QWEN_ARGS,
    shell:
        "qwen-hpc tokens {params.args} > {log} 2>&1"
