"""Preference pairs (Qwen report §3.2.1; spec §8.1): one prompt (ChatML messages) with a preferred and a
rejected assistant reply.

Formats read, per record (`auto` detects them):
- `pairs`: `prompt` (a string, ChatML `messages`, or an HH-RLHF transcript ending in `\\n\\nAssistant:`),
  `chosen` and `rejected` (strings, or messages whose last one is the assistant reply);
- `hh_rlhf`: Anthropic's `chosen`/`rejected` whole transcripts (`\\n\\nHuman:`/`\\n\\nAssistant:` turns,
  equal up to the last assistant reply), converted to ChatML messages.
A record that fits neither is reported (file, line, reason) and counted, never silently dropped.

For `tiny`, `synthetic_pairs` builds verifiable pairs from the SFT embedded task set's arithmetic and
follow-up conversations: chosen = the correct final reply; rejected = a verifiably wrong one of two kinds,
`other_question` (the reply to another question of the same kind: an equation that is right but does not
answer this question) or `wrong_result` (this question's own equation with a result off by 1 to 20:
checking it takes the sum itself, the hard kind for a tiny model). Docstring questions are left out: whether
a sentence is a held-out function's docstring can only be known by having read that function, not checked.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qwen_hpc.alignment import embedded
from qwen_hpc.alignment.chatml import Message
from qwen_hpc.alignment.formats import MalformedRecord, RecordError, _records, check_dialogue

PREFERENCE_FORMATS = ("auto", "pairs", "hh_rlhf")
HUMAN, ASSISTANT = "\n\nHuman:", "\n\nAssistant:"
SYNTHETIC_WEIGHTS = (0.6, 0.4, 0.0)  # embedded kinds of synthetic pairs: arithmetic, follow_up, docstring


@dataclass(frozen=True)
class PreferencePair:
    prompt: tuple[Message, ...]  # the dialogue up to (not including) the judged assistant reply
    chosen: str
    rejected: str
    origin: str  # file:line or generator key: for reports and the held-out split
    kind: str = ""


@dataclass
class PreferenceCounts:
    records: int = 0
    pairs: int = 0
    malformed: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)


def hh_transcript(text: str) -> list[Message]:
    """`\\n\\nHuman: …\\n\\nAssistant: …` turns → ChatML messages (a trailing empty `Assistant:` is dropped)."""
    if not text.startswith(HUMAN):
        raise RecordError("an HH-RLHF transcript must start with '\\n\\nHuman:'")
    messages: list[Message] = []
    for part in text.split(HUMAN)[1:]:
        if ASSISTANT not in part:
            raise RecordError("a Human turn has no '\\n\\nAssistant:' reply")
        user, *replies = part.split(ASSISTANT)
        messages.append(Message("user", user.strip()))
        reply = ASSISTANT.join(replies).strip()
        if reply:
            messages.append(Message("assistant", reply))
    return messages


def _prompt(value: Any) -> list[Message]:
    if isinstance(value, str):
        if value.startswith(HUMAN):
            messages = hh_transcript(value)
        elif value.strip():
            messages = [Message("user", value.strip())]
        else:
            raise RecordError("'prompt' is empty")
    elif isinstance(value, list) and value:
        try:
            messages = [Message(str(m["role"]), str(m["content"])) for m in value]
        except (TypeError, KeyError) as err:
            raise RecordError(f"'prompt' messages need 'role' and 'content' ({err})") from None
    else:
        raise RecordError("'prompt' must be a string or a non-empty list of messages")
    if messages[-1].role != "user":
        raise RecordError("the prompt must end with a user turn")
    return messages


def _reply(value: Any, key: str) -> str:
    if isinstance(value, list) and value and isinstance(value[-1], dict):
        if value[-1].get("role") != "assistant":
            raise RecordError(f"the last message of '{key}' must be the assistant's")
        value = value[-1].get("content")
    if not isinstance(value, str) or not value.strip():
        raise RecordError(f"'{key}' must be a non-empty reply")
    return value.strip()


def parse_pairs(record: dict) -> tuple[list[Message], str, str]:
    if "prompt" not in record:
        raise RecordError("missing 'prompt'")
    return _prompt(record["prompt"]), _reply(record.get("chosen"), "chosen"), _reply(record.get("rejected"), "rejected")


def parse_hh_rlhf(record: dict) -> tuple[list[Message], str, str]:
    chosen, rejected = (record.get(k) for k in ("chosen", "rejected"))
    if not isinstance(chosen, str) or not isinstance(rejected, str):
        raise RecordError("'chosen' and 'rejected' must be transcript strings")
    cut_c, cut_r = chosen.rfind(ASSISTANT), rejected.rfind(ASSISTANT)
    if cut_c < 0 or cut_r < 0 or chosen[:cut_c] != rejected[:cut_r]:
        raise RecordError("'chosen' and 'rejected' must share every turn before the last assistant reply")
    prompt = hh_transcript(chosen[: cut_c + len(ASSISTANT)])
    check_dialogue([*prompt, Message("assistant", "x")])
    return prompt, _reply(chosen[cut_c + len(ASSISTANT) :], "chosen"), _reply(rejected[cut_r + len(ASSISTANT) :], "rejected")


def detect(record: dict) -> str:
    if "prompt" in record:
        return "pairs"
    if isinstance(record.get("chosen"), str) and str(record["chosen"]).startswith(HUMAN):
        return "hh_rlhf"
    raise RecordError("neither prompt/chosen/rejected nor an HH-RLHF transcript pair")


def read_pairs(
    path: Path, fmt: str, counts: PreferenceCounts, malformed: list[MalformedRecord], *, limit: int | None = None
) -> list[PreferencePair]:
    """The pairs of one file (JSONL, JSON array, `.gz`); bad records go to `malformed` with file and line."""
    out: list[PreferencePair] = []
    for line, record in _records(path):
        if limit is not None and counts.records >= limit:
            break
        counts.records += 1
        try:
            if isinstance(record, RecordError):
                raise record
            if not isinstance(record, dict):
                raise RecordError("not a JSON object")
            kind = detect(record) if fmt == "auto" else fmt
            prompt, chosen, rejected = (parse_pairs if kind == "pairs" else parse_hh_rlhf)(record)
            if chosen == rejected:
                raise RecordError("'chosen' and 'rejected' are identical")
        except RecordError as err:
            counts.malformed += 1
            malformed.append(MalformedRecord(str(path), line, str(err)))
            continue
        out.append(PreferencePair(tuple(prompt), chosen, rejected, f"{path}:{line}", kind))
        counts.pairs += 1
    return out


def hh_held_out(pair: PreferencePair) -> bool:
    """The HH-RLHF evaluation split: one pair in five (by a hash of its origin line) is held out; the other
    four fifths may be trained on (the train files of HH-RLHF are not in ../shared/datasets)."""
    return int.from_bytes(hashlib.sha256(pair.origin.encode()).digest()[:4], "big") % 5 == 0


def _wrong_result(answer: str, rng: random.Random) -> str | None:
    match = embedded._RESULT.search(answer)
    if not match:
        return None
    good = int(match.group(1))
    bad = good + rng.choice([-1, 1]) * rng.randint(1, 20)
    return answer[: match.start(1)] + str(bad) + answer[match.end(1) :]


def synthetic_pairs(
    seed: int, count: int, *, held_out: bool, wrong_result_share: float = 0.2
) -> list[PreferencePair]:
    """Verifiable pairs from the embedded task set: chosen = the expected reply; rejected = the reply to another
    question of the same kind, or (arithmetic, `wrong_result_share` of them) the same equation with a wrong
    result. Held-out pairs come from the held-out questions of `embedded` (never seen in SFT or RM training)."""
    tasks = embedded.generate(seed, count, held_out=held_out, weights=SYNTHETIC_WEIGHTS)
    rng = random.Random(f"qwen-hpc-rm-{seed}-{held_out}")
    by_kind: dict[str, list[embedded.ChatTask]] = {}
    for t in tasks:
        by_kind.setdefault(t.kind, []).append(t)
    out = []
    for i, task in enumerate(tasks):
        rejected, kind = None, "other_question"
        if task.kind != "docstring" and rng.random() < wrong_result_share:
            rejected, kind = _wrong_result(task.answer, rng), "wrong_result"
        if rejected is None:
            others = [t.answer for t in by_kind[task.kind] if t.answer != task.answer]
            if not others:
                continue
            rejected, kind = rng.choice(others), "other_question"
        prompt = tuple(Message(m["role"], m["content"]) for m in task.messages[:-1])
        out.append(PreferencePair(prompt, task.answer, rejected, f"embedded:{seed}:{held_out}:{i}", f"{task.kind}/{kind}"))
    return out
