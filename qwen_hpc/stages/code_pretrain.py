"""Stage `code_pretrain` (Code-Qwen, Qwen report §4.1; spec §10): continued pretraining of the base model on
code. The pretrain stage's training loop (`training.loop.pretrain`) with the `code_pretrain` config section,
its own run folder and its own token mixture:

- weights only from `code_pretrain.init_checkpoint` ("" = the pretrain stage's latest checkpoint); optimizer,
  LR schedule (3 % warmup, then constant: `decay_style: constant`) and data order start fresh;
- data: the tokens stage's sources re-weighted by `code_pretrain.source_weights` (unnamed sources dropped);
- context: `code_pretrain.seq_length` (8192 in the paper) replaces `model.seq_length`. The data loader needs
  no change of its own: Megatron's GPTDataset cuts windows of seq_length + 1 tokens from the same `.bin/.idx`
  files, and its index caches are keyed by the sequence length, so new ones are built in this stage's folder.
  RoPE's base stays `model.rotary_base` unless `code_pretrain.rotary_base` sets one (the paper does not say).
"""

from __future__ import annotations

import dataclasses

from qwen_hpc.config.schema import QwenConfig
from qwen_hpc.stages.base import StageContext, StageResult

NAME = "code_pretrain"
DESCRIPTION = "Code-Qwen: continued pretraining of the base model on code (pretrain's loop, own section)"
CONFIG_KEYS = ("model", "code_pretrain")
UPSTREAM = ("tokenizer", "tokens", "pretrain")  # tokenizer: copied into the folder, which then describes itself
DISTRIBUTED = True


def branch_model(cfg: QwenConfig):  # -> ModelConfig
    """The model of this branch: the base model's dimensions with the branch's context and RoPE base."""
    section = cfg.code_pretrain
    changes = {}
    if section.seq_length is not None:
        changes["seq_length"] = section.seq_length
    if section.rotary_base is not None:
        changes["rotary_base"] = section.rotary_base
    return dataclasses.replace(cfg.model, **changes) if changes else cfg.model


def branch_blend(cfg: QwenConfig, ctx: StageContext):  # -> (pairs, eod_id, n_vocab)
    """The tokens stage's sources named in `source_weights`, with those weights."""
    from qwen_hpc import outputs

    tokens = outputs.read_blend(ctx.stage_path("tokens"))
    weights = cfg.code_pretrain.source_weights
    known = {s.name for s in tokens.sources}
    unknown = sorted(set(weights) - known)
    if unknown:
        raise ValueError(f"code_pretrain.source_weights names {unknown}; the tokens stage has {sorted(known)}")
    pairs = [(str(s.prefix), float(weights[s.name])) for s in tokens.sources if s.name in weights and s.tokens]
    if not pairs:
        raise ValueError(f"code_pretrain.source_weights={dict(weights)}: none of these sources has tokens")
    return pairs, tokens.eod_id, tokens.n_vocab


def init_checkpoint(cfg: QwenConfig, ctx: StageContext):  # -> Path
    from pathlib import Path

    from qwen_hpc import outputs

    path = Path(cfg.code_pretrain.init_checkpoint or outputs.checkpoints_dir(ctx.stage_path("pretrain")))
    if not path.exists():
        raise FileNotFoundError(f"code_pretrain.init_checkpoint: {path} does not exist")
    return path


def run(cfg: QwenConfig, ctx: StageContext) -> StageResult:
    from qwen_hpc.stages.pretraining import train_stage

    section, model = cfg.code_pretrain, branch_model(cfg)
    start = init_checkpoint(cfg, ctx)
    return train_stage(cfg, ctx, model, section.train, section.optimizer, branch_blend(cfg, ctx), start,
                       {"init_checkpoint": str(start), "seq_length": model.seq_length,
                        "rotary_base": model.rotary_base})


def progress(stage_dir):  # noqa: ANN001, ANN201 - the pretrain stage's measure (latest checkpoint iteration)
    from qwen_hpc.stages.registry import get_stage

    return get_stage("pretrain").progress(stage_dir)
