"""The learned quality scorer learns quality (issue 12 item 6): positives held apart from the pool, a
probability threshold, held-out accuracy and ROC-AUC recorded; planted junk ranks below clean prose, and a
pool without junk loses (almost) nothing."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from qwen_hpc.data import curate
from qwen_hpc.data.config import QualityModelConfig
from qwen_hpc.data.quality_model import roc_auc
from qwen_hpc.utils.io import read_json

from .helpers import config, jsonl_source, read_jsonl, shard_records, write_lines

JUNK_KINDS = ("keyword spam", "boilerplate", "shuffled", "templated SEO")


def _clean_prose() -> list[str]:
    """Prose paragraphs of the Python language reference (standard library; code and grammar left out),
    in groups of about 300 characters."""
    from pydoc_data.topics import topics

    out = []
    for key in sorted(topics):
        group: list[str] = []
        for para in topics[key].split("\n\n"):
            text = para.strip()
            letters = sum(c.isalpha() or c.isspace() for c in text) / max(1, len(text))
            if not text or any(line.startswith((" ", "\t")) for line in para.splitlines()) or letters < 0.9:
                continue
            if len(text.split()) < 12:
                continue
            group.append(" ".join(text.split()))
            if sum(len(g) for g in group) >= 300:
                out.append(" ".join(group))
                group = []
    return list(dict.fromkeys(out))  # the reference repeats some paragraphs across topics


def _junk(clean: list[str], rng: random.Random, n: int) -> list[tuple[str, str]]:
    """(kind, text): the four kinds of junk web crawls are full of."""
    vocab = sorted({w for t in clean for w in re.findall(r"[a-z]{4,}", t)})
    menu = ["Home", "About Us", "Contact", "Privacy Policy", "Terms of Service", "Login", "Sign up", "Sitemap",
            "Careers", "Cookie settings"]
    out = []
    for i in range(n):
        kind = JUNK_KINDS[i % 4]
        if kind == "keyword spam":
            keys = rng.sample(vocab, 5)
            text = " ".join(rng.choice(keys) for _ in range(rng.randint(60, 150)))
        elif kind == "boilerplate":
            lines = [" | ".join(rng.sample(menu, 6)) for _ in range(3)]
            lines += [f"Copyright {rng.randint(2000, 2024)} All rights reserved.", "Subscribe to our newsletter",
                      "Click here to accept cookies", "Follow us on Facebook Twitter Instagram"] * 2
            rng.shuffle(lines)
            text = "\n".join(lines)
        elif kind == "shuffled":
            words = rng.choice(clean).split()
            rng.shuffle(words)
            text = " ".join(words)
        else:
            city, thing = rng.choice(["Paris", "London", "Berlin", "Rome", "Vienna"]), rng.choice(vocab)
            page = [f"Best {thing} in {city} {rng.randint(2019, 2025)}",
                    f"Looking for the best {thing} in {city}? Find cheap {thing} {city} deals.",
                    f"Top 10 {thing} {city}. Cheap {thing} {city}. Best {thing} {city} reviews.",
                    f"{thing} {city} near me | {thing} {city} prices | buy {thing} {city}"]
            text = "\n".join(page * rng.randint(2, 4))
        out.append((kind, text))
    return out


@pytest.fixture(scope="module")
def prose() -> tuple[list[str], list[str]]:
    """(positives, clean pool): two disjoint halves of the clean prose."""
    texts = _clean_prose()
    random.Random(0).shuffle(texts)
    assert len(texts) >= 200
    return texts[: len(texts) // 2], texts[len(texts) // 2:]


def _curate(tmp_path: Path, positives: list[str], pool: list[dict]) -> tuple[Path, dict[str, float]]:
    """Run the data pipeline with the quality model alone; returns (out dir, {id: P(good)})."""
    ref = write_lines(tmp_path / "positives.jsonl", [{"text": t} for t in positives])
    web = write_lines(tmp_path / "web.jsonl", pool)
    cfg = config(quality_model=QualityModelConfig(positives=[str(ref)], pool_docs=2000))
    out = tmp_path / "out"
    curate(cfg, [jsonl_source("web", web)], out, progress=False)
    p_good = {r["id"]: r["meta"]["quality_p_good"] for r in shard_records(out)}
    for d in read_jsonl(out / "dropped.jsonl"):
        if d["reason"] != "quality_model":  # exact duplicates (repeated boilerplate) go before scoring
            continue
        p_good[d["id"]] = float(re.match(r"P\(good\) ([\d.]+) <", d["detail"]).group(1))
    return out, p_good


def test_planted_junk_ranks_below_clean_prose(prose, tmp_path: Path) -> None:
    positives, clean = prose
    rng = random.Random(1)
    junk = _junk(clean, rng, len(clean) // 4)
    pool = [{"text": t, "kind": "clean"} for t in clean] + [{"text": t, "kind": k} for k, t in junk]
    rng.shuffle(pool)
    out, p_good = _curate(tmp_path, positives, pool)
    kinds = {i: pool[int(i.rsplit(":", 1)[1]) - 1]["kind"] for i in p_good}  # ids end in the line number
    clean_p = [p for i, p in p_good.items() if kinds[i] == "clean"]
    junk_p = [p for i, p in p_good.items() if kinds[i] != "clean"]
    assert len(clean_p) >= 0.9 * len(clean) and len(junk_p) >= 0.9 * len(junk)  # others: exact duplicates
    import numpy as np

    assert roc_auc(np.array(clean_p), np.array(junk_p)) >= 0.9
    for kind in JUNK_KINDS:  # each kind on its own ranks below clean prose
        assert roc_auc(np.array(clean_p), np.array([p for i, p in p_good.items() if kinds[i] == kind])) >= 0.75
    assert sum(p < 0.5 for p in junk_p) >= 0.5 * len(junk_p)  # most junk goes at the default threshold
    assert sum(p < 0.5 for p in clean_p) <= 0.1 * len(clean_p)  # and little clean prose
    record = read_json(out / "stats.json")["quality_model"]
    assert record["threshold"] == 0.5 and "quantile" not in record["threshold_on"]
    assert 0.0 <= record["heldout_accuracy"] <= 1.0 and 0.0 <= record["heldout_roc_auc"] <= 1.0
    assert record["positive_documents"] == len(positives) and record["positives"] == {
        "paths": [str(tmp_path / "positives.jsonl")]}


def test_a_pool_without_junk_loses_almost_nothing(prose, tmp_path: Path) -> None:
    positives, clean = prose
    out, p_good = _curate(tmp_path, positives, [{"text": t} for t in clean])
    dropped = sum(p < 0.5 for p in p_good.values())
    assert dropped <= 0.05 * len(clean), f"{dropped} of {len(clean)} clean documents dropped"
    record = read_json(out / "stats.json")["quality_model"]
    # the classifier cannot tell positives from this pool: held-out ROC-AUC near chance
    assert 0.3 <= record["heldout_roc_auc"] <= 0.7


def test_a_positive_is_never_a_negative(prose, tmp_path: Path) -> None:
    positives, clean = prose
    out, _ = _curate(tmp_path, positives, [{"text": t} for t in clean + positives[:20]])
    assert read_json(out / "stats.json")["quality_model"]["pool"]["positives_left_out"] == 20
