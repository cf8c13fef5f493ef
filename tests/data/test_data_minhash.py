"""Fuzzy dedup: planted near-duplicates at known Jaccard similarity are found at the configured threshold
(exactly, down to just above it, since candidates are verified on their shingle sets), dissimilar pairs are
not, clusters are transitive, and the fast scheme estimates Jaccard like the classic one."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from qwen_hpc.data import curate
from qwen_hpc.data.config import MinHashConfig
from qwen_hpc.data.minhash import (
    LSHParams,
    MinHasher,
    clusters,
    collision_probability,
    lsh_params,
    near_duplicates,
)
from qwen_hpc.data.text import words

from .helpers import config, jsonl_source, read_jsonl, write_lines


def shingle_set(text: str, n: int = 5) -> set[tuple[str, ...]]:
    ws = words(text)
    return {tuple(ws[i : i + n]) for i in range(len(ws) - n + 1)}


def jaccard(a: str, b: str) -> float:
    x, y = shingle_set(a), shingle_set(b)
    return len(x & y) / len(x | y)


def variant(base: list[str], target: float, rng: random.Random) -> str:
    """Replace words of `base` at spread-out positions until the 5-shingle Jaccard drops to ~target."""
    out = list(base)
    positions = list(range(len(base)))
    rng.shuffle(positions)
    for p in positions:
        if jaccard(" ".join(base), " ".join(out)) <= target:
            break
        out[p] = f"x{rng.randrange(10**9)}"
    return " ".join(out)


@pytest.fixture(scope="module")
def planted() -> tuple[list[str], dict[int, tuple[int, float]]]:
    rng = random.Random(7)
    texts: list[str] = []
    truth: dict[int, tuple[int, float]] = {}  # variant index -> (original index, true Jaccard)
    # 0.82 and 0.78 sit just either side of the 0.8 threshold: exact verification decides them right every
    # time, the MinHash estimate (standard error ~0.035 at 128 min-hashes) only about 70% of the time
    for level in (0.97, 0.94, 0.91, 0.82, 0.78, 0.6, 0.3):
        for _ in range(6):
            base = [f"w{rng.randrange(50_000)}" for _ in range(300)]
            texts.append(" ".join(base))
            texts.append(variant(base, level, rng))
            truth[len(texts) - 1] = (len(texts) - 2, jaccard(texts[-2], texts[-1]))
    return texts, truth


@pytest.mark.parametrize("scheme", ["oph", "permutations"])
def test_planted_near_duplicates_found_at_threshold(planted, scheme: str) -> None:
    texts, truth = planted
    assert sum(0.8 <= j < 0.83 for _, j in truth.values()) == 6  # the boundary pairs are really there
    cfg = MinHashConfig(scheme=scheme)
    result = near_duplicates(MinHasher(cfg).signatures(texts), cfg, texts)
    for v, (orig, j) in truth.items():
        if j >= cfg.threshold:
            assert not result.keep[v] and result.representative[v] == orig, (v, j)
            assert result.similarity[v] == pytest.approx(j), (v, j)  # the exact Jaccard, not an estimate
        else:
            assert result.keep[v] and result.keep[orig], (v, j)
    assert result.keep.sum() == len(texts) - sum(j >= cfg.threshold for _, j in truth.values())
    # the rows are handed to a callable (the merge step rereads only those texts): same result
    rows_seen: list[np.ndarray] = []

    def reread(rows: np.ndarray) -> list[str]:
        rows_seen.append(rows)
        return [texts[i] for i in rows]

    lazy = near_duplicates(MinHasher(cfg).signatures(texts), cfg, reread)
    assert np.array_equal(lazy.keep, result.keep) and np.array_equal(lazy.similarity, result.similarity)
    assert len(rows_seen) == 1 and lazy.texts_read == len(rows_seen[0]) < len(texts)


def test_estimate_verification_is_selectable_and_exact_needs_texts(planted) -> None:
    texts, truth = planted
    cfg = MinHashConfig(verify="estimate")
    result = near_duplicates(MinHasher(cfg).signatures(texts), cfg)
    for v, (orig, j) in truth.items():
        if j >= 0.84:
            assert not result.keep[v] and result.representative[v] == orig, (v, j)
        elif j <= 0.65:
            assert result.keep[v] and result.keep[orig], (v, j)
    assert result.verify == "estimate" and result.texts_read == 0
    with pytest.raises(ValueError, match="verify=exact"):
        near_duplicates(MinHasher(MinHashConfig()).signatures(texts), MinHashConfig())
    with pytest.raises(ValueError, match="exact|estimate"):
        MinHashConfig(verify="maybe")


def test_signature_agreement_estimates_jaccard(planted) -> None:
    texts, truth = planted
    for scheme in ("oph", "permutations"):
        sig = MinHasher(MinHashConfig(scheme=scheme, num_perm=256)).signatures(texts)
        errors = [abs((sig[v] == sig[o]).mean() - j) for v, (o, j) in truth.items()]
        assert np.mean(errors) < 0.05, (scheme, errors)


def test_lsh_parameters_favour_recall_and_clusters_are_transitive() -> None:
    bands, rows = lsh_params(128, 0.8)
    assert bands * rows <= 128 and collision_probability(0.8, LSHParams(bands, rows)) >= 0.99
    assert collision_probability(0.3, LSHParams(bands, rows)) < 0.02
    # 0-1, 1-2 and 4-5 linked: the chain is one cluster labelled by its first member
    label = clusters(6, np.array([[1, 2], [0, 1], [4, 5]]))
    assert label.tolist() == [0, 0, 0, 3, 4, 4]


def test_signatures_do_not_depend_on_batching() -> None:
    texts = [f"document number {i} " + "shared words in every one of them " * (i % 4 + 1) for i in range(50)]
    hasher = MinHasher(MinHashConfig())
    whole = hasher.signatures(texts)
    pieces = np.concatenate([hasher.signatures(texts[i : i + 7]) for i in range(0, 50, 7)])
    assert np.array_equal(whole, pieces)
    assert np.array_equal(whole[:5], hasher.signatures_from_shingles([hasher.shingles(t) for t in texts[:5]]))


def test_curate_drops_near_duplicates_with_reason_and_keeps_the_first(planted, tmp_path: Path) -> None:
    texts, truth = planted
    half = len(texts) // 2
    a = write_lines(tmp_path / "a.jsonl", [{"text": t} for t in texts[:half]])
    b = write_lines(tmp_path / "b.jsonl", [{"text": t} for t in texts[half:]] + [{"text": texts[0]}])
    out = tmp_path / "out"
    stats = curate(config(minhash=MinHashConfig()), [jsonl_source("web", a, b)], out, progress=False)
    expected_near = sum(j >= 0.8 for _, j in truth.values())
    assert stats.dropped == {"near_duplicate": expected_near, "exact_duplicate": 1}
    near = [d for d in read_jsonl(out / "dropped.jsonl") if d["reason"] == "near_duplicate"]
    assert all(d["detail"].startswith("duplicate of web/") and "Jaccard" in d["detail"] for d in near)
    assert stats.kept == len(texts) - expected_near
