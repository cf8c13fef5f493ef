"""Compression of tokenizers per data source, as in the Qwen report's Figure 3 (§2.2; spec §2.5).

Figure 3 plots, per language, the number of tokens a tokenizer needs for the same documents relative to
a reference tokenizer (XLM-R = 1 there; lower = fewer tokens = better compression). Here the sources of
the `data` stage's manifest play the languages, the reference is any tokenizer of the comparison (ours
by default), and the comparison holds our tokenizer plus any ranks files given (e.g. cl100k_base and the
official qwen.tiktoken). Up to `max_docs_per_source` documents of each source are encoded, so the report
is cheap on a large corpus. On the training corpus our numbers are in-sample: a sanity check that training
worked, not a benchmark.

A ranks file that holds 2-/3-digit number tokens (cl100k-style) is measured with cl100k's own pattern,
which can use them; every other file with Qwen's pattern. Characters and UTF-8 bytes per token are kept
beside the relative token counts.
"""

from __future__ import annotations

import io
import itertools
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from qwen_hpc.tokenizer.encoding import QwenTokenizer
from qwen_hpc.tokenizer.extend import is_multi_digit_token
from qwen_hpc.tokenizer.indexed import iter_jsonl_texts
from qwen_hpc.tokenizer.pattern import CL100K_PAT_STR, QWEN_PAT_STR
from qwen_hpc.tokenizer.ranks import read_ranks
from qwen_hpc.utils.io import write_json


def compression_stats(tokenizer: QwenTokenizer, texts: list[str]) -> dict[str, Any]:
    """documents, chars, bytes, tokens, tokens_per_document, chars_per_token, bytes_per_token."""
    tokens = sum(len(ids) for ids in tokenizer.encode_batch(texts)) if texts else 0
    chars = sum(len(t) for t in texts)
    n_bytes = sum(len(t.encode("utf-8")) for t in texts)
    return {
        "documents": len(texts),
        "chars": chars,
        "bytes": n_bytes,
        "tokens": tokens,
        "tokens_per_document": round(tokens / len(texts), 4) if texts else 0.0,
        "chars_per_token": round(chars / tokens, 4) if tokens else 0.0,
        "bytes_per_token": round(n_bytes / tokens, 4) if tokens else 0.0,
    }


def load_comparison(path: str | os.PathLike[str]) -> QwenTokenizer:
    """A ranks file as a tokenizer to compare, named by its file stem, with the pattern that fits it."""
    ranks = read_ranks(path)
    pattern = CL100K_PAT_STR if any(is_multi_digit_token(t) for t in ranks) else QWEN_PAT_STR
    return QwenTokenizer(ranks, name=Path(path).stem, pattern=pattern)


def compression_report(
    tokenizer: QwenTokenizer,
    sources: Mapping[str, Sequence[str | os.PathLike[str]]],
    out_path: str | os.PathLike[str] | None = None,
    *,
    text_key: str = "text",
    max_docs_per_source: int = 2000,
    compare: Mapping[str, QwenTokenizer] | None = None,
    reference: str | None = None,
    skipped: Mapping[str, str] | None = None,
) -> dict[str, float]:
    """Chars per token of `tokenizer` for each source (name -> its JSONL shards, as the data stage's
    manifest lists them); the full report goes to `out_path`.

    The JSON holds, per tokenizer (ours under its encoding name, then `compare` by name) and source, the
    stats of `compression_stats`, and `relative[name][source]` = its tokens / the reference's tokens on
    the same documents (Figure 3's quantity). `skipped` (name -> reason) is recorded as given.
    """
    texts: dict[str, list[str]] = {}
    for name, shards in sources.items():
        docs = (text for shard in shards for text in iter_jsonl_texts(shard, text_key))
        texts[name] = list(itertools.islice(docs, max_docs_per_source))
    ours = tokenizer.encoding.name
    tokenizers = {ours: tokenizer, **{k: v for k, v in (compare or {}).items() if k != ours}}
    ref = reference or ours
    if ref not in tokenizers:
        raise ValueError(f"reference tokenizer {ref!r} is not among the compared {list(tokenizers)}")
    stats = {
        name: {src: compression_stats(tok, docs) for src, docs in texts.items()}
        for name, tok in tokenizers.items()
    }
    relative = {
        name: {
            src: round(s["tokens"] / stats[ref][src]["tokens"], 4) if stats[ref][src]["tokens"] else 0.0
            for src, s in per_source.items()
        }
        for name, per_source in stats.items()
    }
    if out_path is not None:
        write_json(
            out_path,
            {
                "tokenizer": ours,
                "n_vocab": tokenizer.n_vocab,
                "reference": ref,
                "max_docs_per_source": max_docs_per_source,
                "sources": stats[ours],
                "tokenizers": stats,
                "relative": relative,
                "skipped": dict(skipped or {}),
            },
        )
    return {name: s["chars_per_token"] for name, s in stats[ours].items()}


def compression_chart_png(report: Mapping[str, Any], title: str = "") -> bytes:
    """Figure 3 style grouped bars from a report written by `compression_report`: one group per source,
    one bar per tokenizer, height = tokens relative to the reference (dashed line at 1; lower is better)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    relative: Mapping[str, Mapping[str, float]] = report["relative"]
    names: Sequence[str] = list(relative)
    sources: Sequence[str] = list(next(iter(relative.values()), {}))
    width = 0.8 / max(len(names), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(sources) + 2), 4.2), dpi=110)
    for i, name in enumerate(names):
        xs = [j + (i - (len(names) - 1) / 2) * width for j in range(len(sources))]
        ax.bar(xs, [relative[name][s] for s in sources], width=width, label=name)
    ax.axhline(1.0, color="#444", linestyle="--", linewidth=0.8)
    ax.set_xticks(range(len(sources)), sources)
    ax.set_ylabel(f"tokens relative to {report['reference']} (lower is better)")
    ax.set_title(title or f"compression per source ({report['max_docs_per_source']} docs max each)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()
