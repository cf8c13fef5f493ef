rule long_context:
    input:
        upstream("long_context"),
    output:
        marker=marker("long_context"),
    log:
        stage_log("long_context"),
    params:
        args=QWEN_ARGS,
    shell:
        "qwen-hpc long_context {params.args} > {log} 2>&1"
