"""The code-interpreter benchmark (spec §9.4) on the project's own set (`evalsets/code_cases.yaml`).

Categories as the paper's: math (GSM8K test and MATH-500 numeric items, read from the data root), data
visualization easy/hard (authored CSV tasks, judged by the figure's data series rather than by a vision
model), and CSV analysis questions with a numeric answer. Metrics:
- executable rate: the share of code cells the model wrote that ran without an error;
- correctness: math/analysis — the gold number appears in both an execution output and the final reply;
  visualization — a figure was produced and one of its data series equals the expected one.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from qwen_hpc.agents.code_interpreter import CellResult, CodeInterpreter, KernelLimits, code_interpreter_tool
from qwen_hpc.agents.loop import Completer, run_react
from qwen_hpc.agents.metrics import contains_number
from qwen_hpc.agents.tools import ToolRegistry

DEFAULT_CODE_CASES = resources.files("qwen_hpc.agents.evalsets") / "code_cases.yaml"
_PLAIN_NUMBER = re.compile(r"^-?\d+(?:\.\d+)?$")


@dataclass(frozen=True)
class CodeCase:
    id: str
    category: str  # "math" | "vis_easy" | "vis_hard" | "analysis"
    query: str
    files: dict[str, str] = field(default_factory=dict)
    answer: float | None = None
    expect: dict[str, Any] | None = None


class MissingEvalData(FileNotFoundError):
    pass


def _math_cases(spec: dict, data_root: Path) -> list[CodeCase]:
    path = data_root / spec["file"]
    if not path.is_file():
        raise MissingEvalData(f"{path} (code-interpreter math cases from {spec['source']})")
    cases = []
    with path.open(encoding="utf-8") as fh:
        for line_no, line in enumerate(fh):
            rec = json.loads(line)
            if spec["source"] == "gsm8k":
                query, gold = rec["question"], rec["answer"].split("####")[-1].strip().replace(",", "")
            else:
                query, gold = rec["problem"], rec["answer"].strip()
            if not _PLAIN_NUMBER.match(gold):
                if spec.get("numeric_only"):
                    continue
                raise ValueError(f"{path}:{line_no + 1}: gold answer {gold!r} is not a number")
            cases.append(CodeCase(f"{spec['source']}/{line_no}", "math", query, answer=float(gold)))
            if len(cases) >= spec["first"]:
                break
    return cases


def load_code_cases(data_root: str | Path | None, path: str | Path | None = None, *,
                    skip_missing: bool = True) -> tuple[list[CodeCase], list[str]]:
    """(cases, skipped sources). Math cases need the data root; CSV cases ship with the project."""
    raw = yaml.safe_load(Path(str(path or DEFAULT_CODE_CASES)).read_text(encoding="utf-8"))
    cases: list[CodeCase] = []
    skipped: list[str] = []
    for spec in raw["math"]:
        try:
            if data_root is None:
                raise MissingEvalData(f"{spec['file']} (no data root)")
            cases += _math_cases(spec, Path(data_root))
        except MissingEvalData as exc:
            if not skip_missing:
                raise
            skipped.append(str(exc))
    files = raw["files"]
    for case in raw["visualization"]:
        cases.append(CodeCase(case["id"], f"vis_{case['level']}", case["query"],
                              {n: files[n] for n in case["files"]}, expect=case["expect"]))
    for case in raw["analysis"]:
        cases.append(CodeCase(case["id"], "analysis", case["query"], {n: files[n] for n in case["files"]},
                              answer=float(case["answer"])))
    return cases, skipped


def _close(a: Sequence[float], b: Sequence[float]) -> bool:
    return len(a) == len(b) and all(math.isclose(x, y, rel_tol=1e-4, abs_tol=1e-6) for x, y in zip(a, b, strict=True))


def series_match(figures: Sequence[dict], expect: dict[str, Any]) -> bool:
    """Whether a figure holds the expected series (bar heights in any order when `unordered`)."""
    kind, values = expect["kind"], expect["values"]
    for fig in figures:
        for s in fig["series"]:
            if s["kind"] != kind:
                continue
            if kind == "scatter":
                got_points, want_points = sorted(map(tuple, s["points"])), sorted(map(tuple, values))
                if len(got_points) == len(want_points) and all(
                        _close(g, w) for g, w in zip(got_points, want_points, strict=True)):
                    return True
                continue
            got = s["y"]
            if expect.get("unordered"):
                got, values = sorted(got), sorted(values)
            if _close(got, values):
                return True
    return False


@dataclass
class CodeCaseResult:
    id: str
    category: str
    cells: int
    cells_ok: int
    correct: bool
    answer: str | None
    finish: str
    figures: int
    text: str


def run_code_case(complete: Completer, case: CodeCase, *, limits: KernelLimits | None = None,
                  max_steps: int = 6) -> CodeCaseResult:
    history: list[CellResult] = []
    with CodeInterpreter(limits) as interpreter:
        for name, content in case.files.items():
            interpreter.upload(name, content)
        original = interpreter.run

        def recording_run(code: str) -> CellResult:
            result = original(code)
            history.append(result)
            return result

        interpreter.run = recording_run  # type: ignore[method-assign]
        run = run_react(complete, ToolRegistry([code_interpreter_tool(interpreter)]), case.query,
                        max_steps=max_steps)
        figures = [f for cell in history for f in cell.figures]
        outputs = "\n".join(c.stdout + "\n" + c.result for c in history)
        if case.expect is not None:
            correct = series_match(figures, case.expect)
        else:
            assert case.answer is not None
            correct = run.answer is not None and contains_number(outputs, case.answer) and \
                contains_number(run.answer, case.answer)
    return CodeCaseResult(case.id, case.category, len(history), sum(c.ok for c in history), correct,
                          run.answer, run.finish, len(figures), run.text)


def code_scores(results: Sequence[CodeCaseResult]) -> dict[str, float]:
    """Executable % over all cells and per category (Table 7); correctness % per category (Table 8)."""
    scores: dict[str, float] = {}
    cells = sum(r.cells for r in results)
    scores["executable_all"] = 100.0 * sum(r.cells_ok for r in results) / cells if cells else 0.0
    for cat in ("math", "vis_easy", "vis_hard", "analysis"):
        part = [r for r in results if r.category == cat]
        if not part:
            continue
        cat_cells = sum(r.cells for r in part)
        scores[f"executable_{cat}"] = 100.0 * sum(r.cells_ok for r in part) / cat_cells if cat_cells else 0.0
        scores[f"correct_{cat}"] = 100.0 * sum(r.correct for r in part) / len(part)
    vis = [r for r in results if r.category.startswith("vis_")]
    if vis:
        scores["correct_vis_all"] = 100.0 * sum(r.correct for r in vis) / len(vis)
        vis_cells = sum(r.cells for r in vis)
        scores["executable_vis_all"] = 100.0 * sum(r.cells_ok for r in vis) / vis_cells if vis_cells else 0.0
    return scores
