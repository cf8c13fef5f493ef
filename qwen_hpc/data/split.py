"""Cut input files into per-shard tasks of about `data.task_mb` each, so the width of the per-shard step (a
process pool, a Slurm job array) follows the amount of data, not the number of files.

- **JSONL** (uncompressed): line-aligned byte ranges. Range k starts at the first line that starts at or
  after k * task_bytes, so no record is cut. Planning reads each file that is split once, counting its
  newlines (`bytes.count`, at disk speed), so every part knows how many lines come before it and its
  records keep their whole-file line numbers: ids `<source>/<file>:<line>` do not depend on the split.
- **Parquet**: ranges of row groups (the unit pyarrow can read alone), grouped up to task_bytes of their
  compressed size; the rows before a part come from the footer, nothing else is read. A file with a single
  row group stays one task.
- **Not split**: gzip files (a stream has no random access: reaching byte k means inflating all before it),
  text files (one document per file, or paragraph blocks numbered by their line in the whole file: cheap to
  read whole and rarely large; convert a big text corpus to JSONL), files that cannot be read or whose head
  holds NUL bytes (the reader reports them as one record, whole).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from qwen_hpc.data.config import SourceConfig
from qwen_hpc.data.readers import READ_ERRORS, SNIFF_BYTES

SCAN_BYTES = 1 << 24  # newline counting reads 16 MiB at a time


@dataclass(frozen=True)
class Part:
    """[start, end) in bytes (JSONL) or row groups (Parquet), `before` = lines (rows) ahead of it."""

    start: int
    end: int
    before: int


def plan_file(source: SourceConfig, path: Path, task_bytes: int) -> list[Part] | None:
    """The parts of one file, or None when it is read whole (see the module docstring)."""
    if task_bytes <= 0 or path.suffix == ".gz":
        return None
    try:
        if source.format == "jsonl":
            return _jsonl_parts(path, task_bytes)
        if source.format == "parquet":
            return _parquet_parts(path, task_bytes)
    except READ_ERRORS:
        return None  # the reader reports it when it reads the file whole
    except Exception as exc:  # noqa: BLE001 - pyarrow's own errors: same as above
        if type(exc).__module__.startswith("pyarrow"):
            return None
        raise
    return None


def _jsonl_parts(path: Path, task_bytes: int) -> list[Part] | None:
    size = path.stat().st_size
    if size <= task_bytes:
        return None
    with open(path, "rb") as fh:
        if b"\x00" in fh.read(SNIFF_BYTES):
            return None
        starts = [0]
        for k in range(1, -(-size // task_bytes)):
            if starts[-1] >= k * task_bytes:  # a line longer than a part already reaches past this cut
                continue
            fh.seek(k * task_bytes - 1)
            fh.readline()  # to the end of the line holding byte k*task_bytes - 1: the next line starts there
            at = fh.tell()
            if at >= size:
                break
            starts.append(at)
        fh.seek(0)
        before, lines, pos, nxt = [0], 0, 0, 1
        while nxt < len(starts):
            block = fh.read(min(SCAN_BYTES, starts[nxt] - pos))
            lines += block.count(b"\n")
            pos += len(block)
            if pos == starts[nxt]:
                before.append(lines)
                nxt += 1
    if len(starts) < 2:
        return None
    ends = [*starts[1:], size]
    return [Part(s, e, b) for s, e, b in zip(starts, ends, before, strict=True)]


def _parquet_parts(path: Path, task_bytes: int) -> list[Part] | None:
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(path).metadata
    if meta.num_row_groups < 2:
        return None
    parts, start, rows, before, acc = [], 0, 0, 0, 0
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        size = sum(group.column(c).total_compressed_size for c in range(group.num_columns))
        if acc and acc + size > task_bytes:
            parts.append(Part(start, g, before))
            start, before, acc = g, rows, 0
        acc += size
        rows += group.num_rows
    parts.append(Part(start, meta.num_row_groups, before))
    return parts if len(parts) > 1 else None
