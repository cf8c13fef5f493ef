"""Pretraining data curation (Qwen report §2.1): read sources, filter (language ID, Gopher/C4 rules, a learned
quality model), exact + MinHash-LSH dedup, 13-gram decontamination, mixture, JSONL shards — every document
accounted for.

A library: no Hydra, Slurm or W&B here. The `data` stage calls, in order, `check_sources(cfg)` (before
submitting), `prepare_sources(cfg, dir)` and `curate(cfg, sources, out_dir, map_fn=...)`, where `map_fn`
(from `qwen_hpc.launch.array`) runs the per-shard step in processes or as a Slurm job array.
"""

from qwen_hpc.data.config import (
    DataConfig,
    MissingSourcesError,
    NormalizeConfig,
    SourceConfig,
    ValidationConfig,
    check_sources,
)
from qwen_hpc.data.document import Document
from qwen_hpc.data.pipeline import curate, plan_tasks, prepare_sources, sequential_map
from qwen_hpc.data.stats import CurationStats, SourceStats

__all__ = [
    "CurationStats",
    "DataConfig",
    "Document",
    "MissingSourcesError",
    "NormalizeConfig",
    "SourceConfig",
    "SourceStats",
    "ValidationConfig",
    "check_sources",
    "curate",
    "plan_tasks",
    "prepare_sources",
    "sequential_map",
]
