"""Readers: turn a source's files into `Document`s, one per record, in a fixed order, never raising on bad
input and never skipping it.

JSONL: one record per line (lines split on `\\n` only, a trailing `\\r` ignored). Text: one document per
file, or one per block of lines separated by blank lines. Both read `.gz` files transparently and strip a
leading UTF-8 byte-order mark. What goes wrong becomes a `Document` whose `error` names the reason:

| reason         | when                                                                      |
|----------------|---------------------------------------------------------------------------|
| `unreadable`   | the file cannot be opened or read (missing, a directory, permissions, ...) |
| `binary`       | the file holds NUL bytes (JSONL: in its first 8 KiB), read as one record  |
| `invalid_utf8` | a line / block / file is not valid UTF-8, or its text has lone surrogates  |
| `malformed`    | a JSONL line is not JSON, not an object, or lacks a string `text_key`      |
| `blank_line`   | a JSONL line holds only whitespace (not a record; counted all the same)    |
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


def read_source(source: SourceConfig, files: list[Path] | None = None) -> Iterator[Document]:
    files = source_files(source) if files is None else files
    read_file = _read_jsonl if source.format == "jsonl" else _read_text
    for index, path in enumerate(files):
        yield from read_file(source, index, path)


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


def _read_jsonl(source: SourceConfig, index: int, path: Path) -> Iterator[Document]:
    line = 0  # last line handed out; an error while reading is reported on the line after it
    try:
        with _open(path) as fh:
            if b"\x00" in fh.read(SNIFF_BYTES):
                yield _failed(source, index, path, 0, "binary", "NUL bytes in the first 8 KiB")
                return
        with _open(path) as fh:
            for raw in fh:
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
