"""Chat mode (Table 5, spec §8.3): 0-shot questions as one ChatML user turn after the default system turn,
greedy, answers extracted from free text as Qwen's `evaluate_chat_*.py` describe.

The ChatML contents are encoded with special-token parsing OFF (`qwen_hpc.inference.chat.chatml_ids`):
a question that contains `<|im_end|>` stays text. BBH has no Qwen chat script (Table 5's BBH 0-shot comes
from OpenCompass): its query here is the task's description + the question + "Let's think step by step."
(UNCONFIRMED), answered as the base task extracts it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qwen_hpc.evaluation import bbh as base_bbh
from qwen_hpc.evaluation import code_tasks, competition_math, gsm8k
from qwen_hpc.evaluation import multiple_choice as mc
from qwen_hpc.evaluation.suite import Judged, Sample, interleave

MMLU_INSTRUCTION = (
    "The following is a multiple-choice question. Please choose the most suitable one among A, B, C and D "
    "as the answer to this question.\n\n"
)
# Qwen's chat GSM8K number: an optional sign, digits with optional thousands groups, an optional fraction
_NUMBER = re.compile(r"([+-])?(?=([0-9]|\.[0-9]))(0|([1-9](\d{0,2}(,\d{3})*)|\d*))?(\.\d*)?(?=\D|$)")
_EN_RULES = (
    # "the answer is B", "answer: B", "choice B", "I choose B" — unless negated right after answer/choice
    re.compile(r"(?:[Cc]hoose|(?:[Aa]nswer|[Cc]hoice)(?![^ABCD]{0,20}?(?:n't|not))[^ABCD]{0,10}?(?:is|:|be)?)"
               r"[^ABCD]{0,20}?\b([ABCD])\b"),
    # "B is correct", "B is right" — unless negated
    re.compile(r"\b([ABCD])\b(?![^ABCD]{0,8}?(?:n't|not)[^ABCD]{0,5}?(?:correct|right))[^ABCD]{0,10}?"
               r"\b(?:correct|right)\b"),
    re.compile(r"^([ABCD])(?:[.,:]|$)"),  # a reply that starts with the letter
    re.compile(r"(?<![a-zA-Z])([ABCD])(?![a-zA-Z=])"),  # the first standalone letter
)
_ZH_RULES = (
    re.compile(r"(?:答案|选项)[^ABCD]{0,10}?(?:是|为|选|：|:)[^ABCD]{0,10}?([ABCD])"),
    re.compile(r"选\s*([ABCD])"),
    re.compile(r"([ABCD])(?:选项)?[^ABCD]{0,4}?(?:正确|对|符合)"),
    re.compile(r"^\s*([ABCD])"),
    re.compile(r"(?<![a-zA-Z])([ABCD])(?![a-zA-Z=])"),
)


def chat_sample(tokenizer: Any, sample_id: str, query: str, gold: Any, group: str = "", **extra: Any) -> Sample:
    from qwen_hpc.inference.chat import chatml_ids, render_chatml

    messages = [{"role": "user", "content": query}]
    return Sample(sample_id, render_chatml(messages), chatml_ids(tokenizer, messages), gold, group, extra)


def letters_for_choices(reply: str, options: Sequence[str], *, ignore_case: bool, strip: str) -> str:
    """Each option's text (without its final `strip` character) replaced by its letter, longest first."""
    flags = re.IGNORECASE if ignore_case else 0
    for letter, text in sorted(zip(mc.LETTERS, options, strict=True), key=lambda p: len(p[1]), reverse=True):
        text = text[:-1] if text.endswith(strip) else text
        if text:
            reply = re.sub(re.escape(text), letter, reply, flags=flags)
    return reply


def pick_letter(reply: str, options: Sequence[str], rules: Sequence[re.Pattern[str]]) -> str:
    for rule in rules:
        found = rule.search(reply)
        if found:
            return found.group(1)
    from thefuzz import process

    best = process.extractOne(reply, list(options))[0]
    return mc.LETTERS[list(options).index(best)]


