"""MMLU, C-Eval and CMMLU, 5-shot, with the prompts of Qwen's own eval scripts (spec §6.1).

English (MMLU): a header naming the subject, five dev shots `Question: …\\nA. …\\nAnswer: X\\n\\n`, the test
item ending at `\\nAnswer:`, scored on `" A"`…`" D"`. Chinese (C-Eval, CMMLU): no header,
`问题：…\\n答案：X\\n\\n`, scored on `"A"`…`"D"`. The prediction is the arg-max of the four log-probs at the
last position (one forward per question; see `scoring.choice_logprobs`). Prompts longer than the model's
length keep their last `length - 1` tokens (Qwen's left cut).

Averages: MMLU pools every question (micro) overall and per category; C-Eval and CMMLU report the mean of
per-subject accuracies (macro), per category, and C-Eval's "Hard" subset. Both averages are always written.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from qwen_hpc.evaluation.suite import Judged, Sample, accuracy_by, interleave, mean

LETTERS = ("A", "B", "C", "D")
CATEGORIES = Path(__file__).with_name("data") / "categories.json"


@cache
def categories() -> dict[str, Any]:
    return json.loads(CATEGORIES.read_text(encoding="utf-8"))


@dataclass
class Question:
    subject: str
    question: str
    options: tuple[str, str, str, str]
    answer: str  # "A".."D"


def render_question(q: Question, *, chinese: bool, with_answer: bool) -> str:
    q_word, a_word = ("问题：", "答案：") if chinese else ("Question: ", "Answer:")
    body = f"{q_word}{q.question}\n" + "".join(f"{L}. {o}\n" for L, o in zip(LETTERS, q.options, strict=True))
    if not with_answer:
        return body + a_word
    return body + a_word + ("" if chinese else " ") + q.answer + "\n\n"


def render_prefix(subject: str, shots: Sequence[Question], *, chinese: bool) -> str:
    """What every test item of a subject starts with: the header (English) and the answered shots."""
    header = "" if chinese else (
        f"The following are multiple choice questions (with answers) about {subject.replace('_', ' ')}.\n\n"
    )
    return header + "".join(render_question(s, chinese=chinese, with_answer=True) for s in shots)


def render_prompt(q: Question, shots: Sequence[Question], *, chinese: bool) -> str:
    """The exact few-shot prompt of Qwen's evaluate_{mmlu,ceval,cmmlu}.py for one test item."""
    return render_prefix(q.subject, shots, chinese=chinese) + render_question(q, chinese=chinese, with_answer=False)


def truncate_left(ids: list[int], length: int) -> list[int]:
    """Qwen's cut: a prompt longer than the model's length keeps its last `length - 1` tokens."""
    return ids[-(length - 1):] if length > 1 and len(ids) > length else ids


# ------------------------------------------------------------------------------------------------ readers


def read_mmlu(root: Path) -> dict[str, dict[str, list[Question]]]:
    """{split: {subject: [Question]}} in file order from the derived `mmlu/mmlu.jsonl`."""
    out: dict[str, dict[str, list[Question]]] = {}
    path = root / "mmlu" / "mmlu.jsonl"
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            try:
                r = json.loads(line)
                q = Question(r["subject"], r["question"], tuple(r["choices"]), LETTERS[int(r["answer"])])
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                raise ValueError(f"{path}:{lineno}: not an MMLU record ({exc})") from exc
            if len(q.options) != 4:
                raise ValueError(f"{path}:{lineno}: {len(q.options)} choices, expected 4")
            out.setdefault(r["split"], {}).setdefault(q.subject, []).append(q)
    return out


def read_csv_questions(path: Path, subject: str) -> list[Question]:
    """C-Eval (`id,question,A,B,C,D,answer[,explanation]`) or CMMLU (`,Question,A,B,C,D,Answer`) rows."""
    rows = []
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        for lineno, r in enumerate(reader, 2):
            r = {k.lower() if k else k: v for k, v in r.items()}
            try:
                rows.append(Question(subject, r["question"], (r["a"], r["b"], r["c"], r["d"]), r["answer"].strip()))
            except (KeyError, AttributeError) as exc:
                raise ValueError(f"{path}:{lineno}: missing column {exc}") from exc
            if rows[-1].answer not in LETTERS:
                raise ValueError(f"{path}:{lineno}: answer {rows[-1].answer!r} is not one of A-D")
    return rows


# ------------------------------------------------------------------------------------------------ tasks


