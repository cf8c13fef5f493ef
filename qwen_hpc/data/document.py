"""The unit that flows through data curation: one document, or one record a reader could not turn into one.

Readers never raise on bad input and never skip it. A record they cannot read (malformed JSON, invalid
UTF-8, a binary or unreadable file, ...) still becomes a `Document`, with `error` set to the reason; the
first filter drops it under that reason. So every record read is counted exactly once, as kept or as
dropped with a reason (style rule 7: read = kept + Σ dropped).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def make_id(source: str, file_index: int, line: int) -> str:
    """`<source>/<file index>:<line>`: file index in the source's sorted file list, 1-based line where the
    record or block starts (0 when the record is a whole file that could not be read)."""
    return f"{source}/{file_index}:{line}"


@dataclass
class Document:
    id: str
    text: str
    source: str
    meta: dict[str, Any] = field(default_factory=dict)  # carried into the shard (e.g. other JSONL keys)
    file: str = ""  # where it came from, for dropped.jsonl; not written to the shards
    line: int = 0
    error: str | None = None  # set by a reader: why this record is not a document
    error_detail: str = ""
