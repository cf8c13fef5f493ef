"""Stage `tokenizer` (Qwen report §2.2): train a byte-level BPE with Qwen's pre-tokenization (every
digit its own pre-token) on the curated text, add the ChatML special tokens after the regular ranks,
and save a `.tiktoken` ranks file that loads straight into `tiktoken.Encoding`."""

from __future__ import annotations

from qwen_hpc.config.schema import QwenConfig
from qwen_hpc.stages.base import StageContext, StageResult

NAME = "tokenizer"
DESCRIPTION = "train a byte-level BPE (Qwen pattern, single digits) into a .tiktoken file + ChatML specials"
CONFIG_KEYS = ("tokenizer",)
UPSTREAM = ("data",)
DISTRIBUTED = False


def run(cfg: QwenConfig, ctx: StageContext) -> StageResult:
    import time

    from qwen_hpc.data.manifest import iter_texts
    from qwen_hpc.tokenizer.build import build_tokenizer
    from qwen_hpc.tokenizer.evaluate import compression_report

    tk = cfg.tokenizer
    manifest = ctx.stage_path("data") / "manifest.json"
    start = time.perf_counter()
    tokenizer = build_tokenizer(tk, texts=iter_texts(manifest, tk.max_train_chars))
    train_s = time.perf_counter() - start
    tokenizer.save(ctx.stage_dir, tk.name)
    report = compression_report(tokenizer, manifest, ctx.stage_dir / "compression.json")
    metrics = {
        "n_regular": tokenizer.n_regular,
        "n_vocab": tokenizer.n_vocab,
        "eod_id": tokenizer.eod_id,
        "train_seconds": round(train_s, 2),
    }
    metrics.update({f"chars_per_token/{src}": v for src, v in report.items()})
    ctx.tracker.log(metrics)
    return StageResult(
        "completed", metrics=metrics, outputs={"ranks": str(ctx.stage_dir / f"{tk.name}.tiktoken")}
    )