def ceval_reply(reply: str, question: str) -> str:
    """C-Eval's clean-up before the letter rules: the blank's lead-in becomes 答案是, its tail goes."""
    sentences = [s for s in re.split(r"[。！？\n]", question) if s.strip()]
    parts = sentences[-1].split("_") if sentences else []
    if len(parts) > 1:
        if len(parts[0]) > 4:
            reply = reply.replace(parts[0], "答案是")
        if len(parts[-1]) > 4:
            reply = reply.replace(parts[-1], "")
    return reply


class ChatMultipleChoice:
    kind = "generate"
    stop_strings: tuple[str, ...] = ()

    def __init__(self, base: mc.MultipleChoiceTask) -> None:
        self.base = base
        self.name = base.name

    def required_files(self, root: Path) -> list[Path]:
        return self.base.required_files(root)

    def query(self, q: mc.Question) -> str:
        options = "".join(f"{L}. {o}\n" for L, o in zip(mc.LETTERS, q.options, strict=True))
        if self.base.chinese:
            return f"{q.question}\n\n{options}"
        return f"{MMLU_INSTRUCTION}{q.question}\n{options}"

    def samples(self, root: Path, tokenizer: Any) -> list[Sample]:
        groups: dict[str, list[tuple[str, mc.Question]]] = {}
        for subject, (_, scored) in self.base.read(Path(root)).items():
            groups[subject] = [(f"{subject}/{i}", q) for i, q in enumerate(scored)]
        # pick first (round-robin, as the base task), render and encode only what was picked
        picked = interleave({k: [Sample(i, "", [], q) for i, q in v] for k, v in groups.items()}, self.base.limit)
        return [
            chat_sample(tokenizer, s.id, self.query(s.gold), s.gold.answer, s.gold.subject,
                        options=s.gold.options, question=s.gold.question)
            for s in picked
        ]

    def judge(self, samples: Sequence[Sample], outputs: Sequence[str]) -> list[Judged]:
        out = []
        for s, reply in zip(samples, outputs, strict=True):
            options = s.extra["options"]
            if self.base.chinese:
                text = letters_for_choices(ceval_reply(reply, s.extra["question"]), options,
                                           ignore_case=False, strip="。")
                letter = pick_letter(text, options, _ZH_RULES)
            else:
                text = letters_for_choices(reply, options, ignore_case=True, strip=".")
                letter = pick_letter(text, options, _EN_RULES)
            out.append(Judged(letter, letter == s.gold))
        return out

    def aggregate(self, records: Sequence[dict[str, Any]]) -> dict[str, float]:
        return self.base.aggregate(records)


def last_number(text: str) -> str | None:
    found = [m.group(0) for m in _NUMBER.finditer(text) if m.group(0)]
    return found[-1].replace(",", "").replace("+", "") if found else None


class ChatGsm8k(gsm8k.Gsm8k):
    def samples(self, root: Path, tokenizer: Any) -> list[Sample]:
        out = []
        with open(Path(root) / "gsm8k" / f"{self.split}.jsonl", encoding="utf-8") as fh:
            for i, line in enumerate(fh):
                r = json.loads(line)
                out.append(chat_sample(tokenizer, str(i), r["question"], last_number(r["answer"])))
        return interleave({"": out}, self.limit)

    def judge(self, samples: Sequence[Sample], outputs: Sequence[str]) -> list[Judged]:
        out = []
        for s, reply in zip(samples, outputs, strict=True):
            pred = last_number(reply)
            try:
                ok = pred is not None and abs(float(pred) - float(s.gold)) <= 1e-4
            except ValueError:
                ok = False
            out.append(Judged(pred, ok))
        return out


def humaneval_query(problem: dict[str, str]) -> str:
    prompt, entry = problem["prompt"], problem["entry_point"]
    signature = ""
    for line in prompt.splitlines():
        if line.lstrip().startswith(f"def {entry}"):
            signature = line.strip()[len("def "):].rsplit(":", 1)[0]
            break
    doc = re.search(r'("""|\'\'\')(.*?)\1', prompt, re.DOTALL)
    description = "\n".join(line.strip() for line in doc.group(2).splitlines()).strip() if doc else ""
    return f"Write a Python function `{signature}` to solve the following problem:\n{description}\n{prompt}"


