"""Exact dedup keeps the first occurrence in reading order, comparing normalized text."""

from __future__ import annotations

import unicodedata
from pathlib import Path

from qwen_hpc.data import NormalizeConfig, curate
from qwen_hpc.data.normalize import Normalizer

from .helpers import config, jsonl_source, read_jsonl, shard_records, write_lines

COMPOSED = "Café au lait, s'il vous plaît"
DECOMPOSED = unicodedata.normalize("NFD", COMPOSED)


def test_normalizer_rules() -> None:
    assert DECOMPOSED != COMPOSED
    norm = Normalizer(NormalizeConfig())
    assert norm(DECOMPOSED) == norm(COMPOSED) == COMPOSED
    assert norm("  a\t\tb\n\nc\u3000d  ") == "a b c d"
    assert norm("ABC") == "ABC"
    assert Normalizer(NormalizeConfig(casefold=True))("Straße ABC") == "strasse abc"
    raw = Normalizer(NormalizeConfig(unicode_nfc=False, collapse_whitespace=False))
    assert raw(DECOMPOSED) != raw(COMPOSED) and raw(" a  b ") == " a  b "


def test_first_occurrence_is_kept_after_nfc_and_whitespace_normalization(tmp_path: Path) -> None:
    write_lines(
        tmp_path / "a.jsonl",
        [
            {"text": "unique one"},
            {"text": COMPOSED, "tag": "first"},
            {"text": DECOMPOSED, "tag": "nfd copy"},
            {"text": COMPOSED.replace(" ", "\n  "), "tag": "whitespace copy"},
        ],
    )
    write_lines(tmp_path / "b.jsonl", [{"text": COMPOSED, "tag": "later file"}, {"text": "unique two"}])
    later = tmp_path / "later"
    write_lines(later / "c.jsonl", [{"text": "  " + DECOMPOSED + "  ", "tag": "later source"}])
    sources = [jsonl_source("s", tmp_path / "*.jsonl"), jsonl_source("t", later / "c.jsonl")]

    stats = curate(config(), sources, tmp_path / "out", progress=False)
    kept = shard_records(tmp_path / "out")
    cafe = [r for r in kept if "lait" in r["text"]]
    assert len(cafe) == 1
    assert cafe[0]["id"] == "s/0:2" and cafe[0]["meta"] == {"tag": "first"}
    assert cafe[0]["text"] == COMPOSED  # the stored text is the original, not the normalized form
    assert stats.dropped == {"exact_duplicate": 4}
    dropped = read_jsonl(tmp_path / "out" / "dropped.jsonl")
    assert [d["id"] for d in dropped] == ["s/0:3", "s/0:4", "s/1:1", "t/0:1"]


def test_normalization_switches_change_what_counts_as_duplicate(tmp_path: Path) -> None:
    write_lines(
        tmp_path / "a.jsonl", [{"text": "Hello World"}, {"text": "hello   world"}, {"text": DECOMPOSED}]
    )
    write_lines(tmp_path / "b.jsonl", [{"text": COMPOSED}])
    sources = [jsonl_source("s", tmp_path / "*.jsonl")]
    loose = curate(config(normalize=NormalizeConfig(casefold=True)), sources, tmp_path / "o1", progress=False)
    assert loose.kept == 2 and loose.dropped == {"exact_duplicate": 2}
    strict = NormalizeConfig(unicode_nfc=False, collapse_whitespace=False)
    exact = curate(config(normalize=strict), sources, tmp_path / "o2", progress=False)
    assert exact.kept == 4 and exact.dropped == {}
