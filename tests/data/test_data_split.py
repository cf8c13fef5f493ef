"""Per-shard tasks follow the data (`data.task_mb`): a large file is cut into line-aligned parts (JSONL) or
row-group ranges (Parquet), the records keep their whole-file ids, and the curated result does not depend on
the cut."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from qwen_hpc.data import curate, plan_tasks
from qwen_hpc.data.readers import read_source
from qwen_hpc.data.shard import ShardTask
from qwen_hpc.data.split import plan_file

from .helpers import config, jsonl_source, write_lines

OUTPUTS = ("stats.json", "manifest.json", "dropped.jsonl")


def _records(source, tasks: list[ShardTask]) -> list[tuple]:  # noqa: ANN001
    return [(d.id, d.text, d.error, d.meta) for t in tasks for d in t.documents(source)]


def _vocab() -> list[str]:
    from pydoc_data.topics import topics

    return sorted({w for t in topics.values() for w in t.split() if w.isalpha() and w.islower()})


def test_jsonl_parts_are_line_aligned_and_keep_whole_file_ids(tmp_path: Path) -> None:
    rng = random.Random(0)
    lines: list = ["\ufeff" + json.dumps({"text": "first line has a byte-order mark"})]
    for i in range(400):
        roll = rng.random()
        if roll < 0.05:
            lines.append(b"{not json")
        elif roll < 0.08:
            lines.append(b"   ")
        elif roll < 0.10:
            lines.append(b"\xff\xfe bad utf-8")
        else:
            lines.append({"text": "x" * rng.randrange(1, 3000) + f" {i}", "n": i})
    lines.append({"text": "y" * 20000})  # one line longer than several parts
    path = write_lines(tmp_path / "a.jsonl", lines)
    path.write_bytes(path.read_bytes() + b'{"text": "no newline at the end"}')
    source = jsonl_source("web", path)
    whole = _records(source, plan_tasks([source]))
    for task_mb in (0.001, 0.0037, 0.05):
        tasks = plan_tasks([source], task_mb)
        assert len(tasks) > 1 and all(t.span for t in tasks)
        spans = [t.span for t in tasks]
        assert spans[0][0] == 0 and spans[-1][1] == path.stat().st_size
        assert all(a[1] == b[0] for a, b in zip(spans, spans[1:], strict=False))  # contiguous, no overlap
        data = path.read_bytes()
        assert all(data[s - 1 : s] == b"\n" for s, _, _ in spans[1:])  # every part starts a line
        assert _records(source, tasks) == whole
    assert [d.id for d in read_source(source)][:2] == ["web/0:1", "web/0:2"]


def test_gzip_and_binary_files_stay_whole(tmp_path: Path) -> None:
    rows = [{"text": "a line of text " * 20}] * 200
    gz = write_lines(tmp_path / "a.jsonl.gz", rows, gz=True)
    binary = write_lines(tmp_path / "b.jsonl", [b"\x00\x01", *rows])
    for path in (gz, binary):
        assert plan_file(jsonl_source("s", path), path, 1000) is None
    assert plan_file(jsonl_source("s", binary), tmp_path / "missing.jsonl", 1000) is None


def test_parquet_is_split_by_row_group(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    texts = [f"row {i} " + "z" * (i % 50) for i in range(1000)]
    texts[17] = None
    path = tmp_path / "p.parquet"
    pq.write_table(pa.table({"text": texts, "k": list(range(1000))}), path, row_group_size=100)
    source = jsonl_source("pq", path)
    source.format = "parquet"
    tasks = plan_tasks([source], 0.002)
    assert len(tasks) >= 3 and [t.span[2] for t in tasks][:2] == [0, tasks[0].span[1] * 100]
    assert _records(source, tasks) == _records(source, plan_tasks([source]))


def test_40mb_file_in_4mb_tasks_curates_like_one_task(tmp_path: Path) -> None:
    rng = random.Random(7)
    vocab = _vocab()
    docs = [" ".join(rng.choices(vocab, k=rng.randrange(150, 450))) for _ in range(9000)]
    lines: list = []
    for i in range(16500):
        roll = rng.random()
        if roll < 0.01:
            lines.append(b"{broken")
        elif roll < 0.015:
            lines.append(b"")
        else:  # draws with replacement: exact duplicates far apart, across part boundaries
            lines.append({"text": docs[rng.randrange(len(docs))], "i": i})
    path = write_lines(tmp_path / "big.jsonl", lines)
    size = path.stat().st_size
    assert 40e6 <= size < 48e6, size
    source = jsonl_source("web", path)
    assert len(plan_tasks([source], 4)) >= 10
    one = curate(config(task_mb=0), [source], tmp_path / "one", progress=False)
    split = curate(config(task_mb=4), [source], tmp_path / "split", progress=False)
    assert one.read == split.read == 16500 and one.kept == split.kept and one.dropped == split.dropped
    assert one.dropped["exact_duplicate"] > 1000 and one.dropped["malformed"] > 50
    for name in OUTPUTS:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "split" / name).read_bytes(), name
    shards = sorted(p.name for p in (tmp_path / "one" / "shards").glob("*.jsonl"))
    assert shards == sorted(p.name for p in (tmp_path / "split" / "shards").glob("*.jsonl"))
    for name in shards:
        assert (tmp_path / "one" / "shards" / name).read_bytes() == (tmp_path / "split" / "shards" / name).read_bytes()
    stats = json.loads((tmp_path / "split" / "stats.json").read_text())
    assert stats["sources"]["web"]["files"] == [str(path)]
