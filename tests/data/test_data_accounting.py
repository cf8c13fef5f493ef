"""Every record read is kept or dropped for exactly one reason: read == kept + Σ dropped (style rule 7)."""

from __future__ import annotations

import gzip
from collections import Counter
from pathlib import Path

import pytest

from qwen_hpc.data import ValidationConfig, curate
from qwen_hpc.data.stats import CurationStats
from qwen_hpc.utils.io import read_json

from .helpers import config, jsonl_source, read_jsonl, shard_records, text_source, write_lines

# JSONL lines of a.jsonl and what becomes of each (min_chars=3, max_chars=40 below)
A_LINES: list[tuple[bytes | str | dict, str]] = [
    ({"text": "alpha document", "n": 1}, "kept"),
    ("this is { not json", "malformed"),
    ("[1, 2, 3]", "malformed"),  # JSON, but not an object
    ({"body": "no text key here"}, "malformed"),
    ({"text": 5}, "malformed"),
    ({"text": None}, "malformed"),
    (b'{"text": "caf\xff au lait"}', "invalid_utf8"),
    ('{"text": "lone \\ud800 surrogate"}', "invalid_utf8"),
    ({"text": "   \n\t \u3000"}, "empty"),
    ({"text": ""}, "empty"),
    ({"text": "x" * 41}, "too_long"),
    ({"text": "ab"}, "too_short"),
    ("   ", "blank_line"),
    ({"text": "alpha document", "n": 2}, "exact_duplicate"),
    ({"text": "alpha\n\t document  "}, "exact_duplicate"),  # equal after whitespace collapsing
    ({"text": "beta document"}, "kept"),
]


@pytest.fixture()
def bad_inputs(tmp_path: Path) -> tuple[list, dict[str, int], int]:
    src = tmp_path / "in"
    write_lines(src / "j" / "a.jsonl", [line for line, _ in A_LINES])
    write_lines(src / "j" / "b.jsonl.gz", [{"text": "gamma from a gzip file"}], gz=True)
    (src / "j" / "c.jsonl").write_bytes(b'{"text": "x"}\n\x00\x01\x02binary junk\n')
    (src / "j" / "d.jsonl.gz").write_bytes(b"this is not gzip data at all")
    (src / "j" / "e.jsonl.gz").write_bytes(gzip.compress(b'{"text": "cut off"}\n', mtime=0)[:14])
    (src / "t").mkdir()
    (src / "t" / "p.txt").write_text("para one\nline two\n\n\npara two\n \t\npara one\nline two\n")
    (src / "t" / "q_empty.txt").write_text("")
    (src / "t" / "r_bin.txt").write_bytes(b"text\x00with NUL")
    (src / "t" / "s_bad.txt").write_bytes(b"good block\n\nbad \xff block\n")
    (src / "f").mkdir()
    (src / "f" / "f1.txt").write_bytes(b"\xef\xbb\xbfwhole file document\n")
    (src / "f" / "f2.txt").write_bytes(b"whole file\r\ndocument\r\n")  # duplicate after normalization
    (src / "f" / "f3.txt").write_bytes(b"\xff\xfe not utf-8")

    sources = [
        jsonl_source("j", src / "j" / "*.jsonl*", src / "j" / "missing.jsonl", src / "nowhere" / "*.jsonl"),
        text_source("t", src / "t" / "*.txt", unit="paragraph"),
        text_source("f", src / "f" / "*.txt", unit="file"),
    ]
    a = Counter(fate for _, fate in A_LINES)
    expected = {
        "malformed": a["malformed"],
        "invalid_utf8": a["invalid_utf8"] + 1 + 1,  # s_bad.txt block, f3.txt
        "empty": a["empty"] + 1,  # q_empty.txt
        "too_long": a["too_long"],
        "too_short": a["too_short"],
        "blank_line": a["blank_line"],
        "exact_duplicate": a["exact_duplicate"] + 1 + 1,  # p.txt repeated paragraph, f2.txt
        "binary": 2,  # c.jsonl, r_bin.txt
        "unreadable": 4,  # d.jsonl.gz (not gzip), e.jsonl.gz (truncated), missing.jsonl, nowhere/*.jsonl
    }
    # a.jsonl 2 + b.jsonl.gz 1 + p.txt 2 + s_bad.txt 1 + f1.txt 1
    kept = a["kept"] + 1 + 2 + 1 + 1
    return sources, expected, kept


