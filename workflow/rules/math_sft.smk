rule math_sft:
    input:
        upstream("math_sft"),
    output:
        marker=marker("math_sft"),
    log:
        stage_log("math_sft"),
    resources:
        **stage_resources("math_sft"),
    params:
        args=QWEN_ARGS,
    shell:
        "qwen-hpc math_sft {params.args} > {log} 2>&1"
