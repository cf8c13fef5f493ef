rule data:
    input:
        upstream("data"),
    output:
        marker=marker("data"),
    log:
        stage_log("data"),
    params:
        args=QWEN_ARGS,
    shell:
        "qwen-hpc data {params.args} > {log} 2>&1"
