rule data:
    input:
        upstream("data"),
    output:
        marker=marker("data"),
    log:
        stage_log("data"),
    params:
        config_hash=CONFIG_HASHES["data"],
    shell:
        command("data")
