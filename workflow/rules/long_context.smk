rule long_context:
    input:
        rules.tokens.output.marker,
        rules.pretrain.output.marker,
    output:
        marker=marker("long_context"),
    log:
        stage_log("long_context"),
    params:
        args=QWEN_ARGS,
    shell:
        "qwen-hpc long_context {params.args} > {log} 2>&1"
