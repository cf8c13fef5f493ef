"""Shard writer: kept documents as JSONL shards `<source>-00000.jsonl`, a new shard every `max_docs`.

One line per document: `{"id", "source", "text", "meta"}`, UTF-8 (non-ASCII written as is). Each shard is
written under a temporary name and renamed when it is complete (qwen_hpc.utils.io.atomic_path), so a killed
job never leaves a truncated shard under a final name.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import IO, Any

from qwen_hpc.data.document import Document
from qwen_hpc.utils.io import atomic_path


def shard_name(source: str, index: int) -> str:
    return f"{source}-{index:05d}.jsonl"


def json_line(record: dict[str, Any]) -> str:
    """One JSONL line, non-ASCII written as UTF-8; a lone surrogate (possible in metadata) is escaped."""
    line = json.dumps(record, ensure_ascii=False)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        line = json.dumps(record, ensure_ascii=True)  # the same JSON value, written so UTF-8 can hold it
    return line + "\n"


def dumps_document(doc: Document) -> str:
    return json_line({"id": doc.id, "source": doc.source, "text": doc.text, "meta": doc.meta})


class ShardWriter:
    """Use as a context manager; after it exits, `paths` lists the shards written, in order."""

    def __init__(self, directory: Path, source: str, max_docs: int) -> None:
        if max_docs < 1:
            raise ValueError(f"max_docs={max_docs} must be >= 1")
        self.directory = Path(directory)
        self.source = source
        self.max_docs = max_docs
        self.paths: list[Path] = []
        self.documents = 0
        self.chars = 0
        self._stack = contextlib.ExitStack()
        self._fh: IO[str] | None = None
        self._in_shard = 0

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        # on an exception ExitStack unwinds atomic_path, which deletes the unfinished temporary shard
        self._stack.__exit__(*exc)
        self._fh = None

    def write(self, doc: Document) -> None:
        if self._fh is None or self._in_shard >= self.max_docs:
            self._roll()
        assert self._fh is not None
        self._fh.write(dumps_document(doc))
        self._in_shard += 1
        self.documents += 1
        self.chars += len(doc.text)

    def _roll(self) -> None:
        self._stack.close()  # finishes (renames) the current shard
        final = self.directory / shard_name(self.source, len(self.paths))
        tmp = self._stack.enter_context(atomic_path(final))
        self._fh = self._stack.enter_context(open(tmp, "w", encoding="utf-8", newline="\n"))
        self.paths.append(final)
        self._in_shard = 0
