"""Stage `reward_model_pmp` (Qwen report §3.2.1; spec §8.1): preference-model pretraining, the first of the
reward model's two phases, on the larger comparison set; starts from the SFT checkpoint (or any base/SFT
checkpoint in `reward_model_pmp.init_checkpoint`). Same machinery as `reward_model` (`run_phase`)."""

from __future__ import annotations

from qwen_hpc.config.schema import QwenConfig
from qwen_hpc.stages.base import StageContext, StageResult
from qwen_hpc.stages.reward_model import run_phase

NAME = "reward_model_pmp"
DESCRIPTION = "reward model phase 1: preference-model pretraining (PMP) from the SFT checkpoint"
CONFIG_KEYS = ("model", "reward_model_pmp")
UPSTREAM = ("tokenizer", "sft")
DISTRIBUTED = False


def run(cfg: QwenConfig, ctx: StageContext) -> StageResult:
    return run_phase(cfg, ctx, NAME, ctx.stage_path("sft") / "checkpoints")
