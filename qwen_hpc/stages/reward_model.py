"""Stage `reward_model` (Qwen report §3.2.1; spec §8.1): reward-model fine-tuning, the second of the two
phases, starting from the end of `reward_model_pmp` (preference-model pretraining). Both phases run this
module's `run_phase`: a scalar head on the Qwen model, Bradley–Terry loss, constant LR, resumable
checkpoints (`checkpoints/`), `metrics.jsonl`, `data_stats.json`, `malformed.jsonl` and `eval.json`
(held-out pairwise accuracy, and the HH-RLHF helpful-base/harmless-base held-out fifth next to Table 4).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

from qwen_hpc.config.schema import QwenConfig
from qwen_hpc.stages.base import StageContext, StageResult

NAME = "reward_model"
DESCRIPTION = "reward model fine-tuning (Bradley-Terry, scalar head at <|im_end|>) from the PMP phase's end"
CONFIG_KEYS = ("model", "reward_model")
UPSTREAM = ("tokenizer", "reward_model_pmp")
DISTRIBUTED = False

# Table 4, "Anthropic Helpful-base" column (test accuracy, %)
PAPER_TABLE4 = {"reward_model_pmp": {"helpful-base": 76.52}, "reward_model": {"helpful-base": 73.98}}

log = logging.getLogger(__name__)


def tokenizer(cfg: QwenConfig, ctx: StageContext) -> Any:
    from qwen_hpc.tokenizer.encoding import TokenizerFiles

    tok_dir = ctx.stage_path("tokenizer")
    return TokenizerFiles(tok_dir / f"{cfg.tokenizer.name}.tiktoken", tok_dir / "special_tokens.json").load()


def initial_reward_model(cfg: QwenConfig, init: Path) -> tuple[Any, str]:
    """A RewardModel from an RLHF checkpoint (lm + head) or a fresh head on a Megatron LM checkpoint."""
    from qwen_hpc.interop.hf_checkpoint import load_model
    from qwen_hpc.rlhf import state as rstate
    from qwen_hpc.rlhf.reward import RewardModel, build_reward_model

    found = rstate.latest(init)
    if found is not None:
        return build_reward_model(cfg.model, rstate.load(found)), str(found)
    if not init.exists():
        raise FileNotFoundError(f"init_checkpoint: {init} does not exist")
    return RewardModel(load_model(init, cfg.model), cfg.model.hidden_size, seed=cfg.run.seed), str(init)


def run_phase(cfg: QwenConfig, ctx: StageContext, phase: str, default_init: Path) -> StageResult:
    from qwen_hpc.interop.hf_checkpoint import single_process_megatron
    from qwen_hpc.rlhf.data import build_preference_data
    from qwen_hpc.rlhf.reward import RMTrainSettings, encode_pairs, pairwise_accuracy, train_reward_model
    from qwen_hpc.utils.io import write_json, write_text

    rm = getattr(cfg, phase)
    init = Path(rm.init_checkpoint) if rm.init_checkpoint else default_init
    tok = tokenizer(cfg, ctx)
    seq_length = min(rm.seq_length, cfg.model.seq_length)
    data = build_preference_data(rm, Path(cfg.run.data_root))
    write_text(ctx.stage_dir / "malformed.jsonl",
               "".join(json.dumps(dataclasses.asdict(m)) + "\n" for m in data.malformed))
    for m in data.malformed[:5]:
        log.warning("malformed preference pair skipped: %s", m)
    train, trunc_train = encode_pairs(tok, data.train, seq_length=seq_length, system=rm.system)
    heldout, trunc_held = encode_pairs(tok, data.heldout, seq_length=seq_length, system=rm.system)
    data.stats["truncated_pairs"] = trunc_train + trunc_held
    write_json(ctx.stage_dir / "data_stats.json", data.stats)
    settings = RMTrainSettings(
        lr=rm.lr, batch_size=rm.batch_size, micro_batch_size=rm.micro_batch_size, epochs=rm.epochs,
        seed=rm.seed, save_interval=rm.save_interval, clip_grad=rm.clip_grad, weight_decay=rm.weight_decay,
    )
    with single_process_megatron(seed=rm.seed):
        model, init_from = initial_reward_model(cfg, init)
        log.info("%s: initial weights from %s", phase, init_from)
        result = train_reward_model(
            model, train, settings, pad_id=tok.eod_id, ckpt_root=ctx.stage_dir / "checkpoints",
            should_stop=ctx.should_stop, log=lambda m, s: ctx.tracker.log(m, step=s),
        )
        metrics: dict[str, Any] = {
            "step": result.step, "steps": result.steps, "first_loss": result.first_loss,
            "last_loss": result.last_loss, "resumed_from": result.resumed_from, "init_checkpoint": init_from,
            "train_pairs": len(train), "malformed_pairs": len(data.malformed),
        }
        if result.status != "completed":
            return StageResult(result.status, metrics=metrics, outputs={"checkpoint": result.checkpoint})
        report: dict[str, Any] = {"heldout": pairwise_accuracy(model, heldout, tok.eod_id)} if heldout else {}
        for subset, pairs in data.hh_eval.items():
            enc, _ = encode_pairs(tok, pairs, seq_length=seq_length, system=rm.system)
            got = pairwise_accuracy(model, enc, tok.eod_id)
            report[f"hh_rlhf/{subset}"] = {
                **got, "paper_table4_percent": PAPER_TABLE4[phase].get(subset),
                "split": "held-out fifth of the test file (sha256(file:line) % 5 == 0); the rest may be trained on",
            }
    write_json(ctx.stage_dir / "eval.json", report)
    for key, value in report.items():
        metrics[f"{key}/accuracy"] = value["accuracy"]
        log.info("%s %s: pairwise accuracy %.4f on %d pairs%s", phase, key, value["accuracy"], value["pairs"],
                 f" (paper Table 4: {value['paper_table4_percent']} %)" if value.get("paper_table4_percent") else "")
    ctx.tracker.log({k: v for k, v in metrics.items() if k.endswith("/accuracy")}, step=result.step)
    return StageResult("completed", metrics=metrics, outputs={"checkpoint": result.checkpoint})


def run(cfg: QwenConfig, ctx: StageContext) -> StageResult:
    return run_phase(cfg, ctx, NAME, ctx.stage_path("reward_model_pmp") / "checkpoints")
