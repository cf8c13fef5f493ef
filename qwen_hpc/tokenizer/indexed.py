"""Encode JSONL text shards into one Megatron-Core IndexedDataset (`.bin` + `.idx`), the `tokens` stage.

Every document is encoded with the Qwen tokenizer (special-token text in documents stays plain text) and
followed by `<|endoftext|>`, the end-of-document token Qwen packs between documents (report §2.2/§3;
spec §1.4, §2.4). Token ids are stored in the smallest dtype Megatron's reader accepts for the vocabulary
(uint16 below 65,500 ids, else int32: Megatron's own `DType.optimal_dtype` rule).

Shards are encoded in order, in a process pool when workers > 1; documents keep shard order then line
order, so the output does not depend on the worker count. Both files are written under temporary names
and renamed at the end (the old `.idx` is removed first, so an interrupted rename never pairs a new
`.bin` with an old `.idx`).
"""

from __future__ import annotations

import array
import gzip
import json
import multiprocessing
import os
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from qwen_hpc.tokenizer.encoding import QwenTokenizer, TokenizerFiles
from qwen_hpc.tokenizer.pattern import NUM_EXTRA_SPECIAL
from qwen_hpc.utils.io import atomic_path

_UINT16_LIMIT = 65500  # Megatron's DType.optimal_dtype threshold
_INT32_MAX = 2**31 - 1


def smallest_dtype(n_vocab: int) -> type[np.unsignedinteger] | type[np.signedinteger]:
    """uint16 when every id fits below 65,500 (Megatron's rule), else int32; Megatron reads both."""
    if n_vocab <= 0:
        raise ValueError(f"n_vocab={n_vocab} must be > 0")
    if n_vocab < _UINT16_LIMIT:
        return np.uint16
    if n_vocab <= _INT32_MAX:
        return np.int32
    raise ValueError(f"n_vocab={n_vocab} does not fit an int32 token id")


@dataclass
class ShardResult:
    """One shard encoded: its tokens (eod included) and the length of every document."""

    tokens: np.ndarray
    lengths: np.ndarray
    empty_documents: int


def encode_jsonl_to_indexed(
    shards: Sequence[str | os.PathLike[str]],
    text_key: str,
    ranks_path: str | os.PathLike[str],
    special_tokens_path: str | os.PathLike[str] | None,
    out_prefix: str | os.PathLike[str],
    *,
    workers: int = 1,
    append_eod: bool = True,
    num_extra_special: int = NUM_EXTRA_SPECIAL,
    progress: bool = True,
    start_method: str = "spawn",
) -> dict[str, Any]:
    """Encode `text_key` of every JSONL record (.jsonl or .jsonl.gz) into `<out_prefix>.bin/.idx`.

    The tokenizer is loaded from `ranks_path` + `special_tokens_path` (None = Qwen's default special
    layout with `num_extra_special` extras), in every worker, so nothing large is pickled.

    Documents whose text is empty are kept as a lone eod token when `append_eod`, else skipped
    (Megatron cannot hold an empty document); either way they are counted in `empty_documents`.
    Returns {documents, tokens, empty_documents, shards, per_shard, dtype, n_vocab, eod_id,
    append_eod, bin, idx, seconds}. With workers > 1 the pool starts processes with `start_method`
    ("spawn" by default, safe with threads and torch): the caller's main module must be importable, i.e.
    a file with an `if __name__ == "__main__":` guard, not stdin.
    """
    from megatron.core.datasets.indexed_dataset import IndexedDatasetBuilder

    start = time.perf_counter()
    files = TokenizerFiles(ranks_path, special_tokens_path)
    paths = [Path(p) for p in shards]
    for p in paths:
        if not p.is_file():
            raise FileNotFoundError(f"input shard {p} does not exist")
    if workers < 1:
        raise ValueError(f"workers={workers} must be >= 1")
    tokenizer = files.load(num_extra_special)
    dtype = smallest_dtype(tokenizer.n_vocab)
    out_prefix = str(out_prefix)
    bin_path, idx_path = Path(out_prefix + ".bin"), Path(out_prefix + ".idx")
    job = _Job(text_key, append_eod, np.dtype(dtype).str)

    per_shard: list[dict[str, Any]] = []
    totals = {"documents": 0, "tokens": 0, "empty_documents": 0}
    bar = tqdm(
        total=sum(p.stat().st_size for p in paths),
        unit="B",
        unit_scale=True,
        desc=f"tokens -> {bin_path.name}",
        disable=not progress,
    )
    with atomic_path(idx_path) as tmp_idx:
        with atomic_path(bin_path) as tmp_bin:
            builder = IndexedDatasetBuilder(str(tmp_bin), dtype=dtype)
            try:
                for path, result in zip(
                    paths,
                    _encode_all(paths, job, tokenizer, files, workers, num_extra_special, start_method),
                    strict=True,
                ):
                    _add_shard(builder, result)
                    stats = {
                        "path": str(path),
                        "documents": int(result.lengths.size),
                        "tokens": int(result.tokens.size),
                        "empty_documents": result.empty_documents,
                    }
                    per_shard.append(stats)
                    for key in totals:
                        totals[key] += stats[key]
                    bar.update(path.stat().st_size)
                    bar.set_postfix(docs=totals["documents"], tokens=totals["tokens"])
                builder.finalize(str(tmp_idx))
            finally:
                builder.data_file.close()
                bar.close()
            idx_path.unlink(missing_ok=True)  # renames follow: .bin first (inner), then .idx (outer)
    return {
        **totals,
        "shards": len(paths),
        "per_shard": per_shard,
        "dtype": np.dtype(dtype).name,
        "n_vocab": tokenizer.n_vocab,
        "eod_id": tokenizer.eod_id,
        "append_eod": append_eod,
        "bin": str(bin_path),
        "idx": str(idx_path),
        "seconds": round(time.perf_counter() - start, 3),
    }


