rule code_sft:
    input:
        upstream("code_sft"),
    output:
        marker=marker("code_sft"),
    log:
        stage_log("code_sft"),
    resources:
        **stage_resources("code_sft"),
    params:
        args=QWEN_ARGS,
    shell:
        "qwen-hpc code_sft {params.args} > {log} 2>&1"
