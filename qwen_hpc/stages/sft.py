"""Stage `sft` (Qwen report §3.1; spec §7): supervised fine-tuning of a pretrained checkpoint on ChatML
conversations, on the pretraining loop (`training.loop.train_model`: same Megatron-Core model, TP/PP/DP,
checkpoints, preemption and bit-exact resume).

Only the weights come from `sft.init_checkpoint` (default: the pretrain stage's latest checkpoint; or any
checkpoint root, run folder or `import_hf` folder); optimizer, LR schedule and data order start fresh. The
loss is the mean over supervised tokens of the global batch (`sft.masking` decides which), on padded or
packed sequences (`sft.sequences`). Writes `checkpoints/`, `metrics.jsonl`, `data_stats.json` (every source
counted), `malformed.jsonl` (file, line, reason of each bad record) and, for the embedded task set,
`heldout.jsonl` and `heldout_eval.json` (greedy replies to held-out conversations, scored).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

from qwen_hpc.config.schema import QwenConfig
from qwen_hpc.stages.base import StageContext, StageResult

NAME = "sft"
DESCRIPTION = "supervised fine-tuning on ChatML conversations (masking, packing) from a pretrained checkpoint"
CONFIG_KEYS = ("model", "sft")
UPSTREAM = ("tokenizer", "pretrain")
DISTRIBUTED = True

log = logging.getLogger(__name__)


@dataclasses.dataclass
class InitialModel:
    checkpoint: Path
    model: Any  # ModelConfig
    tokenizer: Any  # QwenTokenizer


def initial_model(cfg: QwenConfig, ctx: StageContext) -> InitialModel:
    """Where the weights, the model's dimensions and the tokenizer come from."""
    from qwen_hpc import outputs
    from qwen_hpc.interop.folder import MODEL_CONFIG
    from qwen_hpc.model.config import ModelConfig
    from qwen_hpc.tokenizer.encoding import TokenizerFiles

    model_cfg, tokenizer_files = cfg.model, None
    if not cfg.sft.init_checkpoint:
        path = outputs.checkpoints_dir(ctx.stage_path("pretrain"))
    else:
        path = Path(cfg.sft.init_checkpoint)
        if (path / MODEL_CONFIG).is_file():  # an import_hf folder carries its dimensions and tokenizer
            model_cfg = ModelConfig(**json.loads((path / MODEL_CONFIG).read_text()))
            tokenizer_files = TokenizerFiles(
                path / "tokenizer" / "tokenizer.tiktoken", path / "tokenizer" / "special_tokens.json"
            )
            path = path / "checkpoints"
        elif (path / "checkpoints").is_dir():
            path = path / "checkpoints"
        if not path.exists():
            raise FileNotFoundError(f"sft.init_checkpoint: {path} does not exist")
    if tokenizer_files is None:  # all but an import_hf folder use the tokenizer stage's vocabulary
        tokenizer_files = outputs.tokenizer_files(ctx.stage_path("tokenizer"), cfg.tokenizer.name)
    if cfg.sft.dropout is not None:
        model_cfg = dataclasses.replace(
            model_cfg, hidden_dropout=cfg.sft.dropout, attention_dropout=cfg.sft.dropout
        )
    return InitialModel(path, model_cfg, tokenizer_files.load())


def _write_data_reports(ctx: StageContext, data: Any) -> None:
    from qwen_hpc.utils.io import write_json, write_text

    write_json(ctx.stage_dir / "data_stats.json", data.stats)
    write_text(
        ctx.stage_dir / "malformed.jsonl",
        "".join(json.dumps(dataclasses.asdict(m)) + "\n" for m in data.malformed),
    )
    if data.heldout:
        write_text(
            ctx.stage_dir / "heldout.jsonl", "".join(json.dumps(t.record()) + "\n" for t in data.heldout)
        )
    for m in data.malformed[:5]:
        log.warning("malformed record skipped: %s", m)
    if len(data.malformed) > 5:
        log.warning("... %d malformed records in all (malformed.jsonl)", len(data.malformed))


