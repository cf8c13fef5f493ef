"""The per-shard step and the fuzzy dedup's LSH and verify steps give identical results in one process, in a process pool and as a Slurm job array."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from qwen_hpc.config.launcher import LauncherConfig
from qwen_hpc.data import curate
from qwen_hpc.data.config import LanguageIDConfig, MinHashConfig, QualityRulesConfig
from qwen_hpc.launch.array import process_pool_map, slurm_array_map

from .helpers import config, jsonl_source, text_source, write_lines

OUTPUTS = ("stats.json", "manifest.json", "dropped.jsonl")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list:
    root = tmp_path_factory.mktemp("corpus")
    rng = random.Random(3)
    from pydoc_data.topics import topics  # real English words, so language ID keeps the documents

    vocab = sorted({w for t in topics.values() for w in t.split() if w.isalpha() and w.islower()})
    docs = [" ".join(rng.choice(vocab) for _ in range(rng.randrange(120, 200))) for _ in range(240)]
    near = [d.replace(d.split()[3], "changed", 1) for d in docs[:30]]
    files = []
    for i in range(4):
        part = docs[i * 60 : (i + 1) * 60] + near[i * 5 : (i + 1) * 5] + docs[i * 10 : i * 10 + 3]
        files.append(write_lines(root / f"part{i}.jsonl", [{"text": t} for t in part] + [b"{bad json"]))
    (root / "txt").mkdir()
    for i in range(3):
        (root / "txt" / f"t{i}.txt").write_text("\n\n".join(docs[200 + i * 10 : 210 + i * 10]))
    return [jsonl_source("web", *files), text_source("books", root / "txt" / "*.txt", unit="paragraph")]


def _cfg():  # noqa: ANN202
    # three LSH tasks and three verify tasks: the fuzzy dedup's map steps run in the pool / array too
    return config(minhash=MinHashConfig(lsh_tasks=3), language_id=LanguageIDConfig(),
                  quality_rules=QualityRulesConfig())


def _outputs(out: Path) -> dict[str, bytes]:
    files = {name: (out / name).read_bytes() for name in OUTPUTS}
    files.update({f"shards/{p.name}": p.read_bytes() for p in sorted((out / "shards").glob("*.jsonl"))})
    return files


def test_one_process_equals_process_pool(corpus, tmp_path: Path) -> None:
    one = curate(_cfg(), corpus, tmp_path / "one", progress=False)
    pool = curate(_cfg(), corpus, tmp_path / "pool", progress=False, map_fn=process_pool_map(3))
    assert one.read == pool.read == 4 * 69 + 30 and one.dropped == pool.dropped
    assert one.dropped["near_duplicate"] >= 10 and one.dropped["exact_duplicate"] >= 8, one.dropped
    assert _outputs(tmp_path / "one") == _outputs(tmp_path / "pool")


@pytest.mark.slurm
def test_slurm_array_equals_one_process(corpus, tmp_path: Path, require_slurm) -> None:
    one = curate(_cfg(), corpus, tmp_path / "one", progress=False)
    launcher = LauncherConfig(kind="slurm", cpus_per_task=1, timeout_min=10, poll_interval_s=1.0)
    array = curate(_cfg(), corpus, tmp_path / "array", progress=False,
                   map_fn=slurm_array_map(launcher, tmp_path / "logs", name="qwen-test-array"))
    assert one.dropped == array.dropped
    assert _outputs(tmp_path / "one") == _outputs(tmp_path / "array")
    assert list((tmp_path / "logs").glob("*_0/*.out")) or list((tmp_path / "logs").iterdir())
