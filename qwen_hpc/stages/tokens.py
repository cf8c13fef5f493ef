"""Stage `tokens`: encode every curated source into a Megatron-Core indexed dataset (`.bin/.idx`,
end-of-document token appended) and write the blend (prefix, weight) the pretraining stage samples from.
A source's weight is its token count times its upsampling factor (Qwen report §2.1, selective up-sampling)."""

from __future__ import annotations

from qwen_hpc.config.schema import QwenConfig
from qwen_hpc.stages.base import StageContext, StageResult

NAME = "tokens"
DESCRIPTION = "encode curated shards into Megatron-Core indexed datasets (.bin/.idx) + blend weights"
CONFIG_KEYS = ("tokens",)
UPSTREAM = ("data", "tokenizer")
DISTRIBUTED = False

BLEND_FILE = "blend.json"


def run(cfg: QwenConfig, ctx: StageContext) -> StageResult:
    from qwen_hpc.data.manifest import read_manifest
    from qwen_hpc.tokenizer.encoding import QwenTokenizer
    from qwen_hpc.tokenizer.indexed import encode_jsonl_to_indexed
    from qwen_hpc.utils.io import write_json

    tok_dir = ctx.stage_path("tokenizer")
    ranks_path = tok_dir / f"{cfg.tokenizer.name}.tiktoken"
    specials_path = tok_dir / "special_tokens.json"
    tokenizer = QwenTokenizer.from_files(ranks_path, specials_path)
    sources, text_key = read_manifest(ctx.stage_path("data") / "manifest.json")

    entries, metrics = [], {"documents": 0, "tokens": 0}
    for source in sources:
        prefix = ctx.stage_dir / source.name
        stats = encode_jsonl_to_indexed(
            list(source.shards),
            text_key,
            ranks_path,
            specials_path,
            prefix,
            workers=cfg.tokens.workers,
            append_eod=cfg.tokens.append_eod,
        )
        entries.append(
            {
                "name": source.name,
                "prefix": source.name,
                "tokens": stats["tokens"],
                "documents": stats["documents"],
                "upsample": source.weight,
                "dtype": str(stats["dtype"]),
            }
        )
        metrics["documents"] += stats["documents"]
        metrics["tokens"] += stats["tokens"]
        metrics[f"tokens/{source.name}"] = stats["tokens"]
        ctx.tracker.log(
            {
                f"tokens/{source.name}": stats["tokens"],
                f"tokens_per_s/{source.name}": stats["tokens"] / max(stats["seconds"], 1e-9),
            }
        )
    total = sum(e["tokens"] * e["upsample"] for e in entries) or 1.0
    for e in entries:
        e["weight"] = e["tokens"] * e["upsample"] / total
    write_json(
        ctx.stage_dir / BLEND_FILE,
        {
            "sources": entries,
            "eod_id": tokenizer.eod_id,
            "n_vocab": tokenizer.n_vocab,
            "tokenizer": {"ranks": str(ranks_path), "special_tokens": str(specials_path)},
        },
    )
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
