"""Stage `ppo` (Qwen report §3.2.2; spec §8.2): PPO of the SFT policy against the reward model (or, with
`ppo.reward=rule`, against the checkable answers of the embedded tasks, to verify the loop on a CPU).
Writes `checkpoints/` (policy, value, optimizers, normalizer, cursors), `metrics.jsonl` (every step: reward
raw/normalized, KL, entropy, losses, clip fraction, response length, time per phase) and `eval.json`
(greedy held-out replies scored by the rule, before and after PPO).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from qwen_hpc import outputs
from qwen_hpc.config.schema import QwenConfig
from qwen_hpc.stages.base import StageContext, StageResult

NAME = "ppo"
DESCRIPTION = "PPO (policy, reference, value, reward models; KL 0.04, top-p 0.9, value warm-up) from SFT and RM"
CONFIG_KEYS = ("model", "ppo")
UPSTREAM = ("tokenizer", "sft", "reward_model")
DISTRIBUTED = True  # every rank a data-parallel replica (rlhf.ppo_train)

log = logging.getLogger(__name__)


def run(cfg: QwenConfig, ctx: StageContext) -> StageResult:
    from qwen_hpc.parallel import Replicas, model_parallel, world_of_one
    from qwen_hpc.rlhf.ppo import NonFiniteReward, embedded_prompts
    from qwen_hpc.rlhf.ppo_setup import build_models, file_prompts, ptx_stream
    from qwen_hpc.rlhf.ppo_train import run_ppo
    from qwen_hpc.utils.io import write_json

    ppo, data_root = cfg.ppo, Path(cfg.run.data_root)
    tok = outputs.tokenizer_files(ctx.stage_path("tokenizer"), cfg.tokenizer.name).load()
    policy_path = Path(ppo.policy_checkpoint) if ppo.policy_checkpoint else outputs.checkpoints_dir(ctx.stage_path("sft"))
    rm_root = (Path(ppo.reward_checkpoint) if ppo.reward_checkpoint
               else outputs.checkpoints_dir(ctx.stage_path("reward_model")))
    if ppo.prompt_paths:
        if ppo.reward == "rule":
            raise ValueError("ppo.reward=rule needs the embedded tasks: leave ppo.prompt_paths empty")
        prompts, heldout = file_prompts(ppo, data_root), []
    else:
        prompts = embedded_prompts(ppo.seed, ppo.train_prompts, held_out=False)
        heldout = embedded_prompts(0, ppo.heldout_prompts, held_out=True) if ppo.heldout_prompts else []
    seen = [] if ppo.prompt_paths else prompts[: ppo.seen_eval_prompts]  # rule-scorable: embedded
    layout = ppo.layout(cfg.pretrain.train)
    if layout[1] != 1:
        raise ValueError(f"PPO runs with PP = 1, not {layout[1]} (preflight says so)")
    with world_of_one(), model_parallel(*layout, seed=ppo.seed):
        replicas = Replicas.from_parallel_state()
        models, rm_used = build_models(ppo, cfg.model, policy_path, rm_root)
        ptx = ptx_stream(ppo, tok, cfg.model.seq_length, data_root) if ppo.ptx_coef > 0 else []
        try:
            result = run_ppo(
                models, tok, prompts, heldout, ptx, ppo, vocab=tok.n_vocab, seen=seen,
                ckpt_root=outputs.checkpoints_dir(ctx.stage_dir), should_stop=ctx.should_stop,
                log=lambda m, s: ctx.tracker.log(m, step=s), replicas=replicas,
            )
        except NonFiniteReward as err:
            log.error("%s", err)
            raise RuntimeError(f"PPO stopped: {err}") from None
    metrics: dict[str, Any] = {
        "step": result.step, "resumed_from": result.resumed_from, "reward": ppo.reward,
        "policy_checkpoint": str(policy_path), "reward_checkpoint": rm_used, "data_parallel_size": replicas.size,
        **{f"last/{k}": v for k, v in result.last_metrics.items()},
    }
    if result.status != "completed":
        return StageResult(result.status, metrics=metrics, outputs={"checkpoint": result.checkpoint})
    if replicas.writer:
        write_json(ctx.stage_dir / "eval.json", {"initial": result.initial_eval, "final": result.final_eval})
    metrics.update({f"eval_initial/{k}": v for k, v in result.initial_eval.items()})
    metrics.update({f"eval_final/{k}": v for k, v in result.final_eval.items()})
    return StageResult("completed", metrics=metrics, outputs={"checkpoint": result.checkpoint})
