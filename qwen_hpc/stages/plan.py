"""What a workflow needs to know about a config before running anything: each stage's config hash.

Snakemake reruns a rule whose params changed; the rules take this hash as their only param, so that only
a change to what decides a stage's output (never a runtime knob) reruns it.
"""

from __future__ import annotations

import shlex

from qwen_hpc.config.compose import load
from qwen_hpc.stages.base import config_hash
from qwen_hpc.stages.registry import COMMAND_ALIASES, STAGE_NAMES, get_stage

# export_hf / import_hf are spelled export-hf / import-hf as commands
COMMAND_NAMES = {stage: command for command, stage in COMMAND_ALIASES.items() if stage in ("export_hf", "import_hf")}


def config_hashes(args: str) -> dict[str, str]:
    """{stage: config hash} for the overrides a workflow passes to every `qwen-hpc <stage>` command."""
    plain, _ = load(shlex.split(args))
    return {name: config_hash(get_stage(name), plain) for name in STAGE_NAMES}


def shell_command(stage: str, args: str) -> str:
    """A rule's shell command, `qwen-hpc <stage> <args> > {log} 2>&1`, with the braces of `args` escaped from
    Snakemake's formatting (the arguments are command text, not params: changing them alone reruns nothing)."""
    name = COMMAND_NAMES.get(stage, stage)
    escaped = args.replace("{", "{{").replace("}", "}}")
    return f"qwen-hpc {name} {escaped} > {{log}} 2>&1"
