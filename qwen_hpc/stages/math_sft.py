"""Stage `math_sft` (Math-Qwen-Chat, Qwen report §5.1; spec §11): math SFT directly from the pretrained base.
The sft stage's code with the `math_sft` config section and its own run folder (weights: the pretrain stage's
latest checkpoint unless `math_sft.init_checkpoint`). Paper: sequence length 1024 (`math_sft.seq_length`),
system and user turns masked (`masking: paper`), peak LR 2e-5, 50,000 steps; data: GSM8K's training split
with its worked solutions as replies (`format: gsm8k`, read from `run.data_root`)."""

from __future__ import annotations

from qwen_hpc.config.schema import QwenConfig
from qwen_hpc.stages.base import StageContext, StageResult
from qwen_hpc.stages.registry import get_stage

NAME = "math_sft"
DESCRIPTION = "Math-Qwen-Chat: math SFT of the base model (sft's code, own section and run folder)"
CONFIG_KEYS = ("model", "math_sft")
UPSTREAM = ("tokenizer", "pretrain")
DISTRIBUTED = True
START_FROM = "pretrain"


def run(cfg: QwenConfig, ctx: StageContext) -> StageResult:
    branch_config = get_stage("code_sft").branch_config  # one mechanism for every SFT branch
    return get_stage("sft").run(branch_config(cfg, ctx, NAME, START_FROM), ctx)
