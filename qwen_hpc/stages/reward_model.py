"""Stage `reward_model` (Qwen report §3.2.1; spec §8.1): reward-model fine-tuning, the second of the two
phases, on the smaller, higher-quality comparison set, starting from the last checkpoint of
`reward_model_pmp` (weights and head). Same outputs as `reward_model_pmp`; `eval.json` sets the HH-RLHF
helpful-base accuracy next to Table 4's RM row."""

from __future__ import annotations

from pathlib import Path

from qwen_hpc import outputs
from qwen_hpc.config.schema import QwenConfig
from qwen_hpc.stages.base import StageContext, StageResult

NAME = "reward_model"
DESCRIPTION = "reward model phase 2: fine-tuning (Bradley-Terry, head at <|im_end|>) from the PMP phase's end"
CONFIG_KEYS = ("model", "reward_model")
UPSTREAM = ("tokenizer", "reward_model_pmp")
DISTRIBUTED = True  # every rank a data-parallel replica (rlhf.reward_phase)


def run(cfg: QwenConfig, ctx: StageContext) -> StageResult:
    from qwen_hpc.rlhf.reward_phase import run_reward_phase

    rm = cfg.reward_model
    tok = outputs.tokenizer_files(ctx.stage_path("tokenizer"), cfg.tokenizer.name).load()
    pmp = outputs.checkpoints_dir(ctx.stage_path("reward_model_pmp"))
    status, metrics, checkpoint = run_reward_phase(
        rm, cfg.model, tok, phase="rm", init=Path(rm.init_checkpoint) if rm.init_checkpoint else pmp,
        data_root=Path(cfg.run.data_root), out_dir=ctx.stage_dir, seed=cfg.run.seed,
        should_stop=ctx.should_stop, log_metrics=lambda m, s: ctx.tracker.log(m, step=s),
        layout=rm.layout(cfg.pretrain.train),
    )
    return StageResult(status, metrics=metrics, outputs={"checkpoint": checkpoint})
