rule reward_model_pmp:
    input:
        rules.sft.output.marker,
        rules.tokenizer.output.marker,
    output:
        marker=marker("reward_model_pmp"),
    log:
        stage_log("reward_model_pmp"),
    params:
        args=QWEN_ARGS,
    shell:
        "qwen-hpc reward-model-pmp {params.args} > {log} 2>&1"
