"""Typed configuration of data curation (Qwen report §2.1, spec §1.2), usable with or without Hydra.

The dataclasses use only types an OmegaConf structured config accepts (int, float, str, bool, Optional,
List and nested dataclasses), so the `data` stage config can subclass `DataConfig` directly. Every field
is checked in `__post_init__`, and the error names the field, so a bad value fails when the config is
composed, long before a job is submitted. `check_sources` is the second gate: it looks at the file system
and lists every source path or glob that finds nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional  # noqa: UP035 - OmegaConf structured configs want typing generics

from qwen_hpc.data.paths import describe_missing

SOURCE_FORMATS = ("jsonl", "text")
TEXT_UNITS = ("file", "paragraph")
# names the built-in corpus (qwen_hpc.data.embedded) takes when `embedded_corpus` is on
EMBEDDED_SOURCE_NAMES = ("prose", "code")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class MissingSourcesError(FileNotFoundError, ValueError):
    """Some configured source paths or globs find no file; the message lists every one of them."""


@dataclass
class SourceConfig:
    """One named input: local files or globs in one format.

    `format="jsonl"`: one JSON object per line, the document in `text_key`; other keys are kept as metadata.
    `format="text"`: UTF-8 text, one document per file (`text_unit="file"`) or per block of lines between
    blank lines (`text_unit="paragraph"`). Files ending in `.gz` are decompressed on the fly.
    `upsample` becomes the source's blend weight in the manifest (Qwen's "selective up-sampling").
    """

    name: str
    paths: List[str]  # noqa: UP006
    format: str = "jsonl"
    text_key: str = "text"
    text_unit: str = "file"
    language: Optional[str] = None  # noqa: UP045 - recorded in the manifest; language ID comes later
    upsample: float = 1.0

    def __post_init__(self) -> None:
        where = f"data.sources[name={self.name!r}]"
        if not _NAME_RE.match(self.name or ""):
            raise ValueError(
                f"{where}.name must be non-empty and use only letters, digits, '_', '.', '-' "
                "(it names the shard files)"
            )
        if not self.paths:
            raise ValueError(f"{where}.paths is empty: give at least one file path or glob")
        if any(not isinstance(p, str) or not p.strip() for p in self.paths):
            raise ValueError(f"{where}.paths={list(self.paths)!r} contains an empty entry")
        if self.format not in SOURCE_FORMATS:
            raise ValueError(f"{where}.format={self.format!r} must be one of {'|'.join(SOURCE_FORMATS)}")
        if not self.text_key:
            raise ValueError(f"{where}.text_key must be non-empty")
        if self.text_unit not in TEXT_UNITS:
            raise ValueError(f"{where}.text_unit={self.text_unit!r} must be one of {'|'.join(TEXT_UNITS)}")
        if not self.upsample > 0:
            raise ValueError(f"{where}.upsample={self.upsample} must be > 0")


@dataclass
class NormalizeConfig:
    """How text is normalized before exact deduplication compares it (the stored text is left as read).

    Qwen dedups "after text normalization" without giving the rules (spec §1.2, UNCONFIRMED); these are ours.
    """

    unicode_nfc: bool = True
    collapse_whitespace: bool = True  # every run of whitespace (newlines included) counts as one space
    casefold: bool = False


@dataclass
class ValidationConfig:
    """A held-out split: each kept document goes to validation with probability `fraction`.

    The choice hashes the document's normalized text with `seed`, so it does not depend on reading order
    and a document never moves between splits when other sources are added. 0 disables the split.
    """

    fraction: float = 0.01
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.fraction < 1.0:
            raise ValueError(f"data.validation.fraction={self.fraction} must be in [0, 1)")
        if not 0 <= self.seed < 2**63:
            raise ValueError(f"data.validation.seed={self.seed} must be in [0, 2**63)")


@dataclass
class DataConfig:
    """Everything the data-curation step needs. Lengths are in characters (Unicode code points)."""

    sources: List[SourceConfig] = field(default_factory=list)  # noqa: UP006
    embedded_corpus: bool = True
    embedded_max_docs_per_source: int = 5000
    embedded_max_chars_per_source: int = 3_000_000
    min_chars: int = 1
    max_chars: int = 1_000_000
    shard_max_docs: int = 2000
    normalize: NormalizeConfig = field(default_factory=NormalizeConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)

    def __post_init__(self) -> None:
        if not self.sources and not self.embedded_corpus:
            raise ValueError("data.sources is empty and data.embedded_corpus is false: nothing to curate")
        names = [s.name for s in self.sources]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"data.sources: names must be unique, repeated: {duplicated}")
        if self.embedded_corpus:
            clash = sorted(set(names) & set(EMBEDDED_SOURCE_NAMES))
            if clash:
                raise ValueError(
                    f"data.sources: {clash} are taken by the embedded corpus; rename them or set "
                    "data.embedded_corpus=false"
                )
        for key in ("embedded_max_docs_per_source", "embedded_max_chars_per_source", "shard_max_docs"):
            if getattr(self, key) < 1:
                raise ValueError(f"data.{key}={getattr(self, key)} must be >= 1")
        if self.min_chars < 0:
            raise ValueError(f"data.min_chars={self.min_chars} must be >= 0")
        if self.max_chars < max(self.min_chars, 1):
            raise ValueError(f"data.max_chars={self.max_chars} must be >= max(data.min_chars, 1)")


def check_sources(cfg: DataConfig) -> None:
    """Fail before any job is submitted if a configured path is missing or a glob matches no file.

    The embedded corpus is not checked: it is built at run time from the Python installation.
    Raises `MissingSourcesError` (a `FileNotFoundError` and a `ValueError`) listing every problem.
    """
    problems = [
        f"data.sources[name={source.name!r}]: {pattern!r} {why}"
        for source in cfg.sources
        for pattern in source.paths
        if (why := describe_missing(pattern)) is not None
    ]
    if problems:
        problems.append(f"(relative paths are taken from the working directory {Path.cwd()})")
    if problems:
        raise MissingSourcesError("missing data sources:\n  " + "\n  ".join(problems))
