"""One reward-model phase end to end (PMP or fine-tuning; Qwen report §3.2.1): pairs → encode → initial model
(an RLHF checkpoint with its head, or a fresh head on a base/SFT checkpoint) → Bradley–Terry training →
held-out and HH-RLHF pairwise accuracy. Writes `malformed.jsonl`, `data_stats.json`, `eval.json` and the
checkpoints under `out_dir`."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qwen_hpc.rlhf import state as rstate
from qwen_hpc.rlhf.config import RewardModelConfig

log = logging.getLogger(__name__)

# Table 4, "Anthropic Helpful-base" column (test accuracy, %)
PAPER_TABLE4 = {"pmp": {"helpful-base": 76.52}, "rm": {"helpful-base": 73.98}}
HH_SPLIT = "held-out fifth of the test file (sha256(file:line) % 5 == 0); the other four fifths may be trained on"


def initial_reward_model(model_cfg: Any, init: Path, seed: int) -> tuple[Any, str]:
    """A RewardModel from an RLHF checkpoint (lm + head) or a fresh head on a Megatron LM checkpoint."""
    from qwen_hpc.interop.hf_checkpoint import load_model
    from qwen_hpc.rlhf.reward import RewardModel, build_reward_model

    found = rstate.latest(init)
    if found is not None:
        return build_reward_model(model_cfg, rstate.load(found)), str(found)
    if not init.exists():
        raise FileNotFoundError(f"init_checkpoint: {init} does not exist")
    return RewardModel(load_model(init, model_cfg), model_cfg.hidden_size, seed=seed), str(init)


def run_reward_phase(
    rm: RewardModelConfig,
    model_cfg: Any,
    tok: Any,
    *,
    phase: str,  # "pmp" | "rm": which Table 4 row to print beside ours
    init: Path,
    data_root: Path,
    out_dir: Path,
    seed: int,
    should_stop: Callable[[], bool],
    log_metrics: Callable[[dict, int], None],
    layout: tuple[int, int] = (1, 1),
) -> tuple[str, dict[str, Any], str | None]:
    """(status, metrics, checkpoint). Every rank of the job calls it: `layout` = (TP, PP = 1) shards the
    model over TP ranks; the TP groups are data-parallel replicas (`parallel.Replicas`); the first writes."""
    from qwen_hpc.parallel import Replicas, model_parallel, world_of_one
    from qwen_hpc.rlhf.data import build_preference_data
    from qwen_hpc.utils.io import write_text

    if layout[1] != 1:
        raise ValueError(f"the reward model trains with PP = 1, not {layout[1]} (preflight says so)")
    seq_length = min(rm.seq_length, model_cfg.seq_length)
    data = build_preference_data(rm, data_root)
    with world_of_one(), model_parallel(*layout, seed=rm.seed):
        replicas = Replicas.from_parallel_state()
        if replicas.writer:
            write_text(out_dir / "malformed.jsonl",
                       "".join(json.dumps(dataclasses.asdict(m)) + "\n" for m in data.malformed))
            for m in data.malformed[:5]:
                log.warning("malformed preference pair skipped: %s", m)
        return _train_and_score(rm, model_cfg, tok, data, phase=phase, init=init, out_dir=out_dir, seed=seed,
                                seq_length=seq_length, replicas=replicas, should_stop=should_stop,
                                log_metrics=log_metrics)


def _train_and_score(
    rm: RewardModelConfig, model_cfg: Any, tok: Any, data: Any, *, phase: str, init: Path, out_dir: Path,
    seed: int, seq_length: int, replicas: Any, should_stop: Callable[[], bool],
    log_metrics: Callable[[dict, int], None],
) -> tuple[str, dict[str, Any], str | None]:
    from qwen_hpc.rlhf.reward import RMTrainSettings, encode_pairs, pairwise_accuracy, train_reward_model
    from qwen_hpc.utils.io import write_json

    train, trunc_train = encode_pairs(tok, data.train, seq_length=seq_length, system=rm.system)
    heldout, trunc_held = encode_pairs(tok, data.heldout, seq_length=seq_length, system=rm.system)
    data.stats["truncated_pairs"] = trunc_train + trunc_held
    if replicas.writer:
        write_json(out_dir / "data_stats.json", data.stats)
    settings = RMTrainSettings(
        lr=rm.lr, batch_size=rm.batch_size, micro_batch_size=rm.micro_batch_size, epochs=rm.epochs,
        seed=rm.seed, save_interval=rm.save_interval, clip_grad=rm.clip_grad, weight_decay=rm.weight_decay,
    )
    model, init_from = initial_reward_model(model_cfg, init, seed)
    log.info("reward model (%s): initial weights from %s; %d data-parallel replica(s)", phase, init_from,
             replicas.size)
    result = train_reward_model(
        model, train, settings, pad_id=tok.eod_id, ckpt_root=out_dir / "checkpoints",
        should_stop=should_stop, log=log_metrics, replicas=replicas,
    )
    metrics: dict[str, Any] = {
        "step": result.step, "steps": result.steps, "first_loss": result.first_loss,
        "last_loss": result.last_loss, "resumed_from": result.resumed_from, "init_checkpoint": init_from,
        "train_pairs": len(train), "malformed_pairs": len(data.malformed), "data_parallel_size": replicas.size,
    }
    if result.status != "completed":
        return result.status, metrics, result.checkpoint
    report: dict[str, Any] = {"heldout": pairwise_accuracy(model, heldout, tok.eod_id, replicas=replicas)} if heldout else {}
    for subset, pairs in data.hh_eval.items():
        enc, _ = encode_pairs(tok, pairs, seq_length=seq_length, system=rm.system)
        report[f"hh_rlhf/{subset}"] = {
            **pairwise_accuracy(model, enc, tok.eod_id, replicas=replicas),
            "paper_table4_percent": PAPER_TABLE4[phase].get(subset), "split": HH_SPLIT,
        }
    if replicas.writer:
        write_json(out_dir / "eval.json", report)
    for key, value in report.items():
        metrics[f"{key}/accuracy"] = value["accuracy"]
        paper = value.get("paper_table4_percent")
        log.info("%s %s: pairwise accuracy %.4f on %d pairs%s", phase, key, value["accuracy"], value["pairs"],
                 f" (paper Table 4: {paper} %)" if paper else "")
    log_metrics({k: v for k, v in metrics.items() if k.endswith("/accuracy")}, result.step)
    return "completed", metrics, result.checkpoint
