rule reward_model:
    input:
        rules.reward_model_pmp.output.marker,
        rules.tokenizer.output.marker,
    output:
        marker=marker("reward_model"),
    log:
        stage_log("reward_model"),
    params:
        args=QWEN_ARGS,
    shell:
        "qwen-hpc reward-model {params.args} > {log} 2>&1"
