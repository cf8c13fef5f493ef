"""Readers: turn a source's files into `Document`s, one per record, in a fixed order, never raising on bad
input and never skipping it.

JSONL: one record per line (lines split on `\\n` only, a trailing `\\r` ignored). Text: one document per
file, or one per block of lines separated by blank lines. Parquet (pyarrow): one record per row, read in
record batches; the "line" of a row is its 1-based row number. Both read `.gz` files transparently and strip a
leading UTF-8 byte-order mark. What goes wrong becomes a `Document` whose `error` names the reason:

| reason         | when                                                                      |
|----------------|---------------------------------------------------------------------------|
| `unreadable`   | the file cannot be opened or read (missing, a directory, permissions, ...) |
| `binary`       | the file holds NUL bytes (JSONL: in its first 8 KiB), read as one record  |
| `invalid_utf8` | a line / block / file is not valid UTF-8, or its text has lone surrogates  |
| `malformed`    | a JSONL line is not JSON, not an object, or lacks a string `text_key`      |
| `blank_line`   | a JSONL line holds only whitespace (not a record; counted all the same)    |

Parquet: a file pyarrow cannot open or decode is `unreadable` (line 0, or the first row of the batch that
failed); a missing text column makes every row `malformed`; a null or non-string value is `malformed`.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from qwen_hpc.data.config import SourceConfig
from qwen_hpc.data.document import Document, make_id
from qwen_hpc.data.paths import expand_all

BOM = b"\xef\xbb\xbf"
SNIFF_BYTES = 8192
# what opening or reading a (possibly gzipped) file raises: OSError (incl. gzip.BadGzipFile), EOFError for a
# truncated gzip stream, zlib.error for a corrupt one
READ_ERRORS = (OSError, EOFError, zlib.error)


def source_files(source: SourceConfig) -> list[Path]:
    """The files of a source in reading order; a document's file index is its position here."""
    return expand_all(source.paths)


def read_source(
    source: SourceConfig, files: list[Path] | None = None, *, first_index: int = 0
) -> Iterator[Document]:
    """Documents of `files` (default: all of the source's files); `first_index` is the file index of the
    first of them (a shard task reads one file of the source's list)."""
    files = source_files(source) if files is None else files
    read_file = {"jsonl": _read_jsonl, "text": _read_text, "parquet": _read_parquet}[source.format]
    for index, path in enumerate(files, start=first_index):
        yield from read_file(source, index, path)


def read_part(source: SourceConfig, index: int, path: Path, span: tuple[int, int, int]) -> Iterator[Document]:
    """Documents of one part of a file (`split.plan_file`): `span = (start, end, before)` is a line-aligned
    byte range [start, end) of a JSONL file or a row-group range [start, end) of a Parquet file, and `before`
    the number of lines (rows) ahead of it, so each record keeps its whole-file line number and id."""
    if source.format == "jsonl":
        yield from _read_jsonl(source, index, path, span)
    elif source.format == "parquet":
        yield from _read_parquet(source, index, path, span)
    else:
        raise ValueError(f"{source.format} files are read whole, not in parts: {path}")


def _open(path: Path) -> IO[bytes]:
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def _failed(source: SourceConfig, index: int, path: Path, line: int, reason: str, detail: str) -> Document:
    return Document(
        id=make_id(source.name, index, line),
        text="",
        source=source.name,
        file=str(path),
        line=line,
        error=reason,
        error_detail=detail,
    )


