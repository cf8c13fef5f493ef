rule sft:
    input:
        rules.pretrain.output.marker,
        rules.tokenizer.output.marker,
    output:
        marker=marker("sft"),
    log:
        stage_log("sft"),
    params:
        args=QWEN_ARGS,
    shell:
        "qwen-hpc sft {params.args} > {log} 2>&1"
