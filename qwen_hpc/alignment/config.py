"""Typed settings of supervised fine-tuning (Qwen report §3.1; spec §7). Validated in `__post_init__`,
errors name the key. Optimizer and run settings reuse pretraining's dataclasses (a fresh optimizer and LR
schedule: only the weights come from the initial checkpoint)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import List, Optional  # noqa: UP035 (OmegaConf needs typing generics)

from qwen_hpc.alignment.chatml import DEFAULT_SYSTEM, MASKINGS
from qwen_hpc.alignment.formats import FORMATS
from qwen_hpc.alignment.sequences import OVERLONG, SEQUENCE_MODES
from qwen_hpc.training.config import OptimizerConfig, TrainConfig

_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass
class SFTSourceConfig:
    """One chat data set: files or globs (JSONL, JSON array, `.gz`), a format (`auto` detects it per file),
    a mixture weight (conversations are repeated `weight` times: 2.5 = twice, plus a seeded half of them
    once more) and an optional cap on records read."""

    name: str
    paths: List[str]  # noqa: UP006
    format: str = "auto"
    weight: float = 1.0
    max_conversations: Optional[int] = None  # noqa: UP045

    def __post_init__(self) -> None:
        where = f"sft.sources[name={self.name!r}]"
        if not _NAME_RE.match(self.name or ""):
            raise ValueError(f"{where}.name must be non-empty letters, digits, '_', '.', '-'")
        if not self.paths or any(not isinstance(p, str) or not p.strip() for p in self.paths):
            raise ValueError(f"{where}.paths={list(self.paths or [])!r} needs at least one non-empty path or glob")
        if self.format not in FORMATS:
            raise ValueError(f"{where}.format={self.format!r} must be one of {'|'.join(FORMATS)}")
        if not self.weight > 0:
            raise ValueError(f"{where}.weight={self.weight} must be > 0")
        if self.max_conversations is not None and self.max_conversations < 1:
            raise ValueError(f"{where}.max_conversations={self.max_conversations} must be >= 1")


@dataclass
class EmbeddedSFTConfig:
    """The generated task set used when `sft.sources` is empty (`qwen_hpc.alignment.embedded`)."""

    train_conversations: int = 4000
    heldout_conversations: int = 200
    seed: int = 0
    weights: List[float] = field(default_factory=lambda: [0.5, 0.3, 0.2])  # noqa: UP006

    def __post_init__(self) -> None:
        if self.train_conversations < 1 or self.heldout_conversations < 0:
            raise ValueError("sft.embedded.train_conversations must be >= 1, heldout_conversations >= 0")
        if len(self.weights) != 3 or any(w < 0 for w in self.weights) or not sum(self.weights) > 0:
            raise ValueError(
                f"sft.embedded.weights={list(self.weights)} must be 3 non-negative weights "
                "(arithmetic, follow_up, docstring) with a positive sum"
            )


def _sft_train() -> TrainConfig:
    """The toy SFT run's training settings (config/stage/sft.yaml restates them): validation comes from
    `valid_fraction` of the conversations, so the token split keeps everything for training."""
    return TrainConfig(eval_interval=100, eval_iters=2, split="100,0,0")


def _sft_optimizer() -> OptimizerConfig:
    return OptimizerConfig(lr=1.0e-3)  # a toy model wants a large step; the paper: 2e-6 (memo: 1e-5)


# The `sft` stage's own defaults (config/stage/sft.yaml restates them): the toy run above made long enough for
# the tiny model to learn the embedded tasks (README: held-out arithmetic 0 % before, about a third after).
# The branches (code_sft, math_sft) keep the toy run's.
def tiny_chat_train() -> TrainConfig:
    return replace(_sft_train(), train_iters=2000, eval_interval=250, save_interval=250)


def tiny_chat_optimizer() -> OptimizerConfig:
    # linear decay to 0: the tiny model's accuracy climbs as the step shrinks at the end of the run
    return replace(_sft_optimizer(), min_lr_ratio=0.0, decay_style="linear")


def tiny_chat_tasks() -> EmbeddedSFTConfig:
    # one pass over the conversations (a second pass measured lower); docstring replies are long and barely
    # learnable at this size, so they take a tenth of the conversations, not a fifth
    return EmbeddedSFTConfig(train_conversations=25000, weights=[0.6, 0.3, 0.1])


@dataclass
class SFTConfig:
    # empty: the pretrain stage's checkpoints; else a checkpoint root or iter_* folder, a run folder with
    # checkpoints/, or an import_hf folder (model_config.json + checkpoints/ + tokenizer/)
    init_checkpoint: str = ""
    train: TrainConfig = field(default_factory=_sft_train)
    optimizer: OptimizerConfig = field(default_factory=_sft_optimizer)
    masking: str = "paper"  # paper | finetune_py | all
    sequences: str = "packing"  # packing | padding
    overlong: str = "truncate"  # truncate (at a turn boundary) | drop
    system: str = DEFAULT_SYSTEM  # the system turn of conversations that have none
    dropout: Optional[float] = None  # noqa: UP045 - hidden and attention dropout while fine-tuning; None = model's
    valid_fraction: float = 0.02  # of the conversations (seeded by their origin), for the validation loss
    sources: List[SFTSourceConfig] = field(default_factory=list)  # noqa: UP006 - empty: the embedded set
    embedded: EmbeddedSFTConfig = field(default_factory=EmbeddedSFTConfig)
    # after training, greedy replies to this many held-out embedded conversations are scored (0 = off)
    heldout_eval: int = 64
    max_new_tokens: int = 48

    def __post_init__(self) -> None:
        if self.masking not in MASKINGS:
            raise ValueError(f"sft.masking={self.masking!r} must be one of {'|'.join(MASKINGS)}")
        if self.sequences not in SEQUENCE_MODES:
            raise ValueError(f"sft.sequences={self.sequences!r} must be one of {'|'.join(SEQUENCE_MODES)}")
        if self.overlong not in OVERLONG:
            raise ValueError(f"sft.overlong={self.overlong!r} must be one of {'|'.join(OVERLONG)}")
        if self.dropout is not None and not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"sft.dropout={self.dropout} must be in [0, 1)")
        if not 0.0 <= self.valid_fraction < 1.0:
            raise ValueError(f"sft.valid_fraction={self.valid_fraction} must be in [0, 1)")
        if self.heldout_eval < 0 or self.max_new_tokens < 1:
            raise ValueError("sft.heldout_eval must be >= 0 and sft.max_new_tokens >= 1")
        names = [s.name for s in self.sources]
        if len(set(names)) != len(names):
            raise ValueError(f"sft.sources has duplicate names: {names}")
