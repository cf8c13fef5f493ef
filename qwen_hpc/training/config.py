"""Optimizer and training-run settings for pretraining (Qwen report §2.4; spec §4).

Both dataclasses are OmegaConf-structured-config compatible (int/float/str/bool/Optional fields only) and
validate themselves in `__post_init__`, raising `ValueError` messages that name the offending field.
Checks that need the world size (global batch divisible by micro batch × data-parallel size, model
parallel sizes dividing the world) run in `check_parallel_layout` when training starts.

Defaults of `OptimizerConfig` are the paper's: AdamW β=(0.9, 0.95), ε=1e-8, peak LR 3e-4, cosine decay to
10 % of the peak; weight decay 0.1 and gradient clipping 1.0 come from the original Qwen-7B memo.
Defaults of `TrainConfig` are the tiny CPU run of the walking skeleton.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from qwen_hpc.model.config import ModelConfig
from qwen_hpc.utils.config_fields import runtime

DECAY_STYLES = ("cosine", "linear", "constant")
PRECISIONS = ("auto", "fp32", "bf16")


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def _require_int(prefix: str, obj: object, fields: tuple[str, ...], minimum: int) -> None:
    for name in fields:
        value = getattr(obj, name)
        _require(
            isinstance(value, int) and not isinstance(value, bool) and value >= minimum,
            f"{prefix}.{name}={value!r} must be an integer >= {minimum}",
        )


@dataclass
class OptimizerConfig:
    lr: float = 3e-4
    min_lr_ratio: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    weight_decay: float = 0.1
    clip_grad: float = 1.0  # 0 = no clipping
    warmup_iters: int = 20
    decay_style: str = "cosine"  # cosine | linear | constant
    decay_iters: Optional[int] = None  # noqa: UP045 (OmegaConf needs typing.Optional); None = train_iters

    def __post_init__(self) -> None:
        _require(self.lr > 0, f"optimizer.lr={self.lr} must be positive")
        _require(
            0.0 <= self.min_lr_ratio <= 1.0, f"optimizer.min_lr_ratio={self.min_lr_ratio} must be in [0, 1]"
        )
        for name in ("beta1", "beta2"):
            value = getattr(self, name)
            _require(0.0 <= value < 1.0, f"optimizer.{name}={value} must be in [0, 1)")
        _require(self.eps > 0, f"optimizer.eps={self.eps} must be positive")
        _require(self.weight_decay >= 0, f"optimizer.weight_decay={self.weight_decay} must be >= 0")
        _require(self.clip_grad >= 0, f"optimizer.clip_grad={self.clip_grad} must be >= 0 (0 = off)")
        _require_int("optimizer", self, ("warmup_iters",), 0)
        _require(
            self.decay_style in DECAY_STYLES,
            f"optimizer.decay_style={self.decay_style!r} must be one of {'|'.join(DECAY_STYLES)}",
        )
        if self.decay_iters is not None:
            _require_int("optimizer", self, ("decay_iters",), 1)

    @property
    def min_lr(self) -> float:
        return self.lr * self.min_lr_ratio

    def resolved_decay_iters(self, train_iters: int) -> int:
        return self.decay_iters if self.decay_iters is not None else train_iters


@dataclass
class TrainConfig:
    train_iters: int = 300
    micro_batch_size: int = 8
    global_batch_size: int = 8
    tensor_model_parallel_size: int = 1
    pipeline_model_parallel_size: int = 1
    seed: int = 1234
    # runtime(...): how the run is observed and kept, not what it learns (never in the config hash)
    log_interval: int = runtime(1)
    eval_interval: int = runtime(50)  # 0 = no evaluation during training (a final one always runs)
    eval_iters: int = 4  # global batches per evaluation
    save_interval: int = runtime(100)  # 0 = save only at the end (and on preemption)
    keep_last_checkpoints: int = runtime(2)
    split: str = "95,5,0"  # train,valid,test weights of each source
    precision: str = "auto"  # auto = bf16 on CUDA, fp32 on CPU | fp32 | bf16
    max_consecutive_nonfinite: int = runtime(5)
    use_distributed_optimizer: bool = False
    peak_flops_per_device: float = runtime(0.0)  # FLOP/s of one device at the run's precision; 0 = no MFU

    def __post_init__(self) -> None:
        _require_int(
            "train",
            self,
            (
                "train_iters",
                "micro_batch_size",
                "global_batch_size",
                "tensor_model_parallel_size",
                "pipeline_model_parallel_size",
                "log_interval",
                "keep_last_checkpoints",
                "max_consecutive_nonfinite",
            ),
            1,
        )
        _require_int("train", self, ("seed", "eval_interval", "eval_iters", "save_interval"), 0)
        _require(
            self.global_batch_size % self.micro_batch_size == 0,
            f"train.global_batch_size={self.global_batch_size} must be divisible by "
            f"train.micro_batch_size={self.micro_batch_size}",
        )
        _require(
            self.eval_interval == 0 or self.eval_iters > 0,
            f"train.eval_iters={self.eval_iters} must be positive when train.eval_interval={self.eval_interval} > 0",
        )
        parts = self.split_weights
        _require(
            len(parts) == 3 and parts[0] > 0 and all(p >= 0 for p in parts),
            f"train.split={self.split!r} must be three non-negative weights 'train,valid,test' with train > 0",
        )
        _require(
            self.precision in PRECISIONS,
            f"train.precision={self.precision!r} must be one of {'|'.join(PRECISIONS)}",
        )
        _require(
            self.peak_flops_per_device >= 0,
            f"train.peak_flops_per_device={self.peak_flops_per_device} must be >= 0",
        )

    @property
    def split_weights(self) -> list[float]:
        if not re.fullmatch(r"\s*[0-9.]+\s*(,\s*[0-9.]+\s*){2}", self.split or ""):
            return []
        return [float(x) for x in self.split.split(",")]

    @property
    def model_parallel_size(self) -> int:
        return self.tensor_model_parallel_size * self.pipeline_model_parallel_size

    def data_parallel_size(self, world_size: int) -> int:
        return world_size // self.model_parallel_size

    def num_microbatches(self, world_size: int) -> int:
        return self.global_batch_size // (self.micro_batch_size * self.data_parallel_size(world_size))


def check_model_parallel(model: ModelConfig, train: TrainConfig) -> None:
    """The model must split evenly over the tensor- and pipeline-parallel ranks."""
    tp, pp = train.tensor_model_parallel_size, train.pipeline_model_parallel_size
    for name in ("num_attention_heads", "ffn_hidden_size"):
        value = getattr(model, name)
        _require(
            value % tp == 0,
            f"model.{name}={value} must be divisible by train.tensor_model_parallel_size={tp}",
        )
    _require(
        model.num_layers % pp == 0,
        f"model.num_layers={model.num_layers} must be divisible by train.pipeline_model_parallel_size={pp}",
    )
    if model.padded_vocab_size is not None:
        _require(
            model.padded_vocab_size % tp == 0,
            f"model.padded_vocab_size={model.padded_vocab_size} must be divisible by "
            f"train.tensor_model_parallel_size={tp}",
        )


def check_parallel_layout(
    train: TrainConfig, optim: OptimizerConfig, world_size: int, *, model: ModelConfig | None = None
) -> None:
    """Checks that need the world size or several configs; run before submission and when training starts."""
    if model is not None:
        check_model_parallel(model, train)
    mp = train.model_parallel_size
    _require(
        world_size % mp == 0,
        f"world size {world_size} must be divisible by train.tensor_model_parallel_size="
        f"{train.tensor_model_parallel_size} × train.pipeline_model_parallel_size={train.pipeline_model_parallel_size}",
    )
    dp = world_size // mp
    _require(
        train.global_batch_size % (train.micro_batch_size * dp) == 0,
        f"train.global_batch_size={train.global_batch_size} must be divisible by train.micro_batch_size="
        f"{train.micro_batch_size} × data-parallel size {dp} (world size {world_size} / model-parallel size {mp})",
    )
    decay = optim.resolved_decay_iters(train.train_iters)
    _require(
        optim.warmup_iters < decay,
        f"optimizer.warmup_iters={optim.warmup_iters} must be smaller than the decay length "
        f"(optimizer.decay_iters or train.train_iters) = {decay}",
    )
