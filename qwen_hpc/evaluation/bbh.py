"""BIG-Bench Hard, 3-shot chain of thought (spec §6.1: Qwen published no script; OpenCompass's
`bbh_gen_5bf00b` prompt is the default, UNCONFIRMED for Qwen).

Prompt = `"Follow the given examples and answer the question.\\n"` + the task's published cot prompt
(`cot-prompts/<task>.txt` without its canary line and `-----` separator) + `"\\n\\nQ: {input}\\nA: Let's think
step by step."`. The answer is what follows the first "answer is": the first `(X)` for a multiple-choice
task (targets like `(B)`), else the rest of that line without a final period; exact match with the target.
Accuracy is the mean over the 27 tasks of their accuracies (and the pooled one as `micro`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qwen_hpc.evaluation.suite import Judged, Sample, accuracy_by, interleave, mean

INSTRUCTION = "Follow the given examples and answer the question.\n"
STOP_STRINGS = ("\n\nQ:",)
_OPTION = re.compile(r"\(([A-R])\)")
_LEADING_LETTER = re.compile(r"\s*([A-R])\b")


def cot_prompt(text: str) -> str:
    """The prompt file without the canary line and the `-----` line after it."""
    lines = text.split("\n")
    if lines and "canary" in lines[0].lower():
        lines = lines[1:]
    if lines and lines[0].strip() == "-----":
        lines = lines[1:]
    return "\n".join(lines).strip("\n")


def render_prompt(cot: str, question: str) -> str:
    return f"{INSTRUCTION}{cot}\n\nQ: {question}\nA: Let's think step by step."


def extract_answer(completion: str, *, multiple_choice: bool) -> str:
    text = completion.split("\n\nQ:")[0]
    found = re.search(r"answer is (.*)", text, re.DOTALL)
    answer = found.group(1) if found else text
    if multiple_choice:
        option = _OPTION.search(answer) or _LEADING_LETTER.match(answer)
        return f"({option.group(1)})" if option else answer.strip()
    answer = answer.strip().split("\n")[0].strip()
    return answer[:-1].strip() if answer.endswith(".") else answer


class Bbh:
    name = "bbh"
    kind = "generate"
    stop_strings = STOP_STRINGS

    def __init__(self, *, limit: int = 0) -> None:
        self.limit = limit

    def required_files(self, root: Path) -> list[Path]:
        return [root / "bbh" / "data", root / "bbh" / "cot-prompts"]

    def task_names(self, root: Path) -> list[str]:
        return sorted(p.stem for p in (Path(root) / "bbh" / "data").glob("*.json"))

    def samples(self, root: Path, tokenizer: Any) -> list[Sample]:
        root = Path(root)
        groups: dict[str, list[Sample]] = {}
        for task in self.task_names(root):
            prompt_file = root / "bbh" / "cot-prompts" / f"{task}.txt"
            if not prompt_file.is_file():
                raise FileNotFoundError(f"BBH task {task}: no chain-of-thought prompt {prompt_file}")
            cot = cot_prompt(prompt_file.read_text(encoding="utf-8"))
            examples = json.loads((root / "bbh" / "data" / f"{task}.json").read_text(encoding="utf-8"))["examples"]
            for i, ex in enumerate(examples):
                prompt = render_prompt(cot, ex["input"])
                groups.setdefault(task, []).append(Sample(f"{task}/{i}", prompt, [], ex["target"], group=task))
        chosen = interleave(groups, self.limit)
        for sample in chosen:  # encoded after the limit
            sample.prompt_ids = tokenizer.encode(sample.prompt)
        return chosen

    def judge(self, samples: Sequence[Sample], outputs: Sequence[str]) -> list[Judged]:
        out = []
        for s, text in zip(samples, outputs, strict=True):
            mc = bool(_OPTION.fullmatch(str(s.gold)))
            answer = extract_answer(text, multiple_choice=mc)
            out.append(Judged(answer, answer == s.gold))
        return out

    def aggregate(self, records: Sequence[dict[str, Any]]) -> dict[str, float]:
        per_task = accuracy_by(records)
        return {
            "accuracy": mean(list(per_task.values())),
            "micro": mean([float(bool(r["correct"])) for r in records]),
            **{f"task/{k}": v for k, v in per_task.items()},
        }
