rule export_hf:
    input:
        rules.pretrain.output.marker,
        rules.tokenizer.output.marker,
    output:
        marker=marker("export_hf"),
    log:
        stage_log("export_hf"),
    params:
        args=QWEN_ARGS,
    shell:
        "qwen-hpc export-hf {params.args} > {log} 2>&1"
