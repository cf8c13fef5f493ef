rule code_pretrain:
    input:
        upstream("code_pretrain"),
    output:
        marker=marker("code_pretrain"),
    log:
        stage_log("code_pretrain"),
    resources:
        **stage_resources("code_pretrain"),
    params:
        args=QWEN_ARGS,
    shell:
        "qwen-hpc code_pretrain {params.args} > {log} 2>&1"
