"""Stage `pretrain` (Qwen report §2.3–2.4): a Megatron-Core GPTModel with the Qwen layout trained on the
tokens stage's blend; checkpointed, resumable after preemption, observed every step."""

from __future__ import annotations

from pathlib import Path

from qwen_hpc.config.schema import QwenConfig
from qwen_hpc.stages.base import StageContext, StageResult

NAME = "pretrain"
DESCRIPTION = "train the Qwen-layout GPTModel on Megatron-Core (TP/PP/DP, checkpoint, preempt -> requeue)"
CONFIG_KEYS = ("model", "pretrain")
UPSTREAM = ("tokenizer", "tokens")  # tokenizer: copied into the folder, which then describes itself
DISTRIBUTED = True


def progress(stage_dir: Path) -> int | None:
    """How far a (requeued) run has got: the iteration of the latest checkpoint, None before the first.
    The launcher's requeue budget counts only restarts that find this unchanged."""
    pointer = Path(stage_dir) / "checkpoints" / "latest"
    try:
        name = pointer.read_text().strip()
    except OSError:
        return None
    return int(name.rsplit("_", 1)[-1]) if name.startswith("iter_") and name[5:].isdigit() else None


def run(cfg: QwenConfig, ctx: StageContext) -> StageResult:
    from qwen_hpc import outputs
    from qwen_hpc.stages.pretraining import train_stage

    tokens = outputs.read_blend(ctx.stage_path("tokens"))
    train = cfg.pretrain.train
    return train_stage(cfg, ctx, cfg.model, cfg.pretrain.train, cfg.pretrain.optimizer,
                       (tokens.pairs, tokens.eod_id, tokens.n_vocab), _init_checkpoint(cfg),
                       {"data_parallel_size": ctx.world_size
                        // (train.tensor_model_parallel_size * train.pipeline_model_parallel_size)})


# The dimensions that decide the shape of every weight; the rest (seq_length, RoPE base, long-context
# settings) may change when training continues from a checkpoint.
_SHAPE_FIELDS = ("num_layers", "hidden_size", "num_attention_heads", "ffn_hidden_size")


def _init_checkpoint(cfg: QwenConfig) -> Path | None:
    """`pretrain.init_checkpoint`, checked against `model` before any job starts training on it."""
    if not cfg.pretrain.init_checkpoint:
        return None
    from qwen_hpc.interop.folder import MODEL_CONFIG, open_checkpoint_folder

    path = Path(cfg.pretrain.init_checkpoint)
    if not path.exists():
        raise FileNotFoundError(f"pretrain.init_checkpoint={path} does not exist")
    try:
        theirs = open_checkpoint_folder(path).model_config()
    except FileNotFoundError:  # a bare checkpoint root: dist_checkpointing checks the shapes when loading
        return path
    ours = cfg.model
    differ = [
        f"{name} {getattr(theirs, name)} (checkpoint) != {getattr(ours, name)} (model)"
        for name in _SHAPE_FIELDS
        if getattr(theirs, name) != getattr(ours, name)
    ]
    if theirs.head_dim != ours.head_dim:
        differ.append(f"head dim {theirs.head_dim} (checkpoint) != {ours.head_dim} (model)")
    if differ:
        raise ValueError(
            f"pretrain.init_checkpoint={path}: its {MODEL_CONFIG} does not fit model={ours.name}: "
            + "; ".join(differ)
        )
    return path
