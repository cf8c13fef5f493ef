"""The embedded SFT set for `tiny`: small chat tasks with checkable answers, generated, never downloaded.

Three kinds of conversation, each a pure function of (seed, index), so the set is the same on every machine:

- `arithmetic`: "What is 37 + 48?" → "37 + 48 = 85." (+ or −, never negative), one to `MAX_QUESTIONS`
  questions in a row in one conversation (every reply supervised, one system prompt for all), at three levels
  of difficulty (`LEVELS`, drawn with `LEVEL_SHARES`): one-digit operands ("7 + 5"), a two-digit and a one-digit
  operand ("37 + 5") and two two-digit operands ("37 + 48"). The easier levels are there so that a two-layer
  model learns sums on two CPU cores in minutes: their digit-wise facts (units digit of 7 + 5, the carry) are
  shared by many questions, so a held-out question is new as a whole but not in its parts. `score_replies`
  reports the accuracy of each level next to the overall one;
- `follow_up`: the same, then "Now add 7 to that." / "Now subtract 9 from that." (one digit) → "85 + 7 =
  92.", which needs the number from the previous turn;
- `docstring`: "What does the Python function `textwrap.dedent` do?" → the first sentence of its docstring,
  for public functions of a fixed list of standard-library modules (text the embedded pretraining corpus
  carries).

The held-out split is decided by the question itself (a hash of the operands and operator, or of the
function's name), so no held-out question ever appears in training, under any seed or size; the questions of
one conversation all belong to its split. Each held-out
record keeps its expected final reply in `answer` (what `score_replies` checks).
"""

from __future__ import annotations

import ast
import hashlib
import random
import re
import sysconfig
from dataclasses import dataclass
from functools import cache
from pathlib import Path

KINDS = ("arithmetic", "follow_up", "docstring")
DOCSTRING_MODULES = (
    "textwrap", "shlex", "fnmatch", "glob", "bisect", "heapq", "statistics", "string", "shutil", "posixpath",
    "genericpath", "base64", "colorsys", "calendar", "copy", "difflib", "filecmp", "gzip", "keyword",
    "linecache", "locale", "mimetypes", "operator", "pprint", "quopri", "random", "reprlib", "secrets",
    "stat", "tempfile", "tokenize", "uu", "warnings", "zipfile", "ipaddress", "html/__init__", "json/__init__",
)
HELD_OUT_BUCKETS = 10  # one question in ten is held out
# arithmetic difficulty: name -> operand ranges (first, second), drawn with LEVEL_SHARES
LEVELS = {"1_digit": ((0, 9), (0, 9)), "2_1_digit": ((10, 99), (0, 9)), "2_digit": ((10, 99), (10, 99))}
LEVEL_SHARES = (0.5, 0.3, 0.2)
MAX_QUESTIONS = 4  # arithmetic questions per `arithmetic` conversation: 1 to this many


@dataclass(frozen=True)
class ChatTask:
    kind: str
    messages: tuple[dict, ...]
    answer: str  # the expected last reply
    held_out: bool

    def record(self) -> dict:
        return {"messages": list(self.messages), "kind": self.kind, "answer": self.answer}


def _bucket(key: str) -> int:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") % HELD_OUT_BUCKETS


def _is_held_out(key: str) -> bool:
    return _bucket(key) == 0


def _op(rng: random.Random, held_out: bool) -> tuple[int, str, int, int]:
    """A question of the requested split (drawn again until its hash falls there)."""
    while True:
        (lo_a, hi_a), (lo_b, hi_b) = LEVELS[rng.choices(tuple(LEVELS), weights=LEVEL_SHARES)[0]]
        a, b = rng.randint(lo_a, hi_a), rng.randint(lo_b, hi_b)
        op = rng.choice("+-")
        if op == "-" and b > a:
            a, b = b, a
        if _is_held_out(f"{a}{op}{b}") == held_out:
            return a, op, b, a + b if op == "+" else a - b


_QUESTION = re.compile(r"What is (\d+) [+-] (\d+)\?$")


def arithmetic_level(question: str) -> str | None:
    """The `LEVELS` name of an embedded arithmetic question ("What is 37 + 5?" -> "2_1_digit"), else None."""
    match = _QUESTION.match(question.strip())
    if not match:
        return None
    digits = sorted((len(match.group(1)), len(match.group(2))), reverse=True)
    return {(1, 1): "1_digit", (2, 1): "2_1_digit", (2, 2): "2_digit"}.get((digits[0], digits[1]))


def _turn(role: str, content: str) -> dict:
    return {"role": role, "content": content}


