"""Readers: ids, order, units, and errors that become records instead of exceptions."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

from qwen_hpc.data.readers import read_source, source_files

from .helpers import jsonl_source, text_source, write_lines


def test_files_are_sorted_and_ids_name_file_index_and_line(tmp_path: Path) -> None:
    write_lines(tmp_path / "b.jsonl", [{"text": "b1"}, {"text": "b2", "k": [1]}])
    write_lines(tmp_path / "a.jsonl", [{"text": "a1"}])
    source = jsonl_source("s", tmp_path / "*.jsonl", tmp_path / "a.jsonl")  # a.jsonl listed twice: read once
    assert [p.name for p in source_files(source)] == ["a.jsonl", "b.jsonl"]
    docs = list(read_source(source))
    assert [(d.id, d.text) for d in docs] == [("s/0:1", "a1"), ("s/1:1", "b1"), ("s/1:2", "b2")]
    assert docs[2].meta == {"k": [1]} and docs[2].line == 2 and docs[2].file.endswith("b.jsonl")


def test_custom_text_key_and_crlf_lines(tmp_path: Path) -> None:
    (tmp_path / "q.jsonl").write_bytes(
        b'{"question": "why?", "answer": "because"}\r\n{"question": "how?"}\r\n'
    )
    docs = list(read_source(jsonl_source("q", tmp_path / "q.jsonl", text_key="question")))
    assert [(d.text, d.meta, d.error) for d in docs] == [
        ("why?", {"answer": "because"}, None),
        ("how?", {}, None),
    ]


def test_paragraph_blocks_start_at_their_first_line(tmp_path: Path) -> None:
    (tmp_path / "p.txt").write_text("\n\nfirst block\ncontinues\n\n   \nsecond\n")
    docs = list(read_source(text_source("p", tmp_path / "p.txt", unit="paragraph")))
    assert [(d.id, d.text) for d in docs] == [("p/0:3", "first block\ncontinues"), ("p/0:7", "second")]


def test_text_file_unit_keeps_the_file_verbatim_and_reads_gzip(tmp_path: Path) -> None:
    (tmp_path / "x.txt.gz").write_bytes(gzip.compress(b"  indented\n\tcode\n", mtime=0))
    (docs,) = read_source(text_source("x", tmp_path / "x.txt.gz"))
    assert docs.text == "  indented\n\tcode\n" and docs.id == "x/0:1"


def test_a_stream_that_breaks_mid_file_keeps_what_was_read(tmp_path: Path) -> None:
    # incompressible lines, so half of the gzip stream decodes into many complete lines
    lines = [{"text": hashlib.sha256(str(i).encode()).hexdigest() * 4} for i in range(2000)]
    blob = gzip.compress(write_lines(tmp_path / "plain.jsonl", lines).read_bytes(), mtime=0)
    (tmp_path / "cut.jsonl.gz").write_bytes(blob[: len(blob) // 2])
    docs = list(read_source(jsonl_source("c", tmp_path / "cut.jsonl.gz")))
    *good, last = docs
    assert len(good) > 100 and all(d.error is None for d in good[:-1])
    assert last.error == "unreadable" and last.line == len(good) + 1
    assert "EOFError" in last.error_detail or "Error" in last.error_detail


def test_directory_and_missing_file_are_unreadable_records(tmp_path: Path) -> None:
    (tmp_path / "adir").mkdir()
    docs = list(read_source(text_source("d", tmp_path / "adir", tmp_path / "gone.txt")))
    assert [(d.id, d.error) for d in docs] == [("d/0:0", "unreadable"), ("d/1:0", "unreadable")]
    assert "IsADirectoryError" in docs[0].error_detail and "FileNotFoundError" in docs[1].error_detail
