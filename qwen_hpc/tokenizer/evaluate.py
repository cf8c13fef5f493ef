"""Compression of a tokenizer per data source: characters and UTF-8 bytes per token (Qwen report §2.2,
Figure 3 measures the same thing as tokens relative to XLM-R; higher chars/token = better compression).

Reads the `data` stage's manifest and encodes up to `max_docs_per_source` documents of each source, so
the figure is cheap even on a large corpus. On the training corpus it is an in-sample number: a sanity
check that training worked (Qwen's own tokenizer gives about 1.4 Chinese characters per token), not a
benchmark.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any

from qwen_hpc.data.manifest import read_manifest
from qwen_hpc.tokenizer.encoding import QwenTokenizer
from qwen_hpc.tokenizer.indexed import iter_jsonl_texts
from qwen_hpc.utils.io import write_json


def compression_stats(tokenizer: QwenTokenizer, texts: list[str]) -> dict[str, Any]:
    """documents, chars, bytes, tokens, chars_per_token, bytes_per_token for the given texts."""
    tokens = sum(len(ids) for ids in tokenizer.encode_batch(texts)) if texts else 0
    chars = sum(len(t) for t in texts)
    n_bytes = sum(len(t.encode("utf-8")) for t in texts)
    return {
        "documents": len(texts),
        "chars": chars,
        "bytes": n_bytes,
        "tokens": tokens,
        "chars_per_token": round(chars / tokens, 4) if tokens else 0.0,
        "bytes_per_token": round(n_bytes / tokens, 4) if tokens else 0.0,
    }


def compression_report(
    tokenizer: QwenTokenizer,
    manifest_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str] | None = None,
    *,
    max_docs_per_source: int = 2000,
) -> dict[str, float]:
    """Chars per token for each manifest source; the full stats go to `out_path` (JSON, atomic)."""
    sources, text_key = read_manifest(Path(manifest_path))
    details: dict[str, dict[str, Any]] = {}
    for source in sources:
        docs = (text for shard in source.shards for text in iter_jsonl_texts(shard, text_key))
        texts = list(itertools.islice(docs, max_docs_per_source))
        details[source.name] = compression_stats(tokenizer, texts)
    if out_path is not None:
        write_json(
            out_path,
            {"n_vocab": tokenizer.n_vocab, "max_docs_per_source": max_docs_per_source, "sources": details},
        )
    return {name: stats["chars_per_token"] for name, stats in details.items()}
