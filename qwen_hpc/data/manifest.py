"""Reading the `data` stage's output: its manifest names the shards of each source and their weight."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from qwen_hpc.utils.io import read_json


@dataclass(frozen=True)
class ManifestSource:
    name: str
    shards: tuple[Path, ...]
    documents: int
    weight: float


def read_manifest(path: Path) -> tuple[list[ManifestSource], str]:
    """Return the sources (shard paths made absolute) and the JSON key holding the text."""
    path = Path(path)
    manifest = read_json(path)
    sources = [
        ManifestSource(
            name=s["name"],
            shards=tuple((path.parent / shard).resolve() for shard in s["shards"]),
            documents=int(s.get("documents", 0)),
            weight=float(s.get("weight", 1.0)),
        )
        for s in manifest["sources"]
    ]
    return sources, manifest.get("text_key", "text")


def iter_texts(manifest_path: Path, max_chars: int | None = None) -> Iterator[str]:
    """Texts of every source in manifest order, interleaved round-robin by shard so that a character
    budget samples all sources rather than only the first one."""
    sources, text_key = read_manifest(manifest_path)
    shard_lists = [list(s.shards) for s in sources]
    budget = max_chars if max_chars is not None and max_chars >= 0 else float("inf")  # -1 = everything
    used = 0
    queue = [shard for group in _round_robin(shard_lists) for shard in group]
    for shard in queue:
        with open(shard, encoding="utf-8") as fh:
            for line in fh:
                text = json.loads(line)[text_key]
                if used + len(text) > budget:
                    return
                used += len(text)
                yield text


def _round_robin(groups: list[list[Path]]) -> Iterator[list[Path]]:
    depth = max((len(g) for g in groups), default=0)
    for i in range(depth):
        yield [g[i] for g in groups if i < len(g)]
