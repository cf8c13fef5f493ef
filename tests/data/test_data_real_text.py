"""Curation on real public text from the shared dataset bundle ($QWEN_HPC_DATA_ROOT, see conftest)."""

from __future__ import annotations

import json
from pathlib import Path

from qwen_hpc.data import SourceConfig, ValidationConfig, check_sources, curate
from qwen_hpc.utils.io import read_json

from .helpers import config, read_jsonl


def test_chinese_sentences_and_english_sets(data_root: Path, tmp_path: Path) -> None:
    zh = data_root / "zh_text_ud_gsdsimp" / "zh_gsdsimp_sentences.jsonl"
    sources = [
        SourceConfig(name="zh", paths=[str(zh)], language="zh", upsample=2.0),
        SourceConfig(name="gsm8k", paths=[str(data_root / "gsm8k" / "t*.jsonl")], text_key="question"),
        # one of the two HH test files (harmless-base: 2,312 pairs)
        SourceConfig(name="hh", paths=[str(data_root / "hh_rlhf" / "harmless-base_test.jsonl.gz")],
                     text_key="chosen"),
    ]
    # the basic filters only: this test is about reading real files (decontamination would rightly drop
    # the GSM8K test questions; tests/data/test_data_decontam.py covers that)
    cfg = config(sources=sources, embedded_corpus=False, validation=ValidationConfig(fraction=0.05))
    check_sources(cfg)
    out = tmp_path / "data"
    stats = curate(cfg, cfg.sources, out, progress=False)

    assert stats.read == stats.kept + sum(stats.dropped.values())
    with open(zh, encoding="utf-8") as fh:
        zh_texts = [json.loads(line)["text"] for line in fh]
    per = stats.sources["zh"]
    assert per.read == len(zh_texts) == 1000
    assert per.kept + per.dropped["exact_duplicate"] == 1000 and set(per.dropped) <= {"exact_duplicate"}
    assert 0 < per.validation < 150

    manifest = read_json(out / "manifest.json")
    entry = next(s for s in manifest["sources"] if s["name"] == "zh")
    kept = [r for p in entry["shards"] + entry["validation"]["shards"] for r in read_jsonl(out / p)]
    assert {r["text"] for r in kept} <= set(zh_texts)  # Chinese text survives unchanged
    assert all(r["meta"]["sent_id"] for r in kept) and entry["weight"] == 2.0 and entry["language"] == "zh"
    assert "同样" in (out / entry["shards"][0]).read_text(encoding="utf-8")

    # gsm8k train + test + test_socratic: the socratic file repeats the test questions
    assert stats.sources["gsm8k"].dropped["exact_duplicate"] >= 1000
    assert stats.sources["hh"].read == 2312
