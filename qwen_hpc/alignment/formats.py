"""Chat data formats read into ChatML conversations, every record traced to its file and line (spec §7.1).

| format          | a record                                                                              |
|-----------------|---------------------------------------------------------------------------------------|
| `openai`        | `{"messages": [{"role": "system"|"user"|"assistant", "content": str}, ...]}`          |
| `sharegpt`      | `{"conversations": [{"from": "system"|"human"|"gpt", "value": str}, ...]}`            |
| `qwen`          | Qwen's `finetune.py` JSON: `{"conversations": [{"from": "user"|"assistant", ...}]}`  |
| `alpaca`        | `{"instruction": str, "input": str (optional), "output": str}`                        |
| `self_instruct` | `{"instruction": str, "instances": [{"input": str, "output": str}, ...]}` (1 per instance) |
| `gsm8k`         | `{"question": str, "answer": str}` (the worked solution is the reply)                 |
| `hh_rlhf`       | `{"chosen": "\\n\\nHuman: ...\\n\\nAssistant: ..."}` (the chosen dialogue)             |

A file is JSONL (one record per line, `.gz` read transparently) or a JSON array (`.json`, what finetune.py
reads; a record's line is where it starts). `auto` detects the format from a file's first record. `qwen`
keeps finetune.py's rules (spec §7.3): a first turn not from the user is dropped (once), `from` must be
`user` or `assistant`. Every conversation must alternate user/assistant after an optional system turn and
end with an assistant turn; anything else is a `MalformedRecord` naming file, line and reason.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qwen_hpc.alignment.chatml import Message

FORMATS = ("auto", "openai", "sharegpt", "qwen", "alpaca", "self_instruct", "gsm8k", "hh_rlhf")


class RecordError(ValueError):
    """Why one record cannot become a conversation (no location: the reader adds it)."""


@dataclass(frozen=True)
class MalformedRecord:
    path: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}"


@dataclass(frozen=True)
class Conversation:
    messages: tuple[Message, ...]
    source: str
    ref: str  # "<file>:<line>[#<n>]" (self_instruct: one conversation per instance)


def _str(record: dict, key: str, *, optional: bool = False) -> str:
    value = record.get(key, "" if optional else None)
    if not isinstance(value, str):
        raise RecordError(f"{key!r} must be a string, got {type(value).__name__}")
    return value


def _turns(record: dict, key: str) -> list[Any]:
    turns = record.get(key)
    if not isinstance(turns, list) or not turns:
        raise RecordError(f"{key!r} must be a non-empty list")
    if not all(isinstance(t, dict) for t in turns):
        raise RecordError(f"every item of {key!r} must be an object")
    return turns


def check_dialogue(messages: list[Message]) -> list[Message]:
    """Optional system turn, then user/assistant alternating, ending with the assistant."""
    body = messages[1:] if messages and messages[0].role == "system" else messages
    if not body:
        raise RecordError("no user/assistant turns")
    for i, m in enumerate(body):
        want = "user" if i % 2 == 0 else "assistant"
        if m.role != want:
            raise RecordError(f"turn {i + 1} is {m.role!r}, expected {want!r} (turns must alternate)")
    if body[-1].role != "assistant":
        raise RecordError("the last turn is not an assistant reply")
    if not all(m.content.strip() for m in body if m.role == "assistant"):
        raise RecordError("an assistant reply is empty")
    return messages


def _message(role: str, content: Any) -> Message:
    if not isinstance(content, str):
        raise RecordError(f"content of a {role!r} turn must be a string, got {type(content).__name__}")
    return Message(role, content)


def parse_openai(record: dict) -> list[list[Message]]:
    out = []
    for t in _turns(record, "messages"):
        role = t.get("role")
        if role not in ("system", "user", "assistant"):
            raise RecordError(f"role {role!r} must be system|user|assistant")
        out.append(_message(role, t.get("content")))
    return [check_dialogue(out)]


_SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant"}


def parse_sharegpt(record: dict) -> list[list[Message]]:
    out = []
    for t in _turns(record, "conversations"):
        who = t.get("from")
        if who not in _SHAREGPT_ROLES:
            raise RecordError(f"'from'={who!r} must be one of {'|'.join(_SHAREGPT_ROLES)}")
        out.append(_message(_SHAREGPT_ROLES[who], t.get("value")))
    return [check_dialogue(out)]


def parse_qwen(record: dict) -> list[list[Message]]:
    """finetune.py: drop one leading non-user turn; `from` must be user|assistant; default system prompt."""
    turns = _turns(record, "conversations")
    if turns[0].get("from") != "user":
        turns = turns[1:]
    out = []
    for t in turns:
        who = t.get("from")
        if who not in ("user", "assistant"):
            raise RecordError(f"'from'={who!r} must be user|assistant (finetune.py format)")
        out.append(_message(who, t.get("value")))
    return [check_dialogue(out)]


def parse_alpaca(record: dict) -> list[list[Message]]:
    instruction, extra, output = _str(record, "instruction"), _str(record, "input", optional=True), _str(
        record, "output"
    )
    user = f"{instruction}\n\n{extra}" if extra.strip() else instruction
    return [check_dialogue([Message("user", user), Message("assistant", output)])]


def parse_self_instruct(record: dict) -> list[list[Message]]:
    instruction = _str(record, "instruction")
    instances = _turns(record, "instances")
    return [parse_alpaca({"instruction": instruction, **inst})[0] for inst in instances]


def parse_gsm8k(record: dict) -> list[list[Message]]:
    return [check_dialogue([Message("user", _str(record, "question")), Message("assistant", _str(record, "answer"))])]


def parse_hh_rlhf(record: dict) -> list[list[Message]]:
    text = _str(record, "chosen")
    parts = text.split("\n\nHuman:")
    if parts[0].strip():
        raise RecordError("'chosen' must start with '\\n\\nHuman:'")
    out = []
    for part in parts[1:]:
        if "\n\nAssistant:" not in part:
            raise RecordError("a Human turn has no '\\n\\nAssistant:' reply")
        user, *replies = part.split("\n\nAssistant:")
        out += [Message("user", user.strip()), Message("assistant", "\n\nAssistant:".join(replies).strip())]
    return [check_dialogue(out)]


PARSERS: dict[str, Callable[[dict], list[list[Message]]]] = {
    "openai": parse_openai,
    "sharegpt": parse_sharegpt,
    "qwen": parse_qwen,
    "alpaca": parse_alpaca,
    "self_instruct": parse_self_instruct,
    "gsm8k": parse_gsm8k,
    "hh_rlhf": parse_hh_rlhf,
}


def detect_format(record: dict) -> str:
    """The format a record looks like; RecordError when none fits."""
    if "messages" in record:
        return "openai"
    if "conversations" in record:
        turns = record["conversations"] if isinstance(record["conversations"], list) else []
        froms = {t.get("from") for t in turns if isinstance(t, dict)}
        return "sharegpt" if froms & {"human", "gpt", "system"} else "qwen"
    if "instances" in record and "instruction" in record:
        return "self_instruct"
    if "instruction" in record and "output" in record:
        return "alpaca"
    if "question" in record and "answer" in record:
        return "gsm8k"
    if "chosen" in record:
        return "hh_rlhf"
    raise RecordError(f"no known chat format has the keys {sorted(record)[:8]}")


def _records(path: Path) -> Iterator[tuple[int, Any]]:
    """(line, parsed JSON or RecordError) of every record of a JSONL or JSON-array file."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8-sig") as f:
        text = f.read()
    if path.name.removesuffix(".gz").endswith(".json"):
        yield from _array_records(text)
        return
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, RecordError(f"not JSON ({exc.msg} at column {exc.colno})")


