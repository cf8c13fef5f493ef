"""Sharded fuzzy dedup (`qwen_hpc.data.lsh`): LSH per band range and verification per pair part, as map
tasks, give exactly the clusters of one task and of the in-memory `near_duplicates`, whatever the number
of tasks (band ranges, or key ranges of bands when there are more tasks than bands)."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import numpy as np
import pytest

from qwen_hpc.data import curate
from qwen_hpc.data.config import MinHashConfig
from qwen_hpc.data.lsh import LSHTask, lsh_tasks
from qwen_hpc.data.minhash import LSHParams, MinHasher, near_duplicates

from .helpers import config, jsonl_source, read_jsonl, write_lines

FILES = 5


def _mutate(text: str, changes: int, rng: random.Random) -> str:
    words = text.split()
    for _ in range(changes):
        words[rng.randrange(len(words))] = f"x{rng.randrange(10**9)}"
    return " ".join(words)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[list, list[str], list[str]]:
    """Clusters of near duplicates (chains: each variant mutates the previous one, so the ends of a chain
    can be below the threshold while the chain holds together), exact copies, unrelated documents, spread
    over several files in shuffled order."""
    rng = random.Random(11)
    texts = []
    for _ in range(60):
        base = " ".join(f"w{rng.randrange(30_000)}" for _ in range(rng.randrange(80, 300)))
        texts.append(base)
        for _ in range(rng.choice([0, 0, 1, 2, 4])):
            texts.append(_mutate(texts[-1], rng.choice([1, 2, 4]), rng))
    texts += [rng.choice(texts) for _ in range(20)]  # exact copies: removed before fuzzy dedup
    texts += ["tiny", "two words", "!!! ???"]  # fewer words than a shingle; no word at all (no signature)
    rng.shuffle(texts)
    root = tmp_path_factory.mktemp("lsh")
    per = -(-len(texts) // FILES)
    paths = [write_lines(root / f"p{i}.jsonl", [{"text": t} for t in texts[i * per : (i + 1) * per]])
             for i in range(FILES)]
    ids = [f"web/{i // per}:{i % per + 1}" for i in range(len(texts))]
    return [jsonl_source("web", *paths)], texts, ids


def _near(out: Path) -> dict[str, str]:
    """Dropped near duplicate id -> the id of the kept document of its cluster (and its similarity)."""
    return {d["id"]: d["detail"] for d in read_jsonl(out / "dropped.jsonl") if d["reason"] == "near_duplicate"}


def _stats(out: Path) -> dict:
    stats = json.loads((out / "stats.json").read_text())
    for key in ("lsh_tasks", "texts_reread"):  # how the work was cut, not what it found
        stats["filters"]["dedup"].pop(key)
    return stats


@pytest.mark.parametrize("verify", ["exact", "estimate"])
def test_four_band_shards_give_exactly_the_clusters_of_one(corpus, tmp_path: Path, verify: str) -> None:
    sources, texts, ids = corpus
    params = LSHParams.from_config(MinHashConfig())
    runs = {}
    for tasks in (1, 4, params.bands * 2 + 3):  # one task, band ranges, key ranges of each band
        out = tmp_path / f"t{tasks}"
        stats = curate(config(minhash=MinHashConfig(lsh_tasks=tasks, verify=verify)), sources, out,
                       progress=False)
        stats.check()
        assert stats.filters["dedup"]["lsh_tasks"] == tasks
        runs[tasks] = out
    one, *others = runs.values()
    near = _near(one)
    assert len(near) >= 40 and len(set(near.values())) >= 15  # clusters, several of them larger than 2
    for out in others:
        assert _near(out) == near
        assert _stats(out) == _stats(one)
        for name in ("dropped.jsonl", "manifest.json"):
            assert (out / name).read_bytes() == (one / name).read_bytes()
        for shard in (one / "shards").glob("*.jsonl"):
            assert (out / "shards" / shard.name).read_bytes() == shard.read_bytes()

    # and the clusters of the in-memory fuzzy dedup over the same exact-dedup survivors
    first = {}
    for i, t in enumerate(texts):
        first.setdefault(t, i)
    alive = sorted(first.values())
    cfg = MinHashConfig(verify=verify)
    sub = [texts[i] for i in alive]
    nd = near_duplicates(MinHasher(cfg).signatures(sub), cfg, sub)
    expected = {ids[alive[k]]: ids[alive[nd.representative[k]]] for k in np.flatnonzero(~nd.keep).tolist()}
    assert {k: re.match(r"duplicate of (\S+)", v).group(1) for k, v in near.items()} == expected


def test_lsh_tasks_cover_every_band_and_key_once() -> None:
    for bands, tasks in [(21, 1), (21, 4), (21, 21), (21, 50), (9, 9), (3, 7)]:
        plan = lsh_tasks(bands, tasks)
        assert len(plan) == tasks and [t.index for t in plan] == list(range(tasks))
        for band in range(bands):
            mine = [t for t in plan if t.band_lo <= band < t.band_hi]
            ranges = sorted(t.key_range() for t in mine)
            assert ranges[0][0] == 0 and ranges[-1][1] is None  # from 0 to the top of the 64-bit space
            assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:], strict=False))
    assert LSHTask(0, 0, 1, 1, 2).key_range() == (2**63, None)


def test_bucket_pairs_link_every_bucket_like_the_all_pairs_reference() -> None:
    from qwen_hpc.data.minhash import bucket_pairs, clusters

    rng = np.random.default_rng(5)
    keys = np.sort(rng.integers(0, 40, size=300).astype(np.uint64), kind="stable")
    members = rng.permutation(1000)[:300]
    order = np.lexsort((members, keys))  # members ascending within a bucket, as the LSH step hands them
    keys, members = keys[order], members[order]
    pairs = bucket_pairs(keys, members)
    assert len(pairs) < 2 * len(keys)  # linear in the bucket sizes, not quadratic
    reference = [(a, b) for k in np.unique(keys) for a in members[keys == k] for b in members[keys == k] if a < b]
    got = clusters(1000, pairs)
    want = clusters(1000, np.array(reference))
    assert np.array_equal(got, want)
    first = {int(k): int(members[keys == k][0]) for k in np.unique(keys)}
    assert all(first[int(k)] in set(pairs[pairs[:, 1] == m, 0].tolist()) or m == first[int(k)]
               for k, m in zip(keys.tolist(), members.tolist(), strict=True))  # every member meets its first
