"""Pretraining data curation (Qwen report §2.1): read sources, filter, exact-dedup, write JSONL shards.

A library: no Hydra, Slurm or W&B here. The `data` stage calls, in order,
`check_sources(cfg)` (before submitting), `prepare_sources(cfg, dir)` and `curate(cfg, sources, out_dir)`.
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
from qwen_hpc.data.pipeline import build_filters, curate, prepare_sources
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
    "build_filters",
    "check_sources",
    "curate",
    "prepare_sources",
]