def humaneval_body(reply: str, entry: str) -> str:
    """The function body from a chat reply: a fenced block with `def entry`, that def in plain text, any
    def, else the whole reply indented."""
    candidates = [m.group(1) for m in re.finditer(r"```(?:python)?\n(.*?)```", reply, re.DOTALL)]
    for text in [*(c for c in candidates if f"def {entry}" in c), reply]:
        lines = text.splitlines()
        for i, line in enumerate(lines):
            if re.match(rf"\s*def {re.escape(entry)}\b.*:\s*$", line):
                body = []
                for nxt in lines[i + 1:]:
                    if nxt.strip() and not nxt.startswith((" ", "\t")):
                        break
                    body.append(nxt)
                return "\n".join(body) + "\n"
    for text in [*candidates, reply]:
        lines = text.splitlines()
        for i, line in enumerate(lines):
            if re.match(r"\s*def \w+.*:\s*$", line):
                return "\n".join(lines[i + 1:]) + "\n"
    return "\n".join("    " + line for line in reply.splitlines()) + "\n"


class ChatHumanEval(code_tasks.HumanEval):
    stop_strings = ()

    def samples(self, root: Path, tokenizer: Any) -> list[Sample]:
        base = super().samples(root, tokenizer)
        return [
            chat_sample(tokenizer, s.id, humaneval_query(s.extra["problem"]), s.gold, problem=s.extra["problem"])
            for s in base
        ]

    def program(self, sample: Sample, completion: str) -> str:
        return super().program(sample, humaneval_body(completion, sample.extra["problem"]["entry_point"]))

    def completion(self, text: str) -> str:
        return text


class ChatBbh(base_bbh.Bbh):
    stop_strings = ()

    def samples(self, root: Path, tokenizer: Any) -> list[Sample]:
        root = Path(root)
        groups: dict[str, list[Sample]] = {}
        for task in self.task_names(root):
            cot = base_bbh.cot_prompt((root / "bbh" / "cot-prompts" / f"{task}.txt").read_text(encoding="utf-8"))
            description = cot.split("\n\n")[0]
            data = json.loads((root / "bbh" / "data" / f"{task}.json").read_text(encoding="utf-8"))
            for i, ex in enumerate(data["examples"]):
                query = f"{description}\n\nQ: {ex['input']}\nA: Let's think step by step."
                groups.setdefault(task, []).append(chat_sample(tokenizer, f"{task}/{i}", query, ex["target"], task))
        return interleave(groups, self.limit)


class ChatMath(competition_math.CompetitionMath):
    """MATH for chat models (Math-Qwen-Chat, Table 12): the problem as a 0-shot user turn; the reply's last
    `\\boxed{}` (or "The final answer is") judged by the base task's equivalence check."""

    def samples(self, root: Path, tokenizer: Any) -> list[Sample]:
        groups: dict[str, list[Sample]] = {}
        with open(Path(root) / "math" / competition_math.FILES[self.split], encoding="utf-8") as fh:
            for i, line in enumerate(fh):
                r = json.loads(line)
                subject = str(r.get("subject", r.get("category", "")))
                query = r.get("problem", r.get("context")) + "\nPut the final answer in \\boxed{}."
                groups.setdefault(subject, []).append(
                    chat_sample(tokenizer, str(r.get("unique_id", i)), query, r["answer"], group=subject)
                )
        return interleave(groups, self.limit)


def build(name: str, *, limit: int = 0, math_split: str = "math500") -> Any:
    if name == "mmlu":
        return ChatMultipleChoice(mc.Mmlu(limit=limit))
    if name == "ceval":
        return ChatMultipleChoice(mc.Ceval(limit=limit))
    if name == "gsm8k":
        return ChatGsm8k(limit=limit)
    if name == "humaneval":
        return ChatHumanEval(limit=limit)
    if name == "bbh":
        return ChatBbh(limit=limit)
    if name == "math":
        return ChatMath(limit=limit, split=math_split)
    raise ValueError(f"no chat-mode prompt for {name!r}")

