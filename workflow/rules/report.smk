rule report:
    input:
        rules.data.output.marker,
        rules.tokenizer.output.marker,
        rules.tokens.output.marker,
        rules.pretrain.output.marker,
        rules.evaluate.output.marker,
        rules.long_context.output.marker,
        rules.sft.output.marker,
    output:
        marker=marker("report"),
    log:
        stage_log("report"),
    params:
        args=QWEN_ARGS,
    shell:
        "qwen-hpc report {params.args} > {log} 2>&1"
