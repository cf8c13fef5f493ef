"""Stage `tokenizer` (Qwen report §2.2): get a byte-level BPE vocabulary with Qwen's pre-tokenization
(every digit its own pre-token) — `train` one on the curated text, `extend` an existing ranks file the
way Qwen extended cl100k_base, or `load` a released one such as `qwen.tiktoken` — add the ChatML special
tokens after the regular ranks, save a `.tiktoken` file that loads straight into `tiktoken.Encoding`, and
measure compression per source against any other ranks files given (the paper's Figure 3)."""

from __future__ import annotations

from qwen_hpc.config.schema import QwenConfig
from qwen_hpc.stages.base import StageContext, StageResult

NAME = "tokenizer"
DESCRIPTION = "train / extend / load a byte-level BPE (Qwen pattern) into a .tiktoken file + ChatML specials"
CONFIG_KEYS = ("tokenizer",)
UPSTREAM = ("data",)
DISTRIBUTED = False

COMPRESSION_JSON = "compression.json"
COMPRESSION_PNG = "compression.png"


def run(cfg: QwenConfig, ctx: StageContext) -> StageResult:
    import time

    from qwen_hpc import outputs
    from qwen_hpc.data.manifest import iter_texts
    from qwen_hpc.tokenizer.build import build_tokenizer
    from qwen_hpc.tokenizer.config import resolve_path
    from qwen_hpc.tokenizer.evaluate import compression_chart_png, compression_report, load_comparison
    from qwen_hpc.utils.io import read_json, write_bytes

    tk = cfg.tokenizer
    sources, text_key = outputs.read_manifest(ctx.stage_path("data"))
    manifest = outputs.manifest_path(ctx.stage_path("data"))
    start = time.perf_counter()
    texts = None if tk.kind == "load" else iter_texts(manifest, tk.max_train_chars)
    tokenizer = build_tokenizer(tk, texts=texts)
    build_s = time.perf_counter() - start
    tokenizer.save(ctx.stage_dir, tk.name)

    compare, skipped = {}, {}
    for path in tk.compare_ranks:
        try:
            other = load_comparison(resolve_path(path))
        except FileNotFoundError as exc:
            skipped[str(path)] = str(exc)
            continue
        compare[other.encoding.name] = other
    reference = tk.reference if tk.reference in compare else None
    if tk.reference and reference is None and tk.reference != tk.name:
        skipped[f"reference {tk.reference}"] = "not among the compared tokenizers: ours is the reference"
    report = compression_report(
        tokenizer,
        {s.name: s.shards for s in sources},
        ctx.stage_dir / COMPRESSION_JSON,
        text_key=text_key,
        max_docs_per_source=tk.compression_max_docs,
        compare=compare,
        reference=reference,
        skipped=skipped,
    )
    chart = compression_chart_png(
        read_json(ctx.stage_dir / COMPRESSION_JSON), title=f"{cfg.run.name}: tokenizer"
    )
    write_bytes(ctx.stage_dir / COMPRESSION_PNG, chart)

    metrics = {
        "kind": tk.kind,
        "n_regular": tokenizer.n_regular,
        "n_vocab": tokenizer.n_vocab,
        "eod_id": tokenizer.eod_id,
        "build_seconds": round(build_s, 2),
    }
    metrics.update({f"chars_per_token/{src}": v for src, v in report.items()})
    ctx.tracker.log({k: v for k, v in metrics.items() if k != "kind"})
    return StageResult(
        "completed",
        metrics=metrics,
        outputs={
            "ranks": str(ctx.stage_dir / f"{tk.name}.tiktoken"),
            "compression": str(ctx.stage_dir / COMPRESSION_PNG),
        },
    )
