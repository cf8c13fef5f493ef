"""The PPO run: setup from the four models, resume, per step {stop flag → experience → update → log →
save?}, held-out evaluation at the start and the end. Checkpoints (`rlhf.state`) hold policy, value, both
optimizers, the reward normalizer, the prompt and ptx cursors and the RNG states, so a resumed run draws the
same next rollouts and makes the same updates as an uninterrupted one. Every rank of the job runs it as a
data-parallel replica (`rlhf.ppo`: each rolls out its share of the step's prompts, the gradients are
summed); the first replica writes the checkpoints, with every replica's RNG state."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from qwen_hpc.parallel.replicas import Replicas
from qwen_hpc.rlhf import state as rstate
from qwen_hpc.rlhf.config import PPOConfig
from qwen_hpc.rlhf.ppo import (
    PPOModels,
    Prompt,
    RunningMoments,
    greedy_eval,
    make_experience,
    prompts_at,
    update,
)
from qwen_hpc.rlhf.reward import lm_weights, reward_payload


@dataclass
class PPOResult:
    status: str
    step: int
    checkpoint: str | None
    resumed_from: int | None
    initial_eval: dict = field(default_factory=dict)
    final_eval: dict = field(default_factory=dict)
    last_metrics: dict = field(default_factory=dict)


def ptx_batch(stream: Sequence[list[int]], step: int, size: int, pad_id: int) -> torch.Tensor | None:
    """The pretraining sequences of `step` (a cycling cursor: step · size), right-padded."""
    if not stream or size < 1:
        return None
    seqs = [stream[(step * size + i) % len(stream)] for i in range(size)]
    width = max(len(s) for s in seqs)
    out = torch.full((size, width), pad_id, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = torch.tensor(s)
    return out


def _resume(models: PPOModels, payload: dict, replicas: Replicas) -> tuple[RunningMoments, int, dict]:
    """Load a PPO checkpoint into the models and optimizers, and this replica's RNG state; returns the reward
    normalizer, the step and the initial evaluation it holds."""
    models.policy.load_state_dict(payload["policy"], strict=False)
    models.value.lm.load_state_dict(payload["value"]["lm"], strict=False)
    models.value.head.load_state_dict(payload["value"]["head"])
    models.policy_opt.load_state_dict(payload["policy_opt"])
    models.value_opt.load_state_dict(payload["value_opt"])
    ranks = payload.get("rng_replicas") or [payload["rng"]]
    rstate.set_rng_state(ranks[replicas.rank] if len(ranks) == replicas.size else payload["rng"])
    return RunningMoments(**payload["normalizer"]), payload["step"], payload.get("initial_eval", {})


def run_ppo(
    models: PPOModels,
    tokenizer: Any,
    prompts: Sequence[Prompt],
    heldout: Sequence[Prompt],
    ptx_stream: Sequence[list[int]],
    cfg: PPOConfig,
    *,
    vocab: int,
    ckpt_root: Path,
    should_stop: Callable[[], bool],
    log: Callable[[dict, int], None],
    replicas: Replicas | None = None,
    seen: Sequence[Prompt] = (),
) -> PPOResult:
    """PPO steps until `cfg.steps` (resuming from `ckpt_root`) or a stop request. `heldout` and `seen`
    (training prompts) are scored greedily before the first step and after the last: `seen/` shows what the
    loop learns on the prompts it trains on, the held-out figures whether that carries over to questions it
    never saw."""
    from qwen_hpc.inference.generate import Generator, SamplingConfig

    replicas = replicas or Replicas()
    normalizer, step, resumed_from, initial = RunningMoments(), 0, None, {}
    found = rstate.latest(ckpt_root)
    if found is not None:
        normalizer, step, initial = _resume(models, rstate.load(found), replicas)
        resumed_from = step
    gen_kw = dict(vocab=vocab, generator_cls=Generator, sampling_cls=SamplingConfig, replicas=replicas)

    def evaluate() -> dict[str, float]:  # {} when there is nothing to score
        out = greedy_eval(models.policy, tokenizer, heldout, cfg, **gen_kw) if heldout else {}
        if seen:
            out.update({f"seen/{k}": v for k, v in greedy_eval(models.policy, tokenizer, seen, cfg, **gen_kw).items()})
        return out

    if not initial:
        initial = evaluate()
        if initial:
            log({f"eval/{k}": v for k, v in initial.items()}, 0)

    def checkpoint() -> str:
        rngs = replicas.gather(rstate.rng_state())
        where = ckpt_root / rstate.iter_name(step)
        if replicas.checkpoint_writer:  # the replicas' weights and optimizer states are identical: one copy
            payload = {
                "policy": lm_weights(models.policy), "value": reward_payload(models.value),
                "policy_opt": models.policy_opt.state_dict(), "value_opt": models.value_opt.state_dict(),
                "normalizer": vars(normalizer).copy(), "rng": rngs[0], "rng_replicas": rngs,
                "prompt_cursor": step * cfg.prompts_per_step, "ptx_cursor": step * cfg.ptx_batch_size,
                "initial_eval": initial,
            }
            where = rstate.save(ckpt_root, step, payload)
        replicas.barrier()  # whole on disk before any replica goes on (or exits)
        return str(where)

    saved_at, path, metrics = (step if found else -1), (str(found) if found else None), {}
    while step < cfg.steps:
        if replicas.any(should_stop()):
            if saved_at != step:
                path = checkpoint()
            return PPOResult("preempted", step, path, resumed_from, initial, {}, metrics)
        t0 = time.perf_counter()
        batch = prompts_at(prompts, step * cfg.prompts_per_step, cfg.prompts_per_step, cfg.seed)
        exp = make_experience(models, tokenizer, batch, cfg, normalizer, step=step + 1, **gen_kw)
        warmup = step < cfg.value_warmup_steps
        metrics = {**exp.metrics, **update(
            models, exp, cfg, warmup=warmup, vocab=vocab,
            ptx_batch=ptx_batch(ptx_stream, step, cfg.ptx_batch_size, tokenizer.eod_id), replicas=replicas,
        )}
        step += 1
        metrics["time/step_s"] = time.perf_counter() - t0
        log(metrics, step)
        if cfg.save_interval and step % cfg.save_interval == 0:
            path, saved_at = checkpoint(), step
    if saved_at != step:
        path = checkpoint()
    final = evaluate()
    if final:
        log({f"eval/{k}": v for k, v in final.items()}, step)
    return PPOResult("completed", step, path, resumed_from, initial, final, metrics)
