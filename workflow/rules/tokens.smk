rule tokens:
    input:
        upstream("tokens"),
    output:
        marker=marker("tokens"),
    log:
        stage_log("tokens"),
    params:
        args=QWEN_ARGS,
    shell:
        "qwen-hpc tokens {params.args} > {log} 2>&1"
