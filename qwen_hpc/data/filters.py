"""Filters: the rule-based part of Qwen's data pipeline (report §2.1, spec §1.2), one class per rule.

As in DataTrove, the base class keeps the books: a filter implements only `filter(doc)`, returning None to
keep the document or a short reason string to drop it, and `Filter.__call__` counts what it saw, kept and
dropped by reason. `FilterChain` runs filters in order and stops at the first drop, so every document is
dropped for exactly one reason. Later filters (MinHash dedup, language ID, quality scores, 13-gram
decontamination) are more subclasses appended to the chain in `pipeline.build_filters`.
"""

from __future__ import annotations

import abc
from collections import Counter
from typing import Any, ClassVar

from qwen_hpc.data.document import Document


class Filter(abc.ABC):
    name: ClassVar[str]

    def __init__(self) -> None:
        self.seen = 0
        self.kept = 0
        self.dropped: Counter[str] = Counter()

    @abc.abstractmethod
    def filter(self, doc: Document) -> str | None:
        """None keeps the document; a string drops it and is the reason recorded."""

    def __call__(self, doc: Document) -> str | None:
        self.seen += 1
        reason = self.filter(doc)
        if reason is None:
            self.kept += 1
        else:
            self.dropped[reason] += 1
        return reason

    def stats(self) -> dict[str, Any]:
        return {"seen": self.seen, "kept": self.kept, "dropped": dict(sorted(self.dropped.items()))}


class FilterChain:
    def __init__(self, filters: list[Filter]) -> None:
        names = [f.name for f in filters]
        if len(set(names)) != len(names):
            raise ValueError(f"filter names must be unique: {names}")
        self.filters = filters

    def __call__(self, doc: Document) -> str | None:
        for step in self.filters:
            reason = step(doc)
            if reason is not None:
                return reason
        return None

    def stats(self) -> dict[str, dict[str, Any]]:
        return {f.name: f.stats() for f in self.filters}


class ReadErrorFilter(Filter):
    """Drops the records a reader could not turn into documents, under the reader's reason."""

    name = "read_errors"

    def filter(self, doc: Document) -> str | None:
        return doc.error


class EmptyFilter(Filter):
    name = "empty"

    def filter(self, doc: Document) -> str | None:
        return None if doc.text.strip() else "empty"


class LengthFilter(Filter):
    """Bounds on `len(text)` in characters: shorter than `min_chars` or longer than `max_chars` is dropped."""

    name = "length"

    def __init__(self, min_chars: int, max_chars: int) -> None:
        super().__init__()
        self.min_chars = min_chars
        self.max_chars = max_chars

    def filter(self, doc: Document) -> str | None:
        n = len(doc.text)
        if n < self.min_chars:
            return "too_short"
        if n > self.max_chars:
            return "too_long"
        return None
