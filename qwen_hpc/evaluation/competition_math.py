"""MATH 4-shot, Minerva-style (spec §6.1: Qwen published no script, the Minerva prompt is the default).

Each item is `"Problem:\\n{problem}\\nSolution:"`; the four exemplars (`data/minerva_math_shots.json`) follow
it with their worked solution ending in `"Final Answer: The final answer is {ans}. I hope it is correct."`.
The answer is the one after "The final answer is", else the last `\\boxed{}`; equivalence with the gold is
`math-verify`'s (sympy-backed; no hand-written LaTeX normalisation). Split: MATH-500 (Lightman et al.,
what Table 12 uses) or the full 5,000-problem test set.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

from qwen_hpc.evaluation.suite import Judged, Sample, accuracy_by, interleave, mean

SHOTS = Path(__file__).with_name("data") / "minerva_math_shots.json"
FILES = {"math500": "math500_test.jsonl", "full": "math_test_5000.jsonl"}
STOP_STRINGS = ("Problem:",)
_FINAL = re.compile(r"The final answer is (.*?)\. I hope it is correct", re.DOTALL)


@cache
def shots() -> list[dict[str, str]]:
    return json.loads(SHOTS.read_text(encoding="utf-8"))["shots"]


def render_item(problem: str) -> str:
    return f"Problem:\n{problem}\nSolution:"


def render_prompt(problem: str) -> str:
    return "".join(f"{render_item(s['problem'])}\n{s['solution']}\n\n" for s in shots()) + render_item(problem)


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{…}` (or `\\fbox{…}`), braces balanced."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    brace = text.find("{", start)
    if brace < 0:
        return None
    depth = 0
    for i in range(brace, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[brace + 1:i]
    return None


def extract_answer(completion: str) -> str | None:
    completion = completion.split("Problem:")[0]
    found = _FINAL.findall(completion)
    if found:
        return found[-1].strip()
    return last_boxed(completion)


def equivalent(answer: str | None, gold: str) -> bool:
    if answer is None:
        return False
    if answer.strip().strip("$").strip() == gold.strip().strip("$").strip():
        return True  # the same text is the same answer, whether or not sympy can parse it
    from math_verify import parse, verify

    def as_math(text: str) -> Any:
        text = text.strip()
        return parse(text if text.startswith("$") else f"${text}$")

    try:
        return bool(verify(as_math(gold), as_math(answer)))
    except Exception:  # noqa: BLE001 - an unparsable answer is a wrong answer, never a crash
        return False


class CompetitionMath:
    name = "math"
    kind = "generate"
    stop_strings = STOP_STRINGS

    def __init__(self, *, limit: int = 0, split: str = "math500") -> None:
        if split not in FILES:
            raise ValueError(f"MATH split {split!r}: choose from {', '.join(FILES)}")
        self.limit, self.split = limit, split

    def required_files(self, root: Path) -> list[Path]:
        return [root / "math" / FILES[self.split]]

    def samples(self, root: Path, tokenizer: Any) -> list[Sample]:
        groups: dict[str, list[Sample]] = {}
        with open(Path(root) / "math" / FILES[self.split], encoding="utf-8") as fh:
            for i, line in enumerate(fh):
                r = json.loads(line)
                problem = r.get("problem", r.get("context"))
                subject = str(r.get("subject", r.get("category", "")))
                prompt = render_prompt(problem)
                groups.setdefault(subject, []).append(
                    Sample(str(r.get("unique_id", i)), prompt, tokenizer.encode(prompt), r["answer"], group=subject)
                )
        return interleave(groups, self.limit)

    def judge(self, samples: Sequence[Sample], outputs: Sequence[str]) -> list[Judged]:
        out = []
        for s, text in zip(samples, outputs, strict=True):
            answer = extract_answer(text)
            out.append(Judged(answer, equivalent(answer, s.gold)))
        return out

    def aggregate(self, records: Sequence[dict[str, Any]]) -> dict[str, float]:
        return {
            "accuracy": mean([float(bool(r["correct"])) for r in records]),
            **{f"subject/{k}": v for k, v in accuracy_by(records).items()},
        }
