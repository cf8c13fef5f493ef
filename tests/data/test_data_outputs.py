"""What `curate` leaves on disk: shards rolled at the limit, a manifest of shards that exist, a stable split."""

from __future__ import annotations

import json
from pathlib import Path

from qwen_hpc.data import SourceConfig, ValidationConfig, curate
from qwen_hpc.data.writer import ShardWriter
from qwen_hpc.utils.io import read_json

from .helpers import config, jsonl_source, read_jsonl, shard_records, text_source, write_lines


def _corpus(tmp_path: Path, n: int) -> list[SourceConfig]:
    write_lines(tmp_path / "in" / "web.jsonl", [{"text": f"web document number {i}"} for i in range(n)])
    for i in range(3):
        (tmp_path / "in" / f"book{i}.txt").write_text(f"book {i} chapter one\n\nbook {i} chapter two\n")
    return [
        jsonl_source("web", tmp_path / "in" / "web.jsonl", upsample=2.5, language="en"),
        text_source("books", tmp_path / "in" / "book*.txt", unit="paragraph"),
    ]


def test_manifest_lists_shards_that_exist_with_their_counts(tmp_path: Path) -> None:
    sources = _corpus(tmp_path, 7)
    out = tmp_path / "out"
    stats = curate(config(shard_max_docs=3), sources, out, progress=False)
    manifest = read_json(out / "manifest.json")
    assert manifest["text_key"] == "text"
    assert [s["name"] for s in manifest["sources"]] == ["web", "books"]
    web, books = manifest["sources"]
    assert web["shards"] == ["shards/web-00000.jsonl", "shards/web-00001.jsonl", "shards/web-00002.jsonl"]
    assert web["weight"] == 2.5 and web["language"] == "en" and books["weight"] == 1.0
    listed = {p for s in manifest["sources"] for p in s["shards"]}
    assert listed == {f"shards/{p.name}" for p in (out / "shards").iterdir()}
    for entry in manifest["sources"]:
        records = [r for p in entry["shards"] for r in read_jsonl(out / p)]
        assert entry["documents"] == len(records) == stats.sources[entry["name"]].kept
        assert entry["chars"] == sum(len(r["text"]) for r in records)
        assert all(r["source"] == entry["name"] and r["text"] for r in records)
    assert [len(read_jsonl(out / p)) for p in web["shards"]] == [3, 3, 1]
    assert (out / "stats.json").is_file() and (out / "dropped.jsonl").read_text() == ""


def test_rerun_replaces_shards_instead_of_mixing_runs(tmp_path: Path) -> None:
    sources = _corpus(tmp_path, 10)
    out = tmp_path / "out"
    curate(config(shard_max_docs=2), sources, out, progress=False)
    assert len(list((out / "shards").glob("web-*.jsonl"))) == 5
    first = read_json(out / "stats.json")
    curate(config(shard_max_docs=100), sources, out, progress=False)
    assert sorted(p.name for p in (out / "shards").iterdir()) == ["books-00000.jsonl", "web-00000.jsonl"]
    assert read_json(out / "stats.json") == first  # stats are a function of the inputs only
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary leftovers


def test_writer_rolls_every_max_docs(tmp_path: Path) -> None:
    from qwen_hpc.data.document import Document

    with ShardWriter(tmp_path, "s", 2) as writer:
        for i in range(5):
            writer.write(Document(id=f"s/0:{i + 1}", text=f"doc {i} 中文", source="s"))
    assert [p.name for p in writer.paths] == ["s-00000.jsonl", "s-00001.jsonl", "s-00002.jsonl"]
    assert [len(read_jsonl(p)) for p in writer.paths] == [2, 2, 1]
    assert "中文" in writer.paths[0].read_text(encoding="utf-8")  # UTF-8 as is, not \\u escapes
    assert sorted(p.name for p in tmp_path.iterdir()) == [p.name for p in writer.paths]


def test_validation_split_is_content_addressed(tmp_path: Path) -> None:
    sources = _corpus(tmp_path, 400)
    cfg = config(validation=ValidationConfig(fraction=0.1, seed=3))
    stats = curate(cfg, sources, tmp_path / "o1", progress=False)
    web = stats.sources["web"]
    assert 15 <= web.validation <= 70 and stats.read == stats.kept + sum(stats.dropped.values())
    train = {r["text"] for r in shard_records(tmp_path / "o1")}
    val = {r["text"] for r in shard_records(tmp_path / "o1", "validation")}
    assert len(train) + len(val) == stats.kept and not train & val
    manifest = read_json(tmp_path / "o1" / "manifest.json")
    assert sum(s["validation"]["documents"] for s in manifest["sources"]) == len(val)
    assert all(
        (tmp_path / "o1" / p).is_file() for s in manifest["sources"] for p in s["validation"]["shards"]
    )

    # the same texts in another order, under another source name: the same documents are held out
    lines = (tmp_path / "in" / "web.jsonl").read_text().splitlines()
    (tmp_path / "in2").mkdir()
    (tmp_path / "in2" / "rev.jsonl").write_text("\n".join(reversed(lines)) + "\n")
    curate(cfg, [jsonl_source("rev", tmp_path / "in2" / "rev.jsonl")], tmp_path / "o2", progress=False)
    val2 = {r["text"] for r in shard_records(tmp_path / "o2", "validation")}
    assert val2 == {t for t in val if t.startswith("web")}


def test_stats_json_matches_returned_stats(tmp_path: Path) -> None:
    stats = curate(config(), _corpus(tmp_path, 5), tmp_path / "out", progress=False)
    on_disk = json.loads((tmp_path / "out" / "stats.json").read_text())
    expected = json.loads(json.dumps(stats.to_dict(), sort_keys=True))
    assert {k: on_disk[k] for k in expected} == expected
    assert on_disk["funnel"][0] == {"step": "read", "remaining": stats.read, "dropped": 0}
    assert on_disk["funnel"][-1]["remaining"] == stats.kept
    assert on_disk["sources"]["books"]["files"] == [str(tmp_path / "in" / f"book{i}.txt") for i in range(3)]