def _arithmetic(rng: random.Random, held_out: bool) -> ChatTask:
    msgs: list[dict] = []
    for _ in range(rng.randint(1, MAX_QUESTIONS)):
        a, op, b, r = _op(rng, held_out)
        reply = f"{a} {op} {b} = {r}."
        msgs += [_turn("user", f"What is {a} {op} {b}?"), _turn("assistant", reply)]
    return ChatTask("arithmetic", tuple(msgs), reply, held_out)


def _follow_up(rng: random.Random, held_out: bool) -> ChatTask:
    a, op, b, r = _op(rng, held_out)
    c = rng.randint(1, 9)
    op2 = "-" if r >= c and rng.random() < 0.5 else "+"
    r2 = r + c if op2 == "+" else r - c
    ask = f"Now add {c} to that." if op2 == "+" else f"Now subtract {c} from that."
    reply = f"{r} {op2} {c} = {r2}."
    msgs = (
        _turn("user", f"What is {a} {op} {b}?"),
        _turn("assistant", f"{a} {op} {b} = {r}."),
        _turn("user", ask),
        _turn("assistant", reply),
    )
    # keyed on the first question: a held-out "What is a + b?" never appears in training, not even as the
    # first turn of a follow-up
    return ChatTask("follow_up", msgs, reply, held_out)


def _first_sentence(doc: str) -> str | None:
    para = " ".join(doc.strip().split("\n\n")[0].split())
    match = re.match(r"(.+?[.!?])(\s|$)", para)
    sentence = match.group(1) if match else None
    if not sentence or len(sentence) > 120 or len(sentence) < 12 or not sentence[0].isupper():
        return None
    return sentence


@cache
def docstring_facts() -> tuple[tuple[str, str], ...]:
    """(`module.function`, first docstring sentence) of public top-level functions, in a fixed order."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    facts = []
    for module in DOCSTRING_MODULES:
        path = stdlib / f"{module}.py"
        if not path.is_file():
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError):
            continue
        name = module.removesuffix("/__init__").replace("/", ".")
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
                sentence = _first_sentence(ast.get_docstring(node) or "")
                if sentence:
                    facts.append((f"{name}.{node.name}", sentence))
    return tuple(facts)


def _docstring(rng: random.Random, held_out: bool) -> ChatTask | None:
    facts = docstring_facts()
    if not facts:
        return None
    func, sentence = facts[rng.randrange(len(facts))]
    msgs = (_turn("user", f"What does the Python function `{func}` do?"), _turn("assistant", sentence))
    return ChatTask("docstring", msgs, sentence, _is_held_out(func))


def generate(
    seed: int, count: int, *, held_out: bool, weights: tuple[float, float, float] = (0.5, 0.3, 0.2)
) -> list[ChatTask]:
    """`count` tasks of the requested split, drawn by kind with `weights` (arithmetic, follow_up, docstring)."""
    rng = random.Random(f"qwen-hpc-sft-{seed}-{'heldout' if held_out else 'train'}")
    makers = (_arithmetic, _follow_up, _docstring)
    out: list[ChatTask] = []
    attempts = 0
    while len(out) < count:
        attempts += 1
        if attempts > 100 * count + 1000:
            raise RuntimeError(f"could not draw {count} {'held-out' if held_out else 'training'} tasks")
        task = rng.choices(makers, weights=weights)[0](rng, held_out)
        if task is not None and task.held_out == held_out:
            out.append(task)
    return out


_RESULT = re.compile(r"=\s*(-?\d+)\s*\.?\s*$")


def score_replies(tasks: list[ChatTask], replies: list[str], closed: list[bool]) -> dict[str, float]:
    """Per kind: exact-reply accuracy (arithmetic: the number after '=' must be right), and for `arithmetic`
    per level of difficulty too (`arithmetic/<level>_accuracy`); overall: the share of replies the model
    closed with <|im_end|>."""
    out: dict[str, float] = {}
    for kind in KINDS:
        pairs = [(t, r) for t, r in zip(tasks, replies, strict=True) if t.kind == kind]
        if not pairs:
            continue
        if kind == "docstring":
            hits = [r.strip() == t.answer for t, r in pairs]
        else:
            hits = []
            for t, r in pairs:
                want, got = _RESULT.search(t.answer), _RESULT.search(r.strip())
                hits.append(bool(want and got and want.group(1) == got.group(1)))
        out[f"{kind}_accuracy"] = sum(hits) / len(hits)
        out[f"{kind}_count"] = float(len(hits))
        if kind == "arithmetic":
            for level in LEVELS:
                mine = [h for (t, _), h in zip(pairs, hits, strict=True)
                        if arithmetic_level(t.messages[-2]["content"]) == level]
                if mine:
                    out[f"arithmetic/{level}_accuracy"] = sum(mine) / len(mine)
                    out[f"arithmetic/{level}_count"] = float(len(mine))
    out["im_end_rate"] = sum(closed) / max(len(closed), 1)
    return out
