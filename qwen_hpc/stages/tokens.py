"""Stage `tokens`: encode every curated source into a Megatron-Core indexed dataset (`.bin/.idx`,
end-of-document token appended) and write the blend (prefix, weight) the pretraining stage samples from.
A source's weight is its token count times its upsampling factor from the data manifest (Qwen report
§2.1, selective up-sampling).

Parallel by shard: the stage plans one task per input shard, the launch layer maps them (a process pool
of `tokens.workers` locally, one in-process loop under `launcher=debug`, a Slurm job array under
`launcher=slurm`: `qwen_hpc.launch.array`), and the parts are merged in shard
order into one dataset per source, so the output does not depend on how the work was spread.

What keeps the stage near raw tiktoken speed (benchmarks/tokens_throughput.py) is paying its fixed costs
once, or while encoding: tasks are planned before this process reads the vocabulary (their token dtype is
decided where they run), so encoding starts at once; `tokens.caller_threads` of the workers are threads of this
process, which load the vocabulary once for all of them (`cached_tokenizer`; its copy then gives the blend
its eod id) while any spawned worker is still starting Python; shards are handed out largest first."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from qwen_hpc.config.schema import QwenConfig
from qwen_hpc.stages.base import StageContext, StageResult

NAME = "tokens"
DESCRIPTION = "encode curated shards into Megatron-Core indexed datasets (.bin/.idx) + blend weights"
CONFIG_KEYS = ("tokens",)
UPSTREAM = ("data", "tokenizer")
DISTRIBUTED = False

PARTS_DIR = "parts"


def run(cfg: QwenConfig, ctx: StageContext) -> StageResult:
    import shutil
    import time

    from qwen_hpc import outputs
    from qwen_hpc.launch.array import array_map
    from qwen_hpc.launch.submit import effective_launcher
    from qwen_hpc.tokenizer.indexed import (
        cached_tokenizer,
        encode_shard_task,
        merge_parts,
        plan_shard_tasks,
        smallest_dtype,
        summarize,
    )
    from qwen_hpc.utils.io import write_json

    files = outputs.tokenizer_files(ctx.stage_path("tokenizer"), cfg.tokenizer.name)  # before any task
    sources, text_key = outputs.read_manifest(ctx.stage_path("data"))
    tasks = {
        s.name: plan_shard_tasks(
            s.shards, ctx.stage_dir / PARTS_DIR / s.name, text_key, files, append_eod=cfg.tokens.append_eod
        )
        for s in sources
    }
    launcher = effective_launcher(cfg.launcher, cfg.tokens.resources)
    mapper = array_map(
        launcher,
        cfg.tokens.workers,
        ctx.stage_dir / "logs" / "array",
        name=f"qwen-{cfg.run.name}-tokens",
        caller_threads=cfg.tokens.caller_threads,
    )
    if launcher.kind == "slurm":  # a broken vocabulary fails here, not in every task of a submitted array
        cached_tokenizer(files)
    start = time.perf_counter()
    results = _map_largest_first(mapper, encode_shard_task, [t for group in tasks.values() for t in group])
    tokenizer = cached_tokenizer(files)  # loaded already when this process encoded shards itself
    dtype = smallest_dtype(tokenizer.n_vocab)
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
        ctx.stage_dir / outputs.BLEND,
        {
            "sources": entries,
            "eod_id": tokenizer.eod_id,
            "n_vocab": tokenizer.n_vocab,
            "dtype": str(dtype.__name__),
            "tokenizer": {"ranks": str(files.ranks), "special_tokens": str(files.special_tokens)},
        },
    )
    ctx.tracker.log(metrics)
    return StageResult("completed", metrics=metrics, outputs={"blend": str(ctx.stage_dir / outputs.BLEND)})


def _map_largest_first(mapper: Any, fn: Callable[[Any], Any], tasks: list[Any]) -> list[Any]:
    """`mapper(fn, tasks)` with the tasks handed out by decreasing shard size (results in task order):
    the longest-processing-time-first rule, which leaves the least idle time at the end."""
    order = sorted(range(len(tasks)), key=lambda i: -os.path.getsize(tasks[i].shard))
    done = mapper(fn, [tasks[i] for i in order])
    results: list[Any] = [None] * len(tasks)
    for i, result in zip(order, done, strict=True):
        results[i] = result
    return results

