"""The embedded corpus: present on a fresh machine, the same bytes every build, big enough to train on."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest

from qwen_hpc.data import DataConfig, curate, prepare_sources
from qwen_hpc.data.embedded import build_embedded_corpus
from qwen_hpc.utils.io import read_json

DEFAULTS = DataConfig()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list, float]:
    out = tmp_path_factory.mktemp("embedded")
    started = time.perf_counter()
    sources = build_embedded_corpus(
        out,
        DEFAULTS.embedded_max_docs_per_source,
        max_chars_per_source=DEFAULTS.embedded_max_chars_per_source,
    )
    return out, sources, time.perf_counter() - started


def _origins(path: Path) -> Counter[str]:
    with open(path, encoding="utf-8") as fh:
        return Counter(json.loads(line)["origin"].split(":")[0] for line in fh)


def test_default_corpus_is_non_trivial(built) -> None:
    out, sources, _ = built
    assert [s.name for s in sources] == ["prose", "code"]
    assert all(Path(p).is_file() for s in sources for p in s.paths)
    summary = read_json(out / "embedded.json")["sources"]
    prose, code = summary["prose"], summary["code"]
    assert prose["chars"] >= 2_000_000 and prose["documents"] >= 200
    assert code["chars"] >= 2_000_000 and code["documents"] >= 100
    kinds = _origins(out / "prose.jsonl")
    assert kinds["pydoc_topics"] >= 50 and kinds["docstring"] >= 50, kinds
    assert set(_origins(out / "code.jsonl")) == {"stdlib"}


def test_build_is_deterministic(built, tmp_path: Path) -> None:
    out, _, _ = built
    build_embedded_corpus(
        tmp_path,
        DEFAULTS.embedded_max_docs_per_source,
        max_chars_per_source=DEFAULTS.embedded_max_chars_per_source,
    )
    for name in ("prose.jsonl", "code.jsonl", "embedded.json"):
        assert (tmp_path / name).read_bytes() == (out / name).read_bytes(), name


def test_limits_are_respected(tmp_path: Path) -> None:
    build_embedded_corpus(tmp_path / "docs", 7)
    build_embedded_corpus(tmp_path / "chars", 10_000, max_chars_per_source=50_000)
    for name in ("prose", "code"):
        assert read_json(tmp_path / "docs" / "embedded.json")["sources"][name]["documents"] == 7
        chars = read_json(tmp_path / "chars" / "embedded.json")["sources"][name]["chars"]
        assert 50_000 <= chars < 50_000 + 200_000  # stops at the first document past the limit


def test_embedded_corpus_curates_cleanly(tmp_path: Path, data_root: Path) -> None:
    """The default config (every filter on) keeps the embedded corpus mostly intact: documentation prose
    and stdlib code are what the tiny experiment trains on."""
    cfg = DataConfig(embedded_max_docs_per_source=150)
    sources = prepare_sources(cfg, tmp_path / "embedded")
    stats = curate(cfg, sources, tmp_path / "data", progress=False, data_root=data_root)
    assert stats.read == 300 and stats.read == stats.kept + sum(stats.dropped.values())
    assert stats.kept >= 240, stats.dropped
    assert stats.sources["code"].kept >= 140, stats.sources["code"].dropped  # prose filters skip code
    manifest = read_json(tmp_path / "data" / "manifest.json")
    assert [s["name"] for s in manifest["sources"]] == ["prose", "code"]
