rule report:
    input:
        upstream("report"),
    output:
        marker=marker("report"),
    log:
        stage_log("report"),
    params:
        args=QWEN_ARGS,
    shell:
        "qwen-hpc report {params.args} > {log} 2>&1"
