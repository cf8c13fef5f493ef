"""Small helpers shared by the data tests: write fixtures, read shards back."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

from qwen_hpc.data.config import (
    DataConfig,
    DecontaminationConfig,
    LanguageIDConfig,
    MinHashConfig,
    NormalizeConfig,
    QualityModelConfig,
    QualityRulesConfig,
    SourceConfig,
    ValidationConfig,
)


def write_lines(path: Path, lines: list[bytes | str | dict[str, Any]], *, gz: bool = False) -> Path:
    """One line per item: dicts become JSON, str is UTF-8 encoded, bytes are written as they are."""
    blob = b"".join(
        (
            json.dumps(x, ensure_ascii=False).encode()
            if isinstance(x, dict)
            else x
            if isinstance(x, bytes)
            else x.encode()
        )
        + b"\n"
        for x in lines
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(blob, mtime=0) if gz else blob)
    return path


def config(**overrides: Any) -> DataConfig:
    """A DataConfig for tests: no validation split and only the basic filters (read errors, empty, length,
    exact dedup), unless asked: each test switches on the steps it is about."""
    kwargs: dict[str, Any] = {
        "sources": [],
        "embedded_corpus": True,  # DataConfig refuses "no sources at all"; tests pass sources to curate
        "validation": ValidationConfig(fraction=0.0),
        "normalize": NormalizeConfig(),
        "minhash": MinHashConfig(enabled=False),
        "language_id": LanguageIDConfig(enabled=False),
        "quality_rules": QualityRulesConfig(enabled=False),
        "quality_model": QualityModelConfig(enabled=False),
        "decontamination": DecontaminationConfig(enabled=False),
    }
    kwargs.update(overrides)
    return DataConfig(**kwargs)


def jsonl_source(name: str, *paths: Path | str, **kw: Any) -> SourceConfig:
    return SourceConfig(name=name, paths=[str(p) for p in paths], format="jsonl", **kw)


def text_source(name: str, *paths: Path | str, unit: str = "file", **kw: Any) -> SourceConfig:
    return SourceConfig(name=name, paths=[str(p) for p in paths], format="text", text_unit=unit, **kw)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def shard_records(out_dir: Path, folder: str = "shards") -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for shard in sorted((out_dir / folder).glob("*.jsonl")):
        records.extend(read_jsonl(shard))
    return records
