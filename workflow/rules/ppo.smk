rule ppo:
    input:
        rules.reward_model.output.marker,
        rules.sft.output.marker,
        rules.tokenizer.output.marker,
    output:
        marker=marker("ppo"),
    log:
        stage_log("ppo"),
    params:
        args=QWEN_ARGS,
    shell:
        "qwen-hpc ppo {params.args} > {log} 2>&1"