def _heldout_eval(cfg: QwenConfig, ctx: StageContext, init: InitialModel, data: Any, checkpoint: str) -> dict:
    """Greedy chat replies of the fine-tuned model to held-out tasks (every rank loads; rank 0 writes)."""
    from qwen_hpc.alignment.chat_eval import evaluate_heldout
    from qwen_hpc.interop.hf_checkpoint import load_model
    from qwen_hpc.parallel import single_process_megatron
    from qwen_hpc.utils.io import write_json

    tasks = data.heldout[: cfg.sft.heldout_eval]
    with single_process_megatron(seed=cfg.sft.train.seed):
        model = load_model(checkpoint, init.model)
        scores, records = evaluate_heldout(
            model, init.tokenizer, tasks, system=cfg.sft.system, max_new_tokens=cfg.sft.max_new_tokens
        )
    if ctx.rank == 0:
        write_json(ctx.stage_dir / "heldout_eval.json", {"scores": scores, "replies": records})
    return {f"heldout/{k}": v for k, v in scores.items()}


def _metrics(sft: Any, init: InitialModel, data: Any, result: Any) -> dict[str, Any]:
    """The run's metrics: where it started, what the data stage of SFT kept, then the training's own."""
    metrics: dict[str, Any] = {
        "iteration": result.iteration,
        "first_loss": result.first_loss,
        "last_loss": result.last_loss,
        "resumed_from": result.resumed_from,
        "init_checkpoint": str(init.checkpoint),
        "masking": sft.masking,
        "sequences": sft.sequences,
        "train_conversations": len(data.train),
        "malformed_records": len(data.malformed),
        "truncated": data.stats["train"]["truncated"],
        "dropped_overlong": data.stats["train"]["dropped_overlong"],
        **{f"data/{k}": v for k, v in data.stats.get("train_samples", {}).items()},
    }
    metrics.update({k: v for k, v in result.metrics.items() if k not in metrics})
    return metrics


def run(cfg: QwenConfig, ctx: StageContext) -> StageResult:
    from qwen_hpc.alignment.dataset import build_sft_data
    from qwen_hpc.alignment.sequences import SFTDataset
    from qwen_hpc.interop.folder import write_folder_description
    from qwen_hpc.training.loop import Objective, train_model

    sft = cfg.sft
    init = initial_model(cfg, ctx)
    seq_length = init.model.seq_length
    data = build_sft_data(sft, init.tokenizer, seq_length=seq_length, seed=sft.train.seed)
    if ctx.rank == 0:
        # the stage folder describes itself, as pretrain's does: export-hf, chat and the next stage read it alone
        write_folder_description(ctx.stage_dir, init.model, init.tokenizer)
        _write_data_reports(ctx, data)
    if not data.train:
        raise RuntimeError(f"no conversation left to train on: {data.stats}")
    train, gbs = sft.train, sft.train.global_batch_size

    def datasets() -> tuple[Any, Any]:
        common = dict(seq_length=seq_length, mode=sft.sequences, pad_id=init.tokenizer.eod_id)
        train_ds = SFTDataset(data.train, seed=train.seed, num_samples=train.train_iters * gbs, **common)
        valid_ds = (
            SFTDataset(data.valid, seed=train.seed + 1, num_samples=max(train.eval_iters, 1) * gbs, **common)
            if data.valid
            else None
        )
        data.stats["train_samples"] = train_ds.stats()
        return train_ds, valid_ds

    wandb_id_file = ctx.stage_dir / "wandb_run_id"
    extra = {
        "config_hash": ctx.config_hash,
        "wandb_run_id": wandb_id_file.read_text().strip() if wandb_id_file.exists() else None,
    }
    result = train_model(
        init.model,
        train,
        sft.optimizer,
        datasets,
        n_vocab=init.tokenizer.n_vocab,
        out_dir=ctx.stage_dir,
        tracker=ctx.tracker,
        should_stop=ctx.should_stop,
        extra_state=extra,
        init_checkpoint=init.checkpoint,
        objective=Objective(per_token_loss=True, attention_masks=sft.sequences == "packing"),
    )
    if result.status == "failed":
        raise RuntimeError(f"SFT failed at iteration {result.iteration}: {result.metrics}")
    metrics = _metrics(sft, init, data, result)
    if result.status == "completed" and data.heldout and sft.heldout_eval > 0:
        metrics.update(_heldout_eval(cfg, ctx, init, data, str(result.checkpoint)))
        ctx.tracker.log({k: v for k, v in metrics.items() if k.startswith("heldout/")})
    return StageResult(result.status, metrics=metrics, outputs={"checkpoint": str(result.checkpoint)})
