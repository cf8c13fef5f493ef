rule pretrain:
    input:
        upstream("pretrain"),
    output:
        marker=marker("pretrain"),
    log:
        stage_log("pretrain"),
    params:
        args=QWEN_ARGS,
    shell:
        "qwen-hpc pretrain {params.args} > {log} 2>&1"