def _array_records(text: str) -> Iterator[tuple[int, Any]]:
    decoder = json.JSONDecoder()
    pos = len(text) - len(text.lstrip())
    if not text.startswith("[", pos):
        yield text.count("\n", 0, pos) + 1, RecordError("a .json file must hold a JSON array of records")
        return
    pos += 1
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(text) or text[pos] == "]":
            return
        line = text.count("\n", 0, pos) + 1
        try:
            value, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            yield line, RecordError(f"not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})")
            return  # the rest of the array cannot be located
        yield line, value


def read_conversations(
    path: str | Path, fmt: str = "auto", *, source: str = ""
) -> Iterator[Conversation | MalformedRecord]:
    """Every record of one file as conversations (or a MalformedRecord with file and line), in file order."""
    if fmt not in FORMATS:
        raise ValueError(f"format={fmt!r} must be one of {'|'.join(FORMATS)}")
    path = Path(path)
    try:
        records = list(_records(path))
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        yield MalformedRecord(str(path), 0, f"unreadable ({exc})")
        return
    chosen = None if fmt == "auto" else fmt
    for line, record in records:
        try:
            if isinstance(record, RecordError):
                raise record
            if not isinstance(record, dict):
                raise RecordError(f"a record must be a JSON object, got {type(record).__name__}")
            chosen = chosen or detect_format(record)
            convs = PARSERS[chosen](record)
        except (RecordError, ValueError) as exc:
            yield MalformedRecord(str(path), line, str(exc))
            continue
        for n, messages in enumerate(convs):
            ref = f"{path}:{line}" + (f"#{n}" if len(convs) > 1 else "")
            yield Conversation(tuple(messages), source, ref)
