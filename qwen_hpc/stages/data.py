"""Stage `data` (Qwen report §2.1): read sources, normalize, drop bad and duplicate documents, write
shards + a manifest for the tokenizer and tokens stages, and account for every document."""

from __future__ import annotations

from qwen_hpc.config.schema import QwenConfig
from qwen_hpc.stages.base import StageContext, StageResult

NAME = "data"
DESCRIPTION = "curate text: read sources, normalize, exact dedup, shard, count every document"
CONFIG_KEYS = ("data",)
UPSTREAM: tuple[str, ...] = ()
DISTRIBUTED = False


def run(cfg: QwenConfig, ctx: StageContext) -> StageResult:
    from qwen_hpc.data.pipeline import curate, prepare_sources

    # configured sources first: when a text is in both, the user's copy is the one kept
    sources = prepare_sources(cfg.data, ctx.stage_dir / "embedded")
    stats = curate(cfg.data, sources, ctx.stage_dir)
    metrics = {
        "documents_read": stats.read,
        "documents_kept": stats.kept,
        "documents_dropped": sum(stats.dropped.values()),
    }
    metrics.update({f"dropped/{reason}": n for reason, n in sorted(stats.dropped.items())})
    ctx.tracker.log(metrics)
    return StageResult(
        "completed", metrics=metrics, outputs={"manifest": str(ctx.stage_dir / "manifest.json")}
    )
