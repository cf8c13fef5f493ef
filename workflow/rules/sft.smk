rule sft:
    input:
        upstream("sft"),
    output:
        marker=marker("sft"),
    log:
        stage_log("sft"),
    params:
        args=QWEN_ARGS,
    shell:
        "qwen-hpc sft {params.args} > {log} 2>&1"
