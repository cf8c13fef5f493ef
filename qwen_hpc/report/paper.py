"""Our benchmark scores next to the paper's (Table 2 for base models, Table 5 for chat models) for the
same model size. The paper's numbers live in `qwen_hpc/evaluation/data/paper_scores.json`, transcribed
from the spec (§6.2, §8.3, §12.2) with the source named in the file."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

PAPER_SCORES = Path(__file__).resolve().parents[1] / "evaluation" / "data" / "paper_scores.json"
COLUMNS = ("mmlu", "ceval", "cmmlu", "gsm8k", "math", "humaneval", "mbpp", "bbh")


@cache
def paper_scores() -> dict[str, Any]:
    return json.loads(PAPER_SCORES.read_text(encoding="utf-8"))


def paper_size(name: str, num_layers: int, hidden_size: int) -> str | None:
    """The paper's size key (qwen_1_8b …) of a model: by config name, else by its shape; None for a toy."""
    sizes = paper_scores()["sizes"]
    if name in sizes:
        return name
    for key, shape in sizes.items():
        if shape["num_layers"] == num_layers and shape["hidden_size"] == hidden_size:
            return key
    return None


def comparison_rows(scores: dict[str, float], size: str | None, *, chat: bool) -> list[list[Any]]:
    """[[benchmark, ours (%), paper (%) or None, the paper's table]] for every benchmark we scored."""
    data = paper_scores()
    table = "chat_zero_shot" if chat else "base"
    paper = data[table].get(size or "", {})
    label = "Table 5 (0-shot)" if chat else "Table 2"
    rows = []
    for name in COLUMNS:
        if name in scores:
            rows.append([name, round(100 * scores[name], 2), paper.get(name), label])
    return rows


def comparison_markdown(rows: list[list[Any]], size: str | None) -> str:
    who = paper_scores()["sizes"][size]["label"] if size else "no paper model of this size"
    lines = [f"| benchmark | ours (%) | paper, {who} (%) | source |", "|---|---|---|---|"]
    for name, ours, paper, label in rows:
        lines.append(f"| {name} | {ours:.2f} | {'–' if paper is None else f'{paper:.1f}'} | {label} |")
    return "\n".join(lines) + "\n"
