"""What a workflow needs to know about a config before running anything: which stages the whole DAG builds
and each stage's config hash.

Snakemake reruns a rule whose params changed; the rules take this hash as their only param, so that only
a change to what decides a stage's output (never a runtime knob) reruns it. `planned_stages` is the one
answer to "what does the whole recipe run for this experiment", shared by `rule all` (workflow/Snakefile)
and `qwen-hpc validate`, so the two never disagree about a branch left out for want of its data.
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

from qwen_hpc.config.compose import load
from qwen_hpc.stages.base import config_hash
from qwen_hpc.stages.registry import COMMAND_ALIASES, STAGE_NAMES, get_stage

if TYPE_CHECKING:
    from qwen_hpc.config.schema import QwenConfig

# which switch of `recipe` (config/experiment/*.yaml) plans each optional stage
BRANCH_SWITCH: dict[str, str] = {
    "code_pretrain": "code_qwen",
    "code_sft": "code_qwen",
    "math_sft": "math_qwen",
    "math_evaluate": "math_qwen",
    "reward_model": "rlhf",
    "ppo": "rlhf",
}
ON_DEMAND = ("import_hf",)  # stages that only run when asked for by name

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


def left_out_branches(cfg: QwenConfig) -> dict[str, list[str]]:
    """{recipe switch: the missing inputs} of the switched-on branches that `recipe.missing_data=skip` leaves
    out because a stage of theirs lacks input files (tiny's Math-Qwen branch without GSM8K under the data
    root). With `missing_data=fail` nothing is left out: the missing files fail that stage's checks instead."""
    from qwen_hpc.stages.preflight import input_problems

    if cfg.recipe.missing_data != "skip":
        return {}
    out: dict[str, list[str]] = {}
    for switch in dict.fromkeys(BRANCH_SWITCH.values()):
        if not getattr(cfg.recipe, switch):
            continue
        for stage in (s for s, sw in BRANCH_SWITCH.items() if sw == switch):
            missing = input_problems(stage, cfg)
            if missing:
                out[switch] = [f"{stage}: {line}" for line in missing]
                break
    return out


def left_out_lines(left_out: dict[str, list[str]]) -> list[str]:
    """What `snakemake` and `qwen-hpc validate` say of each branch `left_out_branches` left out."""
    return [f"recipe.{switch} left out (recipe.missing_data=skip): {'; '.join(why)}"
            for switch, why in left_out.items()]


def planned_stages(cfg: QwenConfig, left_out: dict[str, list[str]] | None = None) -> list[str]:
    """The stages `rule all` builds for this config, in DAG order: every stage but the on-demand ones, and the
    optional branches only where their `recipe` switch is on and they are not left out for missing data."""
    if left_out is None:
        left_out = left_out_branches(cfg)

    def wanted(stage: str) -> bool:
        switch = BRANCH_SWITCH.get(stage)
        return switch is None or (bool(getattr(cfg.recipe, switch)) and switch not in left_out)

    return [stage for stage in STAGE_NAMES if stage not in ON_DEMAND and wanted(stage)]
