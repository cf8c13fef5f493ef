"""Helpers shared by the training tests: a learnable token dataset, a recording tracker, tiny configs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from megatron.core.datasets.indexed_dataset import IndexedDatasetBuilder

from qwen_hpc.model.config import ModelConfig
from qwen_hpc.training.config import OptimizerConfig, TrainConfig

N_VOCAB = 512
EOD = 0


def write_token_dataset(prefix: Path, *, n_docs: int = 300, seed: int = 0) -> str:
    """Documents are arithmetic progressions mod (N_VOCAB - 1), each followed by EOD: learnable, not trivial."""
    rng = np.random.default_rng(seed)
    builder = IndexedDatasetBuilder(f"{prefix}.bin", dtype=np.uint16)
    for _ in range(n_docs):
        length, start, step = rng.integers(20, 200), rng.integers(1, N_VOCAB), rng.integers(1, 4)
        doc = (start + step * np.arange(length)) % (N_VOCAB - 1) + 1
        builder.add_item(torch.from_numpy(np.append(doc, EOD).astype(np.int64)))
        builder.end_document()
    builder.finalize(f"{prefix}.idx")
    return str(prefix)


class RecordingTracker:
    def __init__(self) -> None:
        self.rows: list[tuple[int | None, dict[str, Any]]] = []

    def log(self, metrics: dict[str, Any], step: int | None = None) -> None:
        self.rows.append((step, dict(metrics)))

    def close(self) -> None:
        return None

    def series(self, key: str) -> dict[int, float]:
        return {step: m[key] for step, m in self.rows if key in m and step is not None}


def tiny_model() -> ModelConfig:
    return ModelConfig(
        name="test", num_layers=2, hidden_size=64, num_attention_heads=4, ffn_hidden_size=176, seq_length=64
    )


def train_cfg(**overrides: Any) -> TrainConfig:
    base: dict[str, Any] = dict(
        train_iters=24,
        micro_batch_size=4,
        global_batch_size=8,
        eval_interval=12,
        eval_iters=2,
        save_interval=10,
        keep_last_checkpoints=3,
        split="90,10,0",
    )
    return TrainConfig(**{**base, **overrides})


def optim_cfg(**overrides: Any) -> OptimizerConfig:
    return OptimizerConfig(**{"lr": 3e-3, "warmup_iters": 4, **overrides})
