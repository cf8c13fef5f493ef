"""GSM8K 8-shot with Qwen's own prompt file and post-processing (spec §6.1, `evaluate_gsm8k.py`).

Prompt = `qwen_gsm8k_prompt.txt` + `"\\nQuestion: " + question + "\\nLet's think step by step\\n"`, encoded as
plain text. The completion is cut before `<|endoftext|>`, then `"\\n\\n\\n"`, `"\\n\\n"`, `"Question:"`; the
prediction is the last run of digits in it (no sign, no decimal point, no comma — as Qwen's `\\d+`), the gold
the number after `####` with commas removed; correct iff equal as numbers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qwen_hpc.evaluation.suite import Judged, Sample, interleave, mean

PROMPT_FILE = "qwen_gsm8k_prompt.txt"
CUTS = ("<|endoftext|>", "\n\n\n", "\n\n", "Question:")
STOP_STRINGS = ("\n\n", "Question:")
_GOLD = re.compile(r"#### (\-?[0-9\.\,]+)")
_DIGITS = re.compile(r"\d+")


def render_prompt(few_shot: str, question: str) -> str:
    return few_shot + "\nQuestion: " + question + "\nLet's think step by step\n"


def cut_completion(text: str) -> str:
    for cut in CUTS:
        text = text.split(cut)[0]
    return text


def extract_prediction(completion: str) -> str | None:
    found = _DIGITS.findall(completion)
    return found[-1] if found else None


def extract_gold(answer: str) -> str:
    match = _GOLD.search(answer)
    if match is None:
        raise ValueError(f"no '#### <number>' in the reference answer {answer[-80:]!r}")
    return match.group(1).strip().replace(",", "")


def same_number(pred: str | None, gold: str) -> bool:
    if pred is None:
        return False
    try:
        return float(pred) == float(gold)
    except ValueError:
        return False


class Gsm8k:
    name = "gsm8k"
    kind = "generate"
    stop_strings = STOP_STRINGS

    def __init__(self, *, limit: int = 0, split: str = "test") -> None:
        self.limit = limit
        self.split = split

    def required_files(self, root: Path) -> list[Path]:
        return [root / "gsm8k" / PROMPT_FILE, root / "gsm8k" / f"{self.split}.jsonl"]

    def samples(self, root: Path, tokenizer: Any) -> list[Sample]:
        root = Path(root)
        few_shot = (root / "gsm8k" / PROMPT_FILE).read_text(encoding="utf-8")
        out = []
        path = root / "gsm8k" / f"{self.split}.jsonl"
        with open(path, encoding="utf-8") as fh:
            for i, line in enumerate(fh):
                r = json.loads(line)
                prompt = render_prompt(few_shot, r["question"])
                out.append(Sample(f"{i}", prompt, tokenizer.encode(prompt), extract_gold(r["answer"])))
        return interleave({"": out}, self.limit)

    def judge(self, samples: Sequence[Sample], outputs: Sequence[str]) -> list[Judged]:
        judged = []
        for s, out in zip(samples, outputs, strict=True):
            pred = extract_prediction(cut_completion(out))
            judged.append(Judged(pred, same_number(pred, s.gold)))
        return judged

    def aggregate(self, records: Sequence[dict[str, Any]]) -> dict[str, float]:
        return {"accuracy": mean([float(bool(r["correct"])) for r in records])}