class MultipleChoiceTask:
    """Shared by the three: samples (5 dev shots, left cut), the judge and the averages."""

    kind = "choice"
    name = ""
    chinese = False
    shots = 5

    def __init__(self, *, limit: int = 0, max_length: int = 2048) -> None:
        self.limit = limit
        self.max_length = max_length

    @property
    def choices(self) -> tuple[str, ...]:
        return LETTERS if self.chinese else tuple(" " + L for L in LETTERS)

    # subclasses: {subject: (dev questions, scored questions)}
    def read(self, root: Path) -> dict[str, tuple[list[Question], list[Question]]]:
        raise NotImplementedError

    def required_files(self, root: Path) -> list[Path]:
        raise NotImplementedError

    def category_of(self, subject: str) -> list[str]:
        found = categories()[self.name].get(subject, "Other")
        return found if isinstance(found, list) else [found]

    def samples(self, root: Path, tokenizer: Any) -> list[Sample]:
        groups: dict[str, list[Sample]] = {}
        prefixes: dict[str, str] = {}
        for subject, (dev, scored) in self.read(Path(root)).items():
            if len(dev) < self.shots:
                raise ValueError(f"{self.name}/{subject}: {len(dev)} dev questions, {self.shots} shots needed")
            shots = dev[: self.shots]
            prefixes[subject] = render_prefix(subject, shots, chinese=self.chinese)
            groups[subject] = [
                Sample(f"{subject}/{i}", render_prompt(q, shots, chinese=self.chinese), [], q.answer, group=subject)
                for i, q in enumerate(scored)
            ]
        chosen = interleave(groups, self.limit)
        prefix_ids = {s: tokenizer.encode(prefixes[s]) for s in {c.group for c in chosen}}
        for sample in chosen:  # encoded after the limit: a quick look does not tokenize 14k prompts
            sample.prompt_ids = tokenizer.encode(sample.prompt)  # cut to the model's length when scored
            prefix = prefix_ids[sample.group]
            if sample.prompt_ids[: len(prefix)] == prefix:  # the same tokens at the seam: shareable
                sample.extra = {"prefix_group": sample.group, "prefix_len": len(prefix)}
        return chosen

    def judge(self, samples: Sequence[Sample], outputs: Sequence[str]) -> list[Judged]:
        return [Judged(out.strip(), out.strip() == s.gold) for s, out in zip(samples, outputs, strict=True)]

    def aggregate(self, records: Sequence[dict[str, Any]]) -> dict[str, float]:
        per_subject = accuracy_by(records)
        micro = mean([float(bool(r["correct"])) for r in records])
        macro = mean(list(per_subject.values()))
        out = {"accuracy": macro if self.chinese else micro, "micro": micro, "macro": macro}
        by_cat: dict[str, list[float]] = {}
        by_cat_micro: dict[str, list[float]] = {}
        for subject, acc in per_subject.items():
            for cat in self.category_of(subject):
                by_cat.setdefault(cat, []).append(acc)
        for r in records:
            for cat in self.category_of(str(r["group"])):
                by_cat_micro.setdefault(cat, []).append(float(bool(r["correct"])))
        cats = by_cat if self.chinese else by_cat_micro
        out.update({f"category/{c}": mean(v) for c, v in sorted(cats.items())})
        out.update({f"subject/{s}": a for s, a in per_subject.items()})
        return out


class Mmlu(MultipleChoiceTask):
    name = "mmlu"

    def required_files(self, root: Path) -> list[Path]:
        return [root / "mmlu" / "mmlu.jsonl"]

    def read(self, root: Path) -> dict[str, tuple[list[Question], list[Question]]]:
        splits = read_mmlu(root)
        return {s: (splits.get("dev", {}).get(s, []), qs) for s, qs in splits.get("test", {}).items()}


class Ceval(MultipleChoiceTask):
    name = "ceval"
    chinese = True

    def required_files(self, root: Path) -> list[Path]:
        return [root / "ceval" / "dev", root / "ceval" / "val"]

    def read(self, root: Path) -> dict[str, tuple[list[Question], list[Question]]]:
        out = {}
        for path in sorted((root / "ceval" / "val").glob("*_val.csv")):
            subject = path.name[: -len("_val.csv")]
            dev = read_csv_questions(root / "ceval" / "dev" / f"{subject}_dev.csv", subject)
            out[subject] = (dev, read_csv_questions(path, subject))
        return out

    def aggregate(self, records: Sequence[dict[str, Any]]) -> dict[str, float]:
        out = super().aggregate(records)
        hard = [out[f"subject/{s}"] for s in categories()["ceval_hard"] if f"subject/{s}" in out]
        if hard:
            out["hard"] = mean(hard)
        return out


class Cmmlu(MultipleChoiceTask):
    name = "cmmlu"
    chinese = True

    def required_files(self, root: Path) -> list[Path]:
        return [root / "cmmlu" / "dev", root / "cmmlu" / "test"]

    def read(self, root: Path) -> dict[str, tuple[list[Question], list[Question]]]:
        out = {}
        for path in sorted((root / "cmmlu" / "test").glob("*.csv")):
            dev = read_csv_questions(root / "cmmlu" / "dev" / path.name, path.stem)
            out[path.stem] = (dev, read_csv_questions(path, path.stem))
        return out
