"""One config dataclass per stage. Domain components bring their own dataclasses; a stage config
adds only what the stage itself needs (its resources, its knobs)."""

from __future__ import annotations

from dataclasses import dataclass, field

from qwen_hpc.config.resources import ResourceOverrides
from qwen_hpc.data.config import DataConfig
from qwen_hpc.tokenizer.config import TokenizerConfig
from qwen_hpc.training.config import OptimizerConfig, TrainConfig


@dataclass
class DataStageConfig(DataConfig):
    resources: ResourceOverrides = field(default_factory=ResourceOverrides)


@dataclass
class TokenizerStageConfig(TokenizerConfig):
    resources: ResourceOverrides = field(default_factory=ResourceOverrides)


@dataclass
class TokensStageConfig:
    workers: int = 2
    append_eod: bool = True
    resources: ResourceOverrides = field(default_factory=ResourceOverrides)

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"tokens.workers={self.workers} must be >= 1")


@dataclass
class PretrainStageConfig:
    train: TrainConfig = field(default_factory=TrainConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    resources: ResourceOverrides = field(default_factory=ResourceOverrides)


@dataclass
class EvaluateStageConfig:
    eval_iters: int = 20
    micro_batch_size: int = 8
    resources: ResourceOverrides = field(default_factory=ResourceOverrides)

    def __post_init__(self) -> None:
        if self.eval_iters < 1:
            raise ValueError(f"evaluate.eval_iters={self.eval_iters} must be >= 1")
        if self.micro_batch_size < 1:
            raise ValueError(f"evaluate.micro_batch_size={self.micro_batch_size} must be >= 1")


@dataclass
class ReportStageConfig:
    title: str = "qwen-hpc report"
    smoothing: int = 10
    resources: ResourceOverrides = field(default_factory=ResourceOverrides)

    def __post_init__(self) -> None:
        if self.smoothing < 1:
            raise ValueError(f"report.smoothing={self.smoothing} must be >= 1")


@dataclass
class ExportHfStageConfig:
    # empty: runs/<experiment>/pretrain/checkpoints (its `latest`); or a root or one iter_* folder
    checkpoint: str = ""
    # empty: runs/<experiment>/export_hf/hf
    output: str = ""
    dtype: str = "float32"
    resources: ResourceOverrides = field(default_factory=ResourceOverrides)

    def __post_init__(self) -> None:
        if self.dtype not in ("float32", "bfloat16", "float16"):
            raise ValueError(f"export_hf.dtype={self.dtype!r} must be float32|bfloat16|float16")


@dataclass
class ImportHfStageConfig:
    hf_path: str = ""  # a Hugging Face Qwen2 folder (required to run the stage)
    output: str = ""  # empty: runs/<experiment>/import_hf/model
    tp: int = 1
    pp: int = 1
    resources: ResourceOverrides = field(default_factory=ResourceOverrides)

    def __post_init__(self) -> None:
        if self.tp < 1 or self.pp < 1:
            raise ValueError(f"import_hf.tp={self.tp} and import_hf.pp={self.pp} must be >= 1")
