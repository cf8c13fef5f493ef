"""Encode JSONL text shards into one Megatron-Core IndexedDataset (`.bin` + `.idx`), the `tokens` stage.

Every document is encoded with the Qwen tokenizer (special-token text in documents stays plain text) and
followed by `<|endoftext|>`, the end-of-document token Qwen packs between documents (report §2.2/§3;
spec §1.4, §2.4). Token ids are stored in the smallest dtype Megatron's reader accepts for the vocabulary
(uint16 below 65,500 ids, else int32: Megatron's own `DType.optimal_dtype` rule).

Parallel by shard, in two halves that a launcher can spread anywhere: `plan_shard_tasks` makes one
`ShardTask` per input shard, `encode_shard_task` (module-level, picklable) turns one into a part
(`.bin` + document lengths) plus a per-shard marker, and `merge_parts` concatenates the parts in shard
order and writes Megatron-Core's `.idx` (`write_megatron_index`: byte-identical to Megatron's own builder,
without importing torch). Documents keep shard order then line order, so the
output does not depend on the number of processes or array tasks. `encode_sources` runs all three for
many sources through the `map_fn` it is given (the `tokens` stage passes one from `qwen_hpc.launch`: a
process pool or a Slurm array); this module never starts processes itself. Every file is written under a
temporary name and renamed.
"""

from __future__ import annotations

import array
import contextlib
import gzip
import json
import os
import shutil
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qwen_hpc.parallel.maps import MapFn, sequential_map
from qwen_hpc.tokenizer.encoding import QwenTokenizer, TokenizerFiles
from qwen_hpc.tokenizer.pattern import NUM_EXTRA_SPECIAL
from qwen_hpc.utils.io import atomic_path, read_json, write_json

_LENGTHS = ".lengths.npy"  # per-document lengths of a part
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


@dataclass(frozen=True)
class ShardTask:
    """One unit of parallel work: encode `shard` into its own `<out_prefix>.bin/.idx` part.

    Plain strings only, so a task pickles cheaply to a process pool or a Slurm array task; the worker
    loads the tokenizer from `ranks` + `special_tokens` itself (once per process: `cached_tokenizer`).
    `dtype` None means the smallest for the vocabulary (`smallest_dtype`), so that tasks can be planned,
    and handed out, before the planning process has loaded the vocabulary.
    """

    shard: str
    out_prefix: str
    text_key: str
    ranks: str
    special_tokens: str | None
    num_extra_special: int = NUM_EXTRA_SPECIAL
    append_eod: bool = True
    dtype: str | None = None  # numpy dtype string of the token ids

    @property
    def marker(self) -> Path:
        return Path(self.out_prefix + ".json")


def plan_shard_tasks(
    shards: Sequence[str | os.PathLike[str]],
    parts_dir: str | os.PathLike[str],
    text_key: str,
    files: TokenizerFiles,
    *,
    dtype: Any = None,
    append_eod: bool = True,
    num_extra_special: int = NUM_EXTRA_SPECIAL,
) -> list[ShardTask]:
    """One task per shard, in shard order, each writing `<parts_dir>/<index>.bin/.idx/.json`.

    `dtype` None: each task stores the smallest dtype for the vocabulary (what `smallest_dtype` of the
    loaded tokenizer's n_vocab gives), without loading the vocabulary here."""
    for p in shards:
        if not Path(p).is_file():
            raise FileNotFoundError(f"input shard {p} does not exist")
    return [
        ShardTask(
            shard=str(Path(p)),
            out_prefix=str(Path(parts_dir) / f"{i:06d}"),
            text_key=text_key,
            ranks=str(files.ranks),
            special_tokens=None if files.special_tokens is None else str(files.special_tokens),
            num_extra_special=num_extra_special,
            append_eod=append_eod,
            dtype=None if dtype is None else np.dtype(dtype).str,
        )
        for i, p in enumerate(shards)
    ]


