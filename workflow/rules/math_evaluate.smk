rule math_evaluate:
    input:
        upstream("math_evaluate"),
    output:
        marker=marker("math_evaluate"),
    log:
        stage_log("math_evaluate"),
    resources:
        **stage_resources("math_evaluate"),
    params:
        args=QWEN_ARGS,
    shell:
        "qwen-hpc math_evaluate {params.args} > {log} 2>&1"
