"""13-gram decontamination against the real evaluation sets: planted leaks of GSM8K, MMLU and HumanEval
items are removed, clean neighbours (the same topic, or a 12-word fragment of an item) are kept, and the
n-gram index is built once and reused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qwen_hpc.data import curate
from qwen_hpc.data.config import DecontaminationConfig
from qwen_hpc.data.decontam import cached_index, eval_items, load_index
from qwen_hpc.data.text import words
from qwen_hpc.utils.io import read_json

from .helpers import config, jsonl_source, read_jsonl, write_lines

BENCHMARKS = ["gsm8k", "mmlu", "humaneval"]
FILLER = "Our team wrote this paragraph about gardening tools and the weather in spring for a newsletter."


@pytest.fixture(scope="module")
def items(data_root: Path) -> dict[str, list[str]]:
    return {name: eval_items(data_root, name)[1] for name in BENCHMARKS}


def _window(text: str, n: int, start: int = 2) -> str:
    """n consecutive normalized words of an item, as plain text."""
    return " ".join(words(text)[start : start + n])


def test_planted_leaks_removed_and_clean_neighbours_kept(items, data_root: Path, tmp_path: Path) -> None:
    gsm, mmlu, he = items["gsm8k"][10], items["mmlu"][123], items["humaneval"][5]
    docs = {
        "leak-gsm8k": f"{FILLER} {_window(gsm, 13)} {FILLER}",
        "leak-mmlu": f"{FILLER}\n{_window(mmlu, 20, 0).upper()}!",  # case and punctuation do not hide it
        "leak-humaneval": f"# a snippet found online\n{he[:400]}\n{FILLER}",
        "clean-12gram": f"{FILLER} {_window(gsm, 12)} {FILLER}",
        "clean-topic": "Natalia sold clips to her friends and we talked about what April and May mean for sales.",
        "clean-filler": FILLER,
    }
    path = write_lines(tmp_path / "web.jsonl", [{"text": t, "tag": k} for k, t in docs.items()])
    cfg = config(decontamination=DecontaminationConfig(benchmarks=BENCHMARKS))
    out = tmp_path / "out"
    stats = curate(cfg, [jsonl_source("web", path)], out, progress=False, data_root=data_root,
                   cache_dir=tmp_path / "cache")
    assert stats.dropped == {"contaminated": 3}
    dropped = {d["line"]: d for d in read_jsonl(out / "dropped.jsonl")}
    assert {d["detail"] for d in dropped.values()} == {f"shares a 13-gram with {b}" for b in BENCHMARKS}
    kept = {r["meta"]["tag"] for r in read_jsonl(out / "shards" / "web-00000.jsonl")}
    assert kept == {"clean-12gram", "clean-topic", "clean-filler"}
    info = read_json(out / "stats.json")["decontamination"]
    assert info["n"] == 13 and info["benchmarks"]["humaneval"]["items"] == 164
    assert info["benchmarks"]["gsm8k"]["items"] == 1319


def test_index_is_built_once_and_reused(data_root: Path, tmp_path: Path) -> None:
    first = cached_index(tmp_path, data_root, ["gsm8k"], 13)
    stamp = first.stat().st_mtime_ns
    again = cached_index(tmp_path, data_root, ["gsm8k"], 13)
    assert again == first and again.stat().st_mtime_ns == stamp
    assert cached_index(tmp_path, data_root, ["gsm8k"], 8) != first  # another n, another index
    index = load_index(str(first))
    question = json.loads((data_root / "gsm8k" / "test.jsonl").read_text().splitlines()[0])["question"]
    assert index.match("Blog post: " + question) == "gsm8k"
    assert index.match(FILLER) is None


def test_missing_data_root_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="benchmark 'gsm8k' not found under the data root"):
        cached_index(tmp_path / "c", tmp_path / "nowhere", ["gsm8k"], 13)
    with pytest.raises(ValueError, match="unknown"):
        DecontaminationConfig(benchmarks=["gsm8k", "nope"])


def test_missing_eval_sets_are_skipped_and_listed_unless_required(tmp_path) -> None:
    """A fresh machine has no data root: decontamination still runs (HumanEval ships in its package)
    and says which sets it could not use; `require_all` turns that into an error."""
    import json

    import pytest

    from qwen_hpc.data.decontam import cached_index, load_index

    empty_root = tmp_path / "no-datasets"
    empty_root.mkdir()
    path = cached_index(tmp_path / "cache", empty_root, ["gsm8k", "humaneval"], 13, require_all=False)
    info = json.loads(path.with_suffix(".json").read_text())
    assert info["missing"] == ["gsm8k"]
    assert info["benchmarks"]["humaneval"]["items"] == 164
    assert len(load_index(str(path)).hashes) > 0
    with pytest.raises(FileNotFoundError, match="gsm8k"):
        cached_index(tmp_path / "cache2", empty_root, ["gsm8k"], 13, require_all=True)
