"""Chat formats: each one read and detected; malformed records of each reported with file and line, counted,
and skipped; real data (GSM8K, Self-Instruct, HH-RLHF) read through run.data_root."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from qwen_hpc.alignment.config import SFTConfig, SFTSourceConfig
from qwen_hpc.alignment.dataset import build_sft_data, check_sft_sources
from qwen_hpc.alignment.formats import Conversation, MalformedRecord, detect_format, read_conversations
from qwen_hpc.tokenizer.encoding import QwenTokenizer

GOOD = {
    "openai": {"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"},
                            {"role": "assistant", "content": "A"}]},
    "sharegpt": {"conversations": [{"from": "human", "value": "Q"}, {"from": "gpt", "value": "A"}]},
    "qwen": {"id": "x", "conversations": [{"from": "user", "value": "Q"}, {"from": "assistant", "value": "A"}]},
    "alpaca": {"instruction": "Q", "input": "ctx", "output": "A"},
    "self_instruct": {"instruction": "Q", "instances": [{"input": "", "output": "A"}, {"input": "i", "output": "B"}]},
    "gsm8k": {"question": "Q", "answer": "A\n#### 1"},
    "hh_rlhf": {"chosen": "\n\nHuman: Q\n\nAssistant: A"},
}
BAD = {
    "openai": ({"messages": [{"role": "tool", "content": "x"}]}, "role 'tool' must be"),
    "sharegpt": ({"conversations": [{"from": "human", "value": "Q"}, {"from": "bot", "value": "A"}]},
                 "'from'='bot' must be one of"),
    "qwen": ({"conversations": [{"from": "user", "value": "Q"}, {"from": "gpt", "value": "A"}]},
             "'from'='gpt' must be user|assistant"),
    "alpaca": ({"instruction": "Q", "output": 3}, "'output' must be a string"),
    "self_instruct": ({"instruction": "Q", "instances": []}, "'instances' must be a non-empty list"),
    "gsm8k": ({"question": "Q"}, "'answer' must be a string"),
    "hh_rlhf": ({"chosen": "\n\nHuman: Q"}, "no '\\\\n\\\\nAssistant:' reply"),
}


@pytest.mark.parametrize("fmt", sorted(GOOD))
def test_each_format_read_detected_and_malformed_reported(tmp_path: Path, fmt: str) -> None:
    bad, reason = BAD[fmt]
    path = tmp_path / f"{fmt}.jsonl"
    path.write_text(
        "\n".join([json.dumps(GOOD[fmt]), json.dumps(bad), "{not json", "", json.dumps(GOOD[fmt])]) + "\n"
    )
    assert detect_format(GOOD[fmt]) == fmt
    items = list(read_conversations(path, "auto"))
    bad_items = [i for i in items if isinstance(i, MalformedRecord)]
    good = [i for i in items if isinstance(i, Conversation)]
    per_record = 2 if fmt == "self_instruct" else 1
    assert len(good) == 2 * per_record
    assert [(b.path, b.line) for b in bad_items] == [(str(path), 2), (str(path), 3)]
    assert reason.replace("\\\\", "\\") in bad_items[0].reason, bad_items[0].reason
    assert "not JSON" in bad_items[1].reason and str(bad_items[0]).startswith(f"{path}:2: ")
    assert good[0].messages[-1].role == "assistant"
    assert good[0].ref == f"{path}:1" + ("#0" if per_record == 2 else "")


def test_qwen_finetune_py_rules_and_json_array_lines(tmp_path: Path) -> None:
    # finetune.py drops one leading non-user turn; a .json file is an array, a record's line is where it starts
    records = [
        {"id": "a", "conversations": [{"from": "assistant", "value": "hello"}, {"from": "user", "value": "Q"},
                                      {"from": "assistant", "value": "A"}]},
        {"id": "b", "conversations": [{"from": "user", "value": "Q"}, {"from": "user", "value": "Q2"}]},
    ]
    path = tmp_path / "data.json"
    path.write_text(json.dumps(records, indent=2))
    items = list(read_conversations(path, "qwen"))
    assert [m.role for m in items[0].messages] == ["user", "assistant"]
    assert isinstance(items[1], MalformedRecord) and items[1].line == 1 + json.dumps(records, indent=2)[
        : json.dumps(records, indent=2).index('{\n    "id": "b"')
    ].count("\n")
    assert "turn 2 is 'user', expected 'assistant'" in items[1].reason


def test_declared_format_and_gz(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.write(json.dumps(GOOD["alpaca"]) + "\n")
    (conv,) = read_conversations(path, "alpaca")
    assert conv.messages[0].content == "Q\n\nctx"
    (bad,) = read_conversations(path, "gsm8k")  # declared wrongly: every record malformed, with its line
    assert isinstance(bad, MalformedRecord) and bad.line == 1


def test_sources_counted_weighted_and_checked(tmp_path: Path) -> None:
    tok = QwenTokenizer({bytes([b]): b for b in range(256)}, name="bytes")
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text("\n".join(json.dumps(GOOD["openai"]) for _ in range(10)) + "\n{}\n")
    b.write_text("\n".join(json.dumps(GOOD["gsm8k"]) for _ in range(4)) + "\n")
    cfg = SFTConfig(
        sources=[SFTSourceConfig("a", [str(a)]), SFTSourceConfig("b", [str(b)], weight=2.5)], valid_fraction=0.0
    )
    data = build_sft_data(cfg, tok, seq_length=256, seed=0)
    assert data.stats["sources"]["a"] == {"malformed": 1, "conversations": 10, "after_mixture": 10}
    assert data.stats["sources"]["b"] == {"malformed": 0, "conversations": 4, "after_mixture": 10}
    assert data.stats["train"]["kept"] == len(data.train) == 20 and data.stats["malformed"] == 1
    assert str(data.malformed[0]) == f"{a}:11: 'messages' must be a non-empty list"  # format fixed by the file's first record
    with pytest.raises(FileNotFoundError, match=r"sft.sources\[name='c'\].paths: '.*nope.jsonl' does not exist"):
        check_sft_sources(SFTConfig(sources=[SFTSourceConfig("c", [str(tmp_path / "nope.jsonl")])]))
    with pytest.raises(ValueError, match=r"sft.sources\[name='d'\].format='csv' must be one of"):
        SFTSourceConfig("d", ["x"], format="csv")


def test_real_chat_data(data_root: Path) -> None:
    counts = {}
    for rel in ("gsm8k/train.jsonl", "self_instruct/seed_tasks.jsonl", "hh_rlhf/helpful-base_test.jsonl.gz"):
        items = list(read_conversations(data_root / rel))
        counts[rel] = (sum(isinstance(i, Conversation) for i in items), sum(isinstance(i, MalformedRecord)
                                                                            for i in items))
    assert counts["gsm8k/train.jsonl"] == (7473, 0)
    assert counts["self_instruct/seed_tasks.jsonl"][0] >= 175
    good, bad = counts["hh_rlhf/helpful-base_test.jsonl.gz"]
    assert good + bad == 2354 and bad < 10  # a few dialogues end in an empty reply
