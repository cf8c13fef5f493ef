"""The stages in DAG order, by name. One name per stage everywhere (module, YAML, rule, run folder)."""

from __future__ import annotations

import importlib

from qwen_hpc.stages.base import StageModule

STAGE_NAMES: tuple[str, ...] = (
    "data",
    "tokenizer",
    "tokens",
    "pretrain",
    "sft",
    "reward_model_pmp",
    "reward_model",
    "ppo",
    "agent_eval",
    "evaluate",
    "long_context",
    "report",
    "export_hf",
    "import_hf",
    # the Code-Qwen / Math-Qwen branches (spec §10-11): thin modules over the stages above
    "code_pretrain",
    "code_sft",
    "math_sft",
    "math_evaluate",
)
# Commands spell multi-word stages with a hyphen (`qwen-hpc export-hf`); everything else uses the name.
COMMAND_ALIASES: dict[str, str] = {name.replace("_", "-"): name for name in STAGE_NAMES if "_" in name}


class UnknownStageError(KeyError):
    pass


def get_stage(name: str) -> StageModule:
    if name not in STAGE_NAMES:
        raise UnknownStageError(f"unknown stage {name!r}; stages: {', '.join(STAGE_NAMES)}")
    return importlib.import_module(f"qwen_hpc.stages.{name}")  # type: ignore[return-value]


def descriptions() -> dict[str, str]:
    """One line per stage for `qwen-hpc --help`, read without importing heavy domain code."""
    out = {}
    for name in STAGE_NAMES:
        out[name] = get_stage(name).DESCRIPTION
    return out