def _decode(raw: bytes) -> tuple[str | None, str]:
    """(text, "") or (None, why): strict UTF-8 decoding."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"byte {exc.start}: {exc.reason}"
    return text, ""


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


# ---------------------------------------------------------------------------------------------------- JSONL


def _read_jsonl(
    source: SourceConfig, index: int, path: Path, span: tuple[int, int, int] | None = None
) -> Iterator[Document]:
    start, end, line = span or (0, -1, 0)  # line: last line handed out; an error is reported on the next
    try:
        if start == 0:  # a later part of a file: the planner sniffed the head already
            with _open(path) as fh:
                if b"\x00" in fh.read(SNIFF_BYTES):
                    yield _failed(source, index, path, 0, "binary", "NUL bytes in the first 8 KiB")
                    return
        with _open(path) as fh:
            fh.seek(start)
            at = start
            for raw in fh:
                if 0 <= end <= at:
                    break
                at += len(raw)
                line += 1
                yield _jsonl_record(source, index, path, line, raw)
    except READ_ERRORS as exc:
        at = line + 1 if line else 0
        yield _failed(source, index, path, at, "unreadable", f"{type(exc).__name__}: {exc}")


def _jsonl_record(source: SourceConfig, index: int, path: Path, line: int, raw: bytes) -> Document:
    def failed(reason: str, detail: str) -> Document:
        return _failed(source, index, path, line, reason, detail)

    if line == 1 and raw.startswith(BOM):
        raw = raw[len(BOM) :]
    decoded, why = _decode(raw)
    if decoded is None:
        return failed("invalid_utf8", why)
    if not decoded.strip():
        return failed("blank_line", "")
    try:
        record = json.loads(decoded)
    except (json.JSONDecodeError, RecursionError) as exc:
        return failed("malformed", f"invalid JSON: {exc}")
    if not isinstance(record, dict):
        return failed("malformed", f"a JSON {type(record).__name__}, not an object")
    if source.text_key not in record:
        return failed("malformed", f"no {source.text_key!r} key")
    text = record.pop(source.text_key)
    if not isinstance(text, str):
        return failed("malformed", f"{source.text_key!r} is a JSON {type(text).__name__}, not a string")
    if _has_surrogates(text):
        return failed("invalid_utf8", "lone surrogate escape in the text")
    return Document(
        id=make_id(source.name, index, line),
        text=text,
        source=source.name,
        meta=record,
        file=str(path),
        line=line,
    )


# ----------------------------------------------------------------------------------------------------- text


def _read_text(source: SourceConfig, index: int, path: Path) -> Iterator[Document]:
    try:
        with _open(path) as fh:
            data = fh.read()
    except READ_ERRORS as exc:
        yield _failed(source, index, path, 0, "unreadable", f"{type(exc).__name__}: {exc}")
        return
    if b"\x00" in data:
        yield _failed(source, index, path, 0, "binary", "NUL bytes in the file")
        return
    if data.startswith(BOM):
        data = data[len(BOM) :]
    if source.text_unit == "file":
        yield _text_record(source, index, path, 1, data)
        return
    blocks = list(_blocks(data))
    if not blocks:  # an empty or all-blank file is still one record, dropped as empty
        yield _text_record(source, index, path, 0, b"")
    for start, block in blocks:
        yield _text_record(source, index, path, start, block)


def _blocks(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(1-based first line, bytes) of each run of non-blank lines; line ends inside a block are kept."""
    start, lines = 0, []
    for number, line in enumerate(data.split(b"\n"), start=1):
        if line.strip():
            if not lines:
                start = number
            lines.append(line)
        elif lines:
            yield start, b"\n".join(lines).rstrip(b"\r")
            lines = []
    if lines:
        yield start, b"\n".join(lines).rstrip(b"\r")


def _text_record(source: SourceConfig, index: int, path: Path, line: int, raw: bytes) -> Document:
    text, why = _decode(raw)
    if text is None:
        return _failed(source, index, path, line, "invalid_utf8", why)
    return Document(
        id=make_id(source.name, index, line), text=text, source=source.name, file=str(path), line=line
    )


# -------------------------------------------------------------------------------------------------- parquet


def _jsonable(value: object) -> object:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _read_parquet(
    source: SourceConfig, index: int, path: Path, span: tuple[int, int, int] | None = None
) -> Iterator[Document]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    errors = (*READ_ERRORS, pa.ArrowException)
    row = span[2] if span else 0
    try:
        fh = pq.ParquetFile(path)
        has_text = source.text_key in fh.schema_arrow.names
        groups = range(span[0], span[1]) if span else None
        for batch in fh.iter_batches(batch_size=4096, row_groups=groups):
            for record in batch.to_pylist():
                row += 1
                if not has_text:
                    yield _failed(source, index, path, row, "malformed", f"no {source.text_key!r} column")
                    continue
                text = record.pop(source.text_key)
                if not isinstance(text, str):
                    kind = "null" if text is None else type(text).__name__
                    yield _failed(source, index, path, row, "malformed", f"{source.text_key!r} is {kind}, not a string")
                    continue
                if _has_surrogates(text):
                    yield _failed(source, index, path, row, "invalid_utf8", "lone surrogate in the text")
                    continue
                yield Document(
                    id=make_id(source.name, index, row), text=text, source=source.name,
                    meta={k: _jsonable(v) for k, v in record.items()}, file=str(path), line=row,
                )
    except errors as exc:
        yield _failed(source, index, path, row + 1 if row else 0, "unreadable", f"{type(exc).__name__}: {exc}")
