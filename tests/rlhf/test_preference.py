"""Preference pairs: both formats (plain, ChatML messages, HH-RLHF transcripts), malformed records reported
with file and line, the HH evaluation split, and synthetic pairs whose chosen reply is verifiably right."""

from __future__ import annotations

import json
from pathlib import Path

from qwen_hpc.alignment import embedded
from qwen_hpc.rlhf.preference import (
    PreferenceCounts,
    hh_held_out,
    hh_transcript,
    read_pairs,
    synthetic_pairs,
)


def test_hh_transcripts_become_chatml_turns() -> None:
    msgs = hh_transcript("\n\nHuman: Hi there\n\nAssistant: Hello!\n\nHuman: How are you?\n\nAssistant:")
    assert [(m.role, m.content) for m in msgs] == [("user", "Hi there"), ("assistant", "Hello!"),
                                                   ("user", "How are you?")]


def test_every_format_is_read_and_bad_records_are_reported_with_file_and_line(tmp_path: Path) -> None:
    records = [
        {"prompt": "What is 2 + 2?", "chosen": "4", "rejected": "5"},
        {"prompt": [{"role": "user", "content": "Hi"}], "chosen": [{"role": "assistant", "content": "Hello"}],
         "rejected": [{"role": "assistant", "content": "Go away"}]},
        {"prompt": "\n\nHuman: Name a colour\n\nAssistant:", "chosen": " Red", "rejected": " Seven"},
        {"chosen": "\n\nHuman: Q?\n\nAssistant: good", "rejected": "\n\nHuman: Q?\n\nAssistant: bad"},
        {"prompt": "x", "chosen": "same", "rejected": "same"},
        {"prompt": "x", "chosen": "", "rejected": "y"},
        {"chosen": "\n\nHuman: A?\n\nAssistant: a", "rejected": "\n\nHuman: B?\n\nAssistant: b"},
        {"unrelated": 1},
    ]
    path = tmp_path / "prefs.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\nnot json\n")
    counts, malformed = PreferenceCounts(), []
    pairs = read_pairs(path, "auto", counts, malformed)
    assert (counts.records, counts.pairs, counts.malformed) == (9, 4, 5)
    assert [m.line for m in malformed] == [5, 6, 7, 8, 9] and all(m.path == str(path) for m in malformed)
    assert "identical" in malformed[0].reason and "share every turn" in malformed[2].reason
    assert [p.chosen for p in pairs] == ["4", "Hello", "Red", "good"]
    assert pairs[2].prompt[-1].content == "Name a colour" and pairs[3].rejected == "bad"
    assert pairs[0].origin == f"{path}:1"


def test_hh_split_holds_out_about_a_fifth() -> None:
    pairs = synthetic_pairs(0, 500, held_out=False)
    share = sum(hh_held_out(p) for p in pairs) / len(pairs)
    assert 0.12 < share < 0.28


def test_synthetic_pairs_are_verifiable_and_held_out_questions_are_new() -> None:
    train = synthetic_pairs(0, 300, held_out=False, wrong_result_share=0.5)
    heldout = synthetic_pairs(0, 100, held_out=True, wrong_result_share=0.5)
    for p in train + heldout:
        assert p.chosen != p.rejected
        if p.kind.startswith(("arithmetic", "follow_up")):
            want = embedded._RESULT.search(p.chosen).group(1)
            got = embedded._RESULT.search(p.rejected)
            assert got is None or got.group(1) != want or not p.rejected.startswith(p.chosen.split("=")[0])
    assert {p.kind.split("/")[1] for p in train} == {"other_question", "wrong_result"}
    assert not {p.prompt for p in train} & {p.prompt for p in heldout}
