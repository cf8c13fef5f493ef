"""Stage `tokens`: encode every curated source into a Megatron-Core indexed dataset (`.bin/.idx`,
end-of-document token appended) and write the blend (prefix, weight) the pretraining stage samples from.
A source's weight is its token count times its upsampling factor from the data manifest (Qwen report
§2.1, selective up-sampling).

Parallel by shard: the stage plans one task per input shard, the launch layer maps them (a process pool
of `tokens.workers` locally, one in-process loop under `launcher=debug`, a Slurm job array under
`launcher=slurm`: `qwen_hpc.launch.array`), and the parts are merged in shard
order into one dataset per source, so the output does not depend on how the work was spread."""

from __future__ import annotations

from qwen_hpc.config.schema import QwenConfig
from qwen_hpc.stages.base import StageContext, StageResult

NAME = "tokens"
DESCRIPTION = "encode curated shards into Megatron-Core indexed datasets (.bin/.idx) + blend weights"
CONFIG_KEYS = ("tokens",)
UPSTREAM = ("data", "tokenizer")
DISTRIBUTED = False

BLEND_FILE = "blend.json"
PARTS_DIR = "parts"


def run(cfg: QwenConfig, ctx: StageContext) -> StageResult:
    import shutil
    import time

    from qwen_hpc.data.manifest import read_manifest
    from qwen_hpc.launch.array import array_map
    from qwen_hpc.launch.submit import effective_launcher
    from qwen_hpc.tokenizer.encoding import TokenizerFiles
    from qwen_hpc.tokenizer.indexed import (
        encode_shard_task,
        merge_parts,
        plan_shard_tasks,
        smallest_dtype,
        summarize,
    )
    from qwen_hpc.utils.io import write_json

    tok_dir = ctx.stage_path("tokenizer")
    files = TokenizerFiles(tok_dir / f"{cfg.tokenizer.name}.tiktoken", tok_dir / "special_tokens.json")
    tokenizer = files.load()
    dtype = smallest_dtype(tokenizer.n_vocab)
    sources, text_key = read_manifest(ctx.stage_path("data") / "manifest.json")
    tasks = {
        s.name: plan_shard_tasks(
            s.shards,
            ctx.stage_dir / PARTS_DIR / s.name,
            text_key,
            files,
            dtype=dtype,
            append_eod=cfg.tokens.append_eod,
        )
        for s in sources
    }
    launcher = effective_launcher(cfg.launcher, cfg.tokens.resources)
    mapper = array_map(
        launcher, cfg.tokens.workers, ctx.stage_dir / "logs" / "array", name=f"qwen-{cfg.run.name}-tokens"
    )
    start = time.perf_counter()
    results = mapper(encode_shard_task, [t for group in tasks.values() for t in group])
    entries, metrics = [], {"documents": 0, "tokens": 0, "shards": len(results)}
    for source in sources:
        per_shard, results = results[: len(tasks[source.name])], results[len(tasks[source.name]) :]
        prefix = str(ctx.stage_dir / source.name)
        merge_parts([t.out_prefix for t in tasks[source.name]], prefix, dtype)
        stats = summarize(per_shard, tokenizer, dtype, prefix, cfg.tokens.append_eod, 0.0)
        entries.append(
            {
                "name": source.name,
                "prefix": source.name,
                "tokens": stats["tokens"],
                "documents": stats["documents"],
                "upsample": source.weight,
                "dtype": stats["dtype"],
            }
        )
        metrics["documents"] += stats["documents"]
        metrics["tokens"] += stats["tokens"]
        metrics[f"tokens/{source.name}"] = stats["tokens"]
    seconds = time.perf_counter() - start
    metrics["tokens_per_s"] = round(metrics["tokens"] / max(seconds, 1e-9), 1)
    shutil.rmtree(ctx.stage_dir / PARTS_DIR, ignore_errors=True)
    total = sum(e["tokens"] * e["upsample"] for e in entries) or 1.0
    for e in entries:
        e["weight"] = e["tokens"] * e["upsample"] / total
    write_json(
        ctx.stage_dir / BLEND_FILE,
        {
            "sources": entries,
            "eod_id": tokenizer.eod_id,
            "n_vocab": tokenizer.n_vocab,
            "dtype": str(dtype.__name__),
            "tokenizer": {"ranks": str(files.ranks), "special_tokens": str(files.special_tokens)},
        },
    )
    ctx.tracker.log(metrics)
    return StageResult("completed", metrics=metrics, outputs={"blend": str(ctx.stage_dir / BLEND_FILE)})


def read_blend(tokens_dir) -> tuple[list[tuple[str, float]], int, int]:
    """(prefix, weight) pairs with absolute prefixes, the eod id and the tokenizer's n_vocab."""
    from pathlib import Path

    from qwen_hpc.utils.io import read_json

    blend = read_json(Path(tokens_dir) / BLEND_FILE)
    pairs = [
        (str(Path(tokens_dir) / e["prefix"]), float(e["weight"])) for e in blend["sources"] if e["tokens"]
    ]
    return pairs, int(blend["eod_id"]), int(blend["n_vocab"])
