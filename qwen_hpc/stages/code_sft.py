"""Stage `code_sft` (Code-Qwen-Chat, Qwen report §4.2; spec §10): supervised fine-tuning of Code-Qwen. The
sft stage's code (`qwen_hpc.stages.sft.run`) with the `code_sft` config section and its own run folder; the
initial weights are `code_sft.init_checkpoint` or, when empty, the code_pretrain stage's latest checkpoint.
Paper: AdamW (0.9, 0.95, 1e-8), LR 1e-5 (7B) / 2e-6 (14B), warmup over 3 % of the steps, then constant."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from qwen_hpc.config.schema import QwenConfig
from qwen_hpc.stages.base import StageContext, StageResult
from qwen_hpc.stages.registry import get_stage

NAME = "code_sft"
DESCRIPTION = "Code-Qwen-Chat: SFT of the code_pretrain model (sft's code, own section and run folder)"
CONFIG_KEYS = ("model", "code_sft")
UPSTREAM = ("tokenizer", "code_pretrain")
DISTRIBUTED = True
START_FROM = "code_pretrain"  # the stage whose checkpoints are the initial weights by default


def branch_config(cfg: QwenConfig, ctx: StageContext, section: str, start_from: str) -> QwenConfig:
    """`cfg` with the branch's section in place of `sft` (its init checkpoint resolved against `start_from`)
    and the branch's sequence length in the model: what the sft stage's code then reads."""
    from qwen_hpc import outputs

    branch = getattr(cfg, section)
    init = branch.init_checkpoint or str(outputs.checkpoints_dir(ctx.stage_path(start_from)))
    fields = {f.name: getattr(branch, f.name) for f in dataclasses.fields(type(cfg.sft))}
    sft = dataclasses.replace(cfg.sft, **{**fields, "init_checkpoint": init})
    seq_length = branch.seq_length
    if seq_length is None and not branch.init_checkpoint:  # the context the start model was trained at
        seq_length = _described_seq_length(ctx.stage_path(start_from))
    model = cfg.model if seq_length is None else dataclasses.replace(cfg.model, seq_length=seq_length)
    return dataclasses.replace(cfg, sft=sft, model=model)


def _described_seq_length(folder: Path) -> int | None:
    """The sequence length in the start stage's own description (code_pretrain extends the context: Code-Qwen-
    Chat is fine-tuned at that length, not the base model's); None for a folder without one."""
    from qwen_hpc.interop.folder import open_checkpoint_folder

    try:
        return open_checkpoint_folder(folder).model_config().seq_length
    except FileNotFoundError:
        return None


def run(cfg: QwenConfig, ctx: StageContext) -> StageResult:
    return get_stage("sft").run(branch_config(cfg, ctx, NAME, START_FROM), ctx)
