"""Stage `math_evaluate` (Qwen report Table 12; spec §11): Math-Qwen-Chat scored greedily on GSM8K and MATH
(the Lightman et al. MATH-500 split) with 0-shot ChatML prompts. The evaluate stage's code with the
`math_evaluate` section and its own run folder; the checkpoint is `math_evaluate.checkpoint` or, when empty,
the math_sft stage's latest one."""

from __future__ import annotations

import dataclasses

from qwen_hpc.config.schema import QwenConfig
from qwen_hpc.stages.base import StageContext, StageResult
from qwen_hpc.stages.registry import get_stage

NAME = "math_evaluate"
DESCRIPTION = "Math-Qwen-Chat on GSM8K and MATH-500, greedy (evaluate's code, own section and run folder)"
CONFIG_KEYS = ("math_evaluate",)
UPSTREAM = ("tokenizer", "tokens", "math_sft")
DISTRIBUTED = True


def run(cfg: QwenConfig, ctx: StageContext) -> StageResult:
    from qwen_hpc import outputs

    section = cfg.math_evaluate
    checkpoint = section.checkpoint or str(outputs.checkpoints_dir(ctx.stage_path("math_sft")))
    evaluate = dataclasses.replace(section, checkpoint=checkpoint)
    return get_stage("evaluate").run(dataclasses.replace(cfg, evaluate=evaluate), ctx)