def test_every_kind_of_bad_input_is_counted_exactly(bad_inputs, tmp_path: Path) -> None:
    sources, expected, kept = bad_inputs
    out = tmp_path / "out"
    stats = curate(config(min_chars=3, max_chars=40), sources, out, progress=False)

    assert stats.dropped == expected
    assert stats.kept == kept
    assert stats.read == stats.kept + sum(stats.dropped.values())
    for per in stats.sources.values():
        assert per.read == per.kept + sum(per.dropped.values())

    on_disk = read_json(out / "stats.json")
    assert on_disk["read"] == stats.read and on_disk["kept"] == kept and on_disk["dropped"] == expected
    assert on_disk["filters"]["read_errors"]["seen"] == stats.read

    dropped = read_jsonl(out / "dropped.jsonl")
    assert Counter(d["reason"] for d in dropped) == Counter(expected)
    assert all(d["file"] and isinstance(d["line"], int) and d["source"] in {"j", "t", "f"} for d in dropped)
    by_reason = {(Path(d["file"]).name, d["line"]): d["reason"] for d in dropped}
    assert by_reason[("a.jsonl", 2)] == "malformed"
    assert by_reason[("a.jsonl", 7)] == "invalid_utf8"
    assert by_reason[("a.jsonl", 14)] == "exact_duplicate"
    assert by_reason[("missing.jsonl", 0)] == "unreadable"
    assert by_reason[("*.jsonl", 0)] == "unreadable"  # the glob that matched nothing, named as such
    assert by_reason[("e.jsonl.gz", 0)] == "unreadable"
    assert by_reason[("s_bad.txt", 3)] == "invalid_utf8"

    kept_records = shard_records(out)
    assert len(kept_records) == kept
    assert "alpha document" in {r["text"] for r in kept_records}
    assert {r["text"] for r in kept_records if r["source"] == "f"} == {"whole file document\n"}  # BOM gone


def test_books_must_balance_or_nothing_is_published(
    bad_inputs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sources, _, _ = bad_inputs
    out = tmp_path / "out"

    def unbalanced(self: CurationStats) -> None:
        raise AssertionError("curation books do not balance")

    monkeypatch.setattr(CurationStats, "check", unbalanced)
    with pytest.raises(AssertionError, match="balance"):
        curate(config(), sources, out, progress=False)
    assert not (out / "manifest.json").exists() and not (out / "stats.json").exists()
    assert not (out / "shards").exists() and not (out / "dropped.jsonl").exists()
    assert [p.name for p in out.iterdir()] == []  # no temporary leftovers either


def test_stats_check_catches_an_unbalanced_count() -> None:
    stats = CurationStats()
    stats.record_read("s")
    stats.record_read("s")
    stats.record_kept("s", 10)
    with pytest.raises(AssertionError, match="read 2 != kept 1"):
        stats.check()
    stats.record_dropped("s", "empty")
    stats.check()


def test_books_balance_with_every_filter_on(bad_inputs, tmp_path: Path, data_root: Path) -> None:
    """The default pipeline (language ID, rules, quality model, decontamination, MinHash) on the same bad
    input: reader reasons are unchanged, later steps add their own, and every record is still counted once."""
    from qwen_hpc.data import DataConfig

    sources, expected, _ = bad_inputs
    out = tmp_path / "out"
    cfg = DataConfig(min_chars=3, max_chars=40, validation=ValidationConfig(fraction=0.0))
    stats = curate(cfg, sources, out, progress=False, data_root=data_root)
    assert stats.read == stats.kept + sum(stats.dropped.values())
    for reason in ("malformed", "invalid_utf8", "binary", "unreadable", "blank_line", "too_long", "too_short"):
        assert stats.dropped[reason] == expected[reason], reason
    dropped = read_jsonl(out / "dropped.jsonl")
    assert len(dropped) == sum(stats.dropped.values())
    assert Counter(d["reason"] for d in dropped) == Counter(stats.dropped)
    assert all(d["file"] and isinstance(d["line"], int) for d in dropped)
    funnel = read_json(out / "stats.json")["funnel"]
    assert funnel[0]["remaining"] == stats.read and funnel[-1]["remaining"] == stats.kept
    assert (out / "funnel.png").read_bytes().startswith(b"\x89PNG")