# --------------------------------------------------------------------------- internals


@dataclass(frozen=True)
class _Job:
    text_key: str
    append_eod: bool
    dtype: str  # numpy dtype string, e.g. "<u2"


def _encode_all(
    paths: list[Path],
    job: _Job,
    tokenizer: QwenTokenizer,
    files: TokenizerFiles,
    workers: int,
    num_extra: int,
    start_method: str,
) -> Iterator[ShardResult]:
    if workers == 1 or len(paths) == 1:
        for path in paths:
            yield encode_shard(path, job.text_key, tokenizer, append_eod=job.append_eod, dtype=job.dtype)
        return
    ctx = multiprocessing.get_context(start_method)
    with ProcessPoolExecutor(
        max_workers=min(workers, len(paths)),
        mp_context=ctx,
        initializer=_init_worker,
        initargs=(files, num_extra),
    ) as pool:
        yield from pool.map(_encode_in_worker, paths, [job] * len(paths))


_WORKER_TOKENIZER: QwenTokenizer | None = None


def _init_worker(files: TokenizerFiles, num_extra: int) -> None:
    global _WORKER_TOKENIZER
    _WORKER_TOKENIZER = files.load(num_extra)


def _encode_in_worker(path: Path, job: _Job) -> ShardResult:
    assert _WORKER_TOKENIZER is not None, "worker initializer did not run"
    return encode_shard(path, job.text_key, _WORKER_TOKENIZER, append_eod=job.append_eod, dtype=job.dtype)


def encode_shard(
    path: str | os.PathLike[str],
    text_key: str,
    tokenizer: QwenTokenizer,
    *,
    append_eod: bool = True,
    dtype: Any = None,
) -> ShardResult:
    """Encode one JSONL shard into a flat token array plus per-document lengths."""
    dtype = np.dtype(dtype if dtype is not None else smallest_dtype(tokenizer.n_vocab))
    eod = tokenizer.eod_id
    flat = array.array("i")  # C int (4 bytes): compact while growing; cast once at the end
    lengths = array.array("q")
    empty = 0
    for text in iter_jsonl_texts(path, text_key):
        ids = tokenizer.encode(text)
        if not ids:
            empty += 1
            if not append_eod:
                continue
        if append_eod:
            ids.append(eod)
        flat.extend(ids)
        lengths.append(len(ids))
    tokens = np.frombuffer(flat, dtype=np.intc).astype(dtype) if flat else np.zeros(0, dtype=dtype)
    return ShardResult(
        tokens, np.frombuffer(lengths, dtype=np.int64).copy() if lengths else np.zeros(0, np.int64), empty
    )


def iter_jsonl_texts(path: str | os.PathLike[str], text_key: str) -> Iterator[str]:
    """Yield `record[text_key]` per non-blank line; errors name `path:line`. `.gz` files are decompressed."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{lineno}: not valid JSON ({exc})") from None
            if not isinstance(record, dict) or text_key not in record:
                raise ValueError(f"{path}:{lineno}: record has no {text_key!r} field")
            text = record[text_key]
            if not isinstance(text, str):
                raise ValueError(
                    f"{path}:{lineno}: field {text_key!r} is {type(text).__name__}, expected str"
                )
            yield text


def _add_shard(builder: Any, result: ShardResult) -> None:
    offsets = np.zeros(result.lengths.size + 1, dtype=np.int64)
    np.cumsum(result.lengths, out=offsets[1:])
    for i, length in enumerate(result.lengths.tolist()):
        builder.add_document(result.tokens[offsets[i] : offsets[i + 1]], [length])
