rule evaluate:
    input:
        upstream("evaluate"),
    output:
        marker=marker("evaluate"),
    log:
        stage_log("evaluate"),
    params:
        args=QWEN_ARGS,
    shell:
        "qwen-hpc evaluate {params.args} > {log} 2>&1"