def encode_shard_task(task: ShardTask) -> dict[str, Any]:
    """Encode one shard into its part files and write its marker (`<prefix>.json`, its stats) last.

    A part is `<prefix>.bin` (the token ids, raw, as in Megatron's .bin) and `<prefix>.lengths.npy`
    (one int64 length per document); `merge_parts` turns parts into Megatron's index. Workers so import
    only tiktoken and numpy (not torch/Megatron: seconds per spawned process). A part whose marker
    exists is done and not encoded again (a requeued array task resumes). Module-level, so both a
    process pool and submitit's `map_array` can run it.
    """
    if task.marker.is_file():
        return read_json(task.marker)
    start = time.perf_counter()
    tokenizer = cached_tokenizer(TokenizerFiles(task.ranks, task.special_tokens), task.num_extra_special)
    result = encode_shard(task.shard, task.text_key, tokenizer, append_eod=task.append_eod, dtype=task.dtype)
    Path(task.out_prefix).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(task.out_prefix + ".bin") as tmp_bin:
        result.tokens.tofile(tmp_bin)
    with atomic_path(task.out_prefix + _LENGTHS) as tmp_len, open(tmp_len, "wb") as fh:
        np.save(fh, result.lengths.astype(np.int64))
    stats = {
        "path": task.shard,
        "prefix": task.out_prefix,
        "documents": int(result.lengths.size),
        "tokens": int(result.tokens.size),
        "empty_documents": result.empty_documents,
        "seconds": round(time.perf_counter() - start, 3),
    }
    write_json(task.marker, stats)
    return stats


def merge_parts(
    prefixes: Sequence[str | os.PathLike[str]], out_prefix: str | os.PathLike[str], dtype: Any
) -> None:
    """Concatenate parts, in the given order, into one Megatron-Core `<out_prefix>.bin/.idx`.

    The token bytes are copied as they are and the index is written by `write_megatron_index` (one
    sequence per document, each its own document, as Megatron's `add_document` records). Both files are
    written under temporary names and renamed at the end; the old `.idx` is removed first, so an
    interrupted rename never pairs a new `.bin` with an old `.idx`.
    """
    out_prefix = str(out_prefix)
    itemsize = np.dtype(dtype).itemsize
    bin_path, idx_path = Path(out_prefix + ".bin"), Path(out_prefix + ".idx")
    lengths: list[np.ndarray] = []
    with atomic_path(idx_path) as tmp_idx:
        with atomic_path(bin_path) as tmp_bin:
            with open(tmp_bin, "wb") as out:
                for prefix in prefixes:
                    part_lengths = np.load(str(prefix) + _LENGTHS)
                    part_bin = Path(str(prefix) + ".bin")
                    if part_bin.stat().st_size != int(part_lengths.sum()) * itemsize:
                        raise ValueError(f"part {prefix}: .bin size does not match its document lengths")
                    _append_file(part_bin, out)
                    lengths.append(part_lengths)
            write_megatron_index(
                tmp_idx, np.concatenate(lengths) if lengths else np.zeros(0, np.int64), dtype
            )
            idx_path.unlink(missing_ok=True)  # renames follow: .bin first (inner), then .idx (outer)


