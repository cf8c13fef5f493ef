"""Stage `reward_model_pmp` (Qwen report §3.2.1; spec §8.1): preference-model pretraining, the first of the
reward model's two phases, on the larger comparison set; starts from the SFT checkpoint (or any base/SFT
checkpoint in `reward_model_pmp.init_checkpoint`). A scalar head at the `<|im_end|>` closing the reply,
Bradley–Terry loss, constant LR, resumable. Writes `checkpoints/`, `metrics.jsonl`, `data_stats.json`,
`malformed.jsonl`, `eval.json` (held-out pairwise accuracy; HH-RLHF next to Table 4's PMP row)."""

from __future__ import annotations

from pathlib import Path

from qwen_hpc import outputs
from qwen_hpc.config.schema import QwenConfig
from qwen_hpc.stages.base import StageContext, StageResult

NAME = "reward_model_pmp"
DESCRIPTION = "reward model phase 1: preference-model pretraining (PMP) from the SFT checkpoint"
CONFIG_KEYS = ("model", "reward_model_pmp")
UPSTREAM = ("tokenizer", "sft")
DISTRIBUTED = True  # every rank a data-parallel replica (rlhf.reward_phase)


def run(cfg: QwenConfig, ctx: StageContext) -> StageResult:
    from qwen_hpc.rlhf.reward_phase import run_reward_phase

    rm = cfg.reward_model_pmp
    tok = outputs.tokenizer_files(ctx.stage_path("tokenizer"), cfg.tokenizer.name).load()
    init = Path(rm.init_checkpoint) if rm.init_checkpoint else outputs.checkpoints_dir(ctx.stage_path("sft"))
    status, metrics, checkpoint = run_reward_phase(
        rm, cfg.model, tok, phase="pmp", init=init, data_root=Path(cfg.run.data_root), out_dir=ctx.stage_dir,
        seed=cfg.run.seed, should_stop=ctx.should_stop, log_metrics=lambda m, s: ctx.tracker.log(m, step=s),
        layout=rm.layout(cfg.pretrain.train),
    )
    return StageResult(status, metrics=metrics, outputs={"checkpoint": checkpoint})
