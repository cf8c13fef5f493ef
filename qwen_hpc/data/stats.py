"""The books of a curation run: documents read, kept, and dropped by reason — in total and per source.

The invariant (style rule 7) is `read == kept + sum(dropped.values())`, exactly, for the total and for every
source. `CurationStats.check()` enforces it and the pipeline calls it before writing `stats.json`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class SourceStats:
    read: int = 0
    kept: int = 0
    kept_chars: int = 0
    validation: int = 0  # of the kept documents, how many went to the held-out split
    validation_chars: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    files: list[str] = field(default_factory=list)  # in file-index order: `<source>/<index>:<line>` ids

    def to_dict(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "kept": self.kept,
            "kept_chars": self.kept_chars,
            "validation": self.validation,
            "validation_chars": self.validation_chars,
            "dropped": dict(sorted(self.dropped.items())),
            "files": list(self.files),
        }


@dataclass
class CurationStats:
    read: int = 0
    kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    sources: dict[str, SourceStats] = field(default_factory=dict)
    filters: dict[str, dict[str, Any]] = field(default_factory=dict)
    elapsed_s: float = 0.0  # not written to stats.json, which stays a pure function of the inputs

    def source(self, name: str) -> SourceStats:
        return self.sources.setdefault(name, SourceStats())

    def record_read(self, name: str) -> None:
        self.read += 1
        self.source(name).read += 1

    def add_counts(self, name: str, read: int, dropped: dict[str, int]) -> None:
        """A shard's books in bulk: `read` documents, `dropped` by reason."""
        self.read += read
        self.source(name).read += read
        for reason, n in dropped.items():
            self.dropped[reason] = self.dropped.get(reason, 0) + n
            self.source(name).dropped[reason] += n

    def record_kept(self, name: str, chars: int, *, validation: bool = False, count_read: bool = False) -> None:
        """`count_read`: also count it as read (when reads are not added in bulk)."""
        if count_read:
            self.record_read(name)
        self.kept += 1
        per = self.source(name)
        per.kept += 1
        per.kept_chars += chars
        if validation:
            per.validation += 1
            per.validation_chars += chars

    def record_dropped(self, name: str, reason: str, *, count_read: bool = False) -> None:
        if count_read:
            self.record_read(name)
        self.dropped[reason] = self.dropped.get(reason, 0) + 1
        self.source(name).dropped[reason] += 1

    def check(self) -> None:
        """Raise AssertionError (even under `python -O`) unless every document is accounted for."""
        problems = []
        if self.read != self.kept + sum(self.dropped.values()):
            problems.append(
                f"total: read {self.read} != kept {self.kept} + dropped {sum(self.dropped.values())}"
            )
        for name, per in self.sources.items():
            if per.read != per.kept + sum(per.dropped.values()):
                problems.append(
                    f"{name}: read {per.read} != kept {per.kept} + dropped {sum(per.dropped.values())}"
                )
        if sum(per.read for per in self.sources.values()) != self.read:
            problems.append("per-source reads do not add up to the total")
        if problems:
            raise AssertionError("curation books do not balance: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "kept": self.kept,
            "dropped": dict(sorted(self.dropped.items())),
            "dropped_total": sum(self.dropped.values()),
            "sources": {name: per.to_dict() for name, per in self.sources.items()},
            "filters": self.filters,
        }
