"""Stage `data` (Qwen report §2.1): read sources, filter (language ID, Gopher/C4 rules, learned quality
score), exact + MinHash-LSH dedup, 13-gram decontamination, mixture; write shards + a manifest for the
tokenizer and tokens stages, a funnel plot, and account for every document. The per-shard step runs where
the stage runs: a Slurm job array under launcher=slurm, a process pool locally (qwen_hpc.launch.array)."""

from __future__ import annotations

from qwen_hpc.config.schema import QwenConfig
from qwen_hpc.stages.base import StageContext, StageResult, data_root

NAME = "data"
DESCRIPTION = "curate text: filters, language ID, quality model, exact + MinHash dedup, decontamination, mixture"
CONFIG_KEYS = ("data",)
UPSTREAM: tuple[str, ...] = ()
DISTRIBUTED = False


def run(cfg: QwenConfig, ctx: StageContext) -> StageResult:
    import time

    from qwen_hpc.data.pipeline import curate, prepare_sources
    from qwen_hpc.launch.array import array_map
    from qwen_hpc.launch.submit import effective_launcher
    from qwen_hpc.utils.io import read_json

    started = time.perf_counter()
    # configured sources first: when a text is in both, the user's copy is the one kept
    sources = prepare_sources(cfg.data, ctx.stage_dir / "embedded")
    launcher = effective_launcher(cfg.launcher, cfg.data.resources)
    map_fn = array_map(launcher, cfg.data.workers, ctx.stage_dir / "logs" / "array",
                       name=f"qwen-{cfg.run.name}-data-shards")
    # the eval n-gram index of a superseded run (same eval files, same n) is reused, not rebuilt
    earlier = tuple(sorted(ctx.run_dir.glob(f"{NAME}.superseded-*/cache"), reverse=True))
    stats = curate(cfg.data, sources, ctx.stage_dir, map_fn=map_fn, data_root=data_root(cfg),
                   cache_dir=ctx.stage_dir / "cache", earlier_caches=earlier)
    elapsed = time.perf_counter() - started
    metrics = {
        "documents_read": stats.read,
        "documents_kept": stats.kept,
        "documents_dropped": sum(stats.dropped.values()),
        "docs_per_s": round(stats.read / elapsed, 1) if elapsed > 0 else 0.0,
    }
    metrics.update({f"dropped/{reason}": n for reason, n in sorted(stats.dropped.items())})
    quality = (read_json(ctx.stage_dir / "stats.json").get("quality_model") or {})
    for key in ("heldout_accuracy", "heldout_roc_auc", "pool_below_threshold"):  # shown in the report's table
        if key in quality:
            metrics[f"quality_model/{key}"] = quality[key]
    ctx.tracker.log(metrics)
    return StageResult(
        "completed", metrics=metrics,
        outputs={"manifest": str(ctx.stage_dir / "manifest.json"), "funnel": str(ctx.stage_dir / "funnel.png")},
    )
