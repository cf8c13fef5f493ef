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

from qwen_hpc.config.schema import QwenConfig
from qwen_hpc.stages.base import StageContext, StageResult

NAME = "tokens"
DESCRIPTION = "encode curated shards into Megatron-Core indexed datasets (.bin/.idx) + blend weights"
CONFIG_KEYS = ("tokens",)
UPSTREAM = ("data", "tokenizer")
DISTRIBUTED = False

PARTS_DIR = "parts"


def run(cfg: QwenConfig, ctx: StageContext) -> StageResult:
    from qwen_hpc import outputs
    from qwen_hpc.launch.array import array_map
    from qwen_hpc.launch.submit import effective_launcher
    from qwen_hpc.tokenizer.indexed import SourceShards, encode_sources
    from qwen_hpc.utils.io import write_json

    files = outputs.tokenizer_files(ctx.stage_path("tokenizer"), cfg.tokenizer.name)  # before any task
    manifest, text_key = outputs.read_manifest(ctx.stage_path("data"))
    map_fn = array_map(
        effective_launcher(cfg.launcher, cfg.tokens.resources),
        cfg.tokens.workers,
        ctx.stage_dir / "logs" / "array",
        name=f"qwen-{cfg.run.name}-tokens",
        caller_threads=cfg.tokens.caller_threads,
    )
    result = encode_sources(
        [SourceShards(s.name, s.shards, s.weight) for s in manifest],
        text_key,
        files,
        ctx.stage_dir,
        map_fn=map_fn,
        parts_dir=ctx.stage_dir / PARTS_DIR,  # in the stage folder: a requeued array task resumes its part
        append_eod=cfg.tokens.append_eod,
    )
    blend = [{k: e[k] for k in ("name", "prefix", "tokens", "documents", "upsample", "dtype", "weight")}
             for e in result["sources"]]
    write_json(
        ctx.stage_dir / outputs.BLEND,
        {
            "sources": blend,
            "eod_id": result["eod_id"],
            "n_vocab": result["n_vocab"],
            "dtype": result["dtype"],
            "tokenizer": {"ranks": str(files.ranks), "special_tokens": str(files.special_tokens)},
        },
    )
    metrics = {"documents": result["documents"], "tokens": result["tokens"], "shards": result["shards"]}
    metrics.update({f"tokens/{e['name']}": e["tokens"] for e in blend})
    metrics["tokens_per_s"] = round(result["tokens"] / max(result["seconds"], 1e-9), 1)
    ctx.tracker.log(metrics)
    return StageResult("completed", metrics=metrics, outputs={"blend": str(ctx.stage_dir / outputs.BLEND)})
