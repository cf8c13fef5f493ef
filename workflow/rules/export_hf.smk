rule export_hf:
    input:
        upstream("export_hf"),
    output:
        marker=marker("export_hf"),
    log:
        stage_log("export_hf"),
    params:
        args=QWEN_ARGS,
    shell:
        "qwen-hpc export-hf {params.args} > {log} 2>&1"