def _append_file(src: Path, out: Any) -> None:
    """Append the file `src` to the open binary file `out`, in the kernel (`os.copy_file_range`: no copy
    through Python buffers; a reflink on filesystems that share extents) where it can, else by chunks."""
    out.flush()
    with open(src, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        copy_range = getattr(os, "copy_file_range", None)
        if copy_range is not None:
            try:
                offset = 0
                while offset < size:
                    n = copy_range(fh.fileno(), out.fileno(), size - offset)
                    if n == 0:
                        break
                    offset += n
                if offset == size:
                    return
            except OSError:  # not supported between these files: fall back below, from where it stopped
                pass
            fh.seek(offset)
            out.seek(0, os.SEEK_END)
        shutil.copyfileobj(fh, out, 16 << 20)


# Megatron-Core's `.idx` layout (IndexedDataset, "MMIDIDX" version 1), all little-endian: the 9-byte magic,
# u64 version 1, u8 dtype code, u64 sequence count, u64 document-index count, then int32 sequence
# lengths, int64 byte offsets of the sequences in the .bin, int64 document indices (0, then the end of each
# document in sequences). Written here with numpy rather than with Megatron's builder, so that encoding
# needs neither torch nor a Python loop per document; tests check it byte for byte against Megatron's own
# writer and read it back with Megatron's `IndexedDataset`.
_IDX_MAGIC = b"MMIDIDX\x00\x00"
_IDX_DTYPE_CODES = {
    "uint8": 1,
    "int8": 2,
    "int16": 3,
    "int32": 4,
    "int64": 5,
    "float64": 6,
    "float32": 7,
    "uint16": 8,
}


def write_megatron_index(path: str | os.PathLike[str], lengths: np.ndarray, dtype: Any) -> None:
    """Write the `.idx` of a dataset whose documents (one sequence each) have these token `lengths`."""
    dt = np.dtype(dtype)
    lengths = np.asarray(lengths, dtype=np.int64)
    if lengths.size and (lengths.min() < 0 or lengths.max() > np.iinfo(np.int32).max):
        raise ValueError("document lengths must fit int32")
    pointers = np.zeros(lengths.size, dtype=np.int64)
    np.cumsum(lengths[:-1] * dt.itemsize, out=pointers[1:])
    doc_index = np.arange(lengths.size + 1, dtype=np.int64)
    with open(path, "wb") as fh:
        fh.write(_IDX_MAGIC)
        fh.write(struct.pack("<QBQQ", 1, _IDX_DTYPE_CODES[dt.name], lengths.size, doc_index.size))
        fh.write(lengths.astype("<i4").tobytes())
        fh.write(pointers.astype("<i8").tobytes())
        fh.write(doc_index.astype("<i8").tobytes())


@dataclass(frozen=True)
class SourceShards:
    """One source to encode: its JSONL shards (in order) and its upsampling factor for the blend weight."""

    name: str
    shards: tuple[str | os.PathLike[str], ...]
    upsample: float = 1.0


def encode_sources(
    sources: Sequence[SourceShards],
    text_key: str,
    files: TokenizerFiles,
    out_dir: str | os.PathLike[str],
    *,
    map_fn: MapFn = sequential_map,
    parts_dir: str | os.PathLike[str] | None = None,
    append_eod: bool = True,
    num_extra_special: int = NUM_EXTRA_SPECIAL,
) -> dict[str, Any]:
    """Encode every source into `<out_dir>/<name>.bin/.idx`; the one encoder of the suite (the `tokens`
    stage and `encode_jsonl_to_indexed` both call it).

    One `ShardTask` per shard, planned before this process reads the vocabulary (each task picks its dtype
    where it runs), so the encoding starts at once; `map_fn` (`qwen_hpc.parallel.maps`: here, a process
    pool, a Slurm array ...) runs them, handed out largest shard first; the parts are merged per source in
    shard order, so the output does not depend on how the work was spread. A map whose items run in other
    jobs (`runs_elsewhere`) gets them only after this process has loaded the vocabulary once: a broken
    vocabulary fails here, not in every task. The parts (under `parts_dir`, default a temporary folder in
    `out_dir`) are removed at the end.

    Returns {"sources": blend entries (name, prefix, tokens, documents, upsample, dtype, weight), "eod_id",
    "n_vocab", "dtype", "documents", "tokens", "shards", "seconds"}; the weight of a source is its share of
    tokens × upsampling (Qwen report §2.1, selective up-sampling).
    """
    start = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        if parts_dir is None:
            parts_dir = stack.enter_context(tempfile.TemporaryDirectory(dir=out_dir, prefix=".parts-"))
        tasks = {
            s.name: plan_shard_tasks(
                s.shards, Path(parts_dir) / s.name, text_key, files,
                append_eod=append_eod, num_extra_special=num_extra_special,
            )
            for s in sources
        }
        if getattr(map_fn, "runs_elsewhere", False):
            cached_tokenizer(files, num_extra_special)
        results = _map_largest_first(map_fn, encode_shard_task, [t for group in tasks.values() for t in group])
        tokenizer = cached_tokenizer(files, num_extra_special)  # loaded already if this process encoded
        dtype = smallest_dtype(tokenizer.n_vocab)
        entries = []
        for source in sources:
            count = len(tasks[source.name])
            per_shard, results = results[:count], results[count:]
            prefix = str(out_dir / source.name)
            merge_parts([t.out_prefix for t in tasks[source.name]], prefix, dtype)
            stats = summarize(per_shard, tokenizer, dtype, prefix, append_eod, 0.0)
            entries.append({
                "name": source.name, "prefix": source.name, "tokens": stats["tokens"],
                "documents": stats["documents"], "upsample": source.upsample, "dtype": stats["dtype"],
                "empty_documents": stats["empty_documents"], "per_shard": stats["per_shard"],
            })
        shutil.rmtree(parts_dir, ignore_errors=True)
    total = sum(e["tokens"] * e["upsample"] for e in entries) or 1.0
    for e in entries:
        e["weight"] = e["tokens"] * e["upsample"] / total
    return {
        "sources": entries,
        "eod_id": tokenizer.eod_id,
        "n_vocab": tokenizer.n_vocab,
        "dtype": np.dtype(dtype).name,
        "documents": sum(e["documents"] for e in entries),
        "tokens": sum(e["tokens"] for e in entries),
        "shards": sum(len(group) for group in tasks.values()),
        "seconds": time.perf_counter() - start,
    }


def _map_largest_first(map_fn: MapFn, fn: Callable[[Any], Any], tasks: list[ShardTask]) -> list[Any]:
    """`map_fn(fn, tasks)` with the tasks handed out by decreasing shard size (results in task order):
    the longest-processing-time-first rule, which leaves the least idle time at the end."""
    order = sorted(range(len(tasks)), key=lambda i: -os.path.getsize(tasks[i].shard))
    done = map_fn(fn, [tasks[i] for i in order])
    results: list[Any] = [None] * len(tasks)
    for i, result in zip(order, done, strict=True):
        results[i] = result
    return results


def encode_jsonl_to_indexed(
    shards: Sequence[str | os.PathLike[str]],
    text_key: str,
    ranks_path: str | os.PathLike[str],
    special_tokens_path: str | os.PathLike[str] | None,
    out_prefix: str | os.PathLike[str],
    *,
    append_eod: bool = True,
    num_extra_special: int = NUM_EXTRA_SPECIAL,
    map_fn: MapFn = sequential_map,
) -> dict[str, Any]:
    """Encode `text_key` of every JSONL record (.jsonl or .jsonl.gz) into `<out_prefix>.bin/.idx`:
    `encode_sources` with one source named after the prefix.

    Documents whose text is empty are kept as a lone eod token when `append_eod`, else skipped
    (Megatron cannot hold an empty document); either way they are counted in `empty_documents`.
    Returns {documents, tokens, empty_documents, shards, per_shard, dtype, n_vocab, eod_id,
    append_eod, bin, idx, seconds}.
    """
    out_prefix = Path(out_prefix)
    for p in shards:  # before creating anything
        if not Path(p).is_file():
            raise FileNotFoundError(f"input shard {p} does not exist")
    files = TokenizerFiles(ranks_path, special_tokens_path)
    result = encode_sources(
        [SourceShards(out_prefix.name, tuple(shards))], text_key, files, out_prefix.parent,
        map_fn=map_fn, append_eod=append_eod, num_extra_special=num_extra_special,
    )
    (entry,) = result["sources"]
    return {
        **{k: entry[k] for k in ("documents", "tokens", "empty_documents", "per_shard", "dtype")},
        "shards": result["shards"],
        "n_vocab": result["n_vocab"],
        "eod_id": result["eod_id"],
        "append_eod": append_eod,
        "bin": str(out_prefix) + ".bin",
        "idx": str(out_prefix) + ".idx",
        "seconds": round(result["seconds"], 3),
    }


def summarize(
    per_shard: Sequence[dict[str, Any]],
    tokenizer: QwenTokenizer,
    dtype: Any,
    out_prefix: str,
    append_eod: bool,
    seconds: float,
) -> dict[str, Any]:
    """Totals over the per-shard stats, in the shape `encode_jsonl_to_indexed` returns."""
    per_shard = [{k: s[k] for k in ("path", "documents", "tokens", "empty_documents")} for s in per_shard]
    return {
        "documents": sum(s["documents"] for s in per_shard),
        "tokens": sum(s["tokens"] for s in per_shard),
        "empty_documents": sum(s["empty_documents"] for s in per_shard),
        "shards": len(per_shard),
        "per_shard": per_shard,
        "dtype": np.dtype(dtype).name,
        "n_vocab": tokenizer.n_vocab,
        "eod_id": tokenizer.eod_id,
        "append_eod": append_eod,
        "bin": out_prefix + ".bin",
        "idx": out_prefix + ".idx",
        "seconds": round(seconds, 3),
    }


# --------------------------------------------------------------------------- internals

_CACHED: tuple[tuple[Any, ...], QwenTokenizer] | None = None
_CACHE_LOCK = threading.Lock()


def cached_tokenizer(files: TokenizerFiles, num_extra_special: int = NUM_EXTRA_SPECIAL) -> QwenTokenizer:
    """The tokenizer of `files`, loaded once per process and reused by every later task and caller.

    Loading the 151k-entry `qwen.tiktoken` and building its tiktoken Encoding costs ~0.4 s; a pool worker
    or Slurm array element that encodes several shards, and the `tokens` stage's own process (which
    encodes shards too, then needs the vocabulary's size and eod id), pay it once. Keyed by the files'
    paths *and* identity (inode, size, mtime): a tokenizer rewritten at the same path (a rerun tokenizer
    stage in a long-lived process) is loaded again, never served stale. One entry: a process encodes with
    one vocabulary at a time, and a 151k vocabulary is large enough not to keep several alive.
    """
    global _CACHED
    key = (_identity(files.ranks), _identity(files.special_tokens), num_extra_special)
    with _CACHE_LOCK:  # threads of one process (`process_pool_map`'s caller threads) load it once
        if _CACHED is None or _CACHED[0] != key:
            tokenizer = files.load(num_extra_special)
            tokenizer.encoding  # noqa: B018 -- build tiktoken's Encoding now, once, not on the first encode
            _CACHED = (key, tokenizer)
        return _CACHED[1]


def forget_cached_tokenizer() -> None:
    """Drop this process's cached tokenizer (`cached_tokenizer`): benchmarks call it so that each timed
    run pays the vocabulary load, as a fresh stage process does."""
    global _CACHED
    with _CACHE_LOCK:
        _CACHED = None


def _identity(path: Path | None) -> tuple[Any, ...] | None:
    if path is None:
        return None
    st = path.stat()
    return (str(path), st.st_ino, st.st_size, st.st_mtime_ns)


def encode_shard(
    path: str | os.PathLike[str],
    text_key: str,
    tokenizer: QwenTokenizer,
    *,
    append_eod: bool = True,
    dtype: Any = None,
) -> ShardResult:
    """Encode one JSONL shard into a flat token array plus per-document lengths.

    Ids come from tiktoken as numpy buffers (`QwenTokenizer.encode_numpy`), not Python lists: no Python
    int per token, and one concatenation per shard."""
    dtype = np.dtype(dtype if dtype is not None else smallest_dtype(tokenizer.n_vocab))
    eod = np.array([tokenizer.eod_id], dtype=np.uint32)
    pieces: list[np.ndarray] = []
    lengths = array.array("q")
    empty = 0
    for text in iter_jsonl_texts(path, text_key):
        ids = tokenizer.encode_numpy(text)
        if not ids.size:
            empty += 1
            if not append_eod:
                continue
        pieces.append(ids)
        if append_eod:
            pieces.append(eod)
        lengths.append(ids.size + append_eod)
    # one copy, straight into the output dtype (every id < n_vocab fits it: `smallest_dtype`)
    tokens = np.concatenate(pieces, dtype=dtype, casting="unsafe") if pieces else np.zeros(0, dtype=dtype)
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
