# Not part of `rule all`: run it on demand, e.g.
#   snakemake --cores 2 import_hf --config overrides="import_hf.hf_path=/path/to/hf_folder"
rule import_hf:
    input:
        upstream("import_hf"),
    output:
        marker=marker("import_hf"),
    log:
        stage_log("import_hf"),
    resources:
        **stage_resources("import_hf"),
    params:
        config_hash=CONFIG_HASHES["import_hf"],
    shell:
        shell_command("import_hf", QWEN_ARGS)
