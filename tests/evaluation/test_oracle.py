"""Every benchmark scores 100 % on oracle outputs (the gold answer written the way a model would write it,
through the task's own cut and extraction) and chance level on a constant answer."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from qwen_hpc.evaluation.runner import run_task
from qwen_hpc.evaluation.suite import Sample
from qwen_hpc.evaluation.tasks import TaskSettings, build_task
from tests.evaluation.test_prompts import ByteTokenizer

LIMIT = 300
ORACLES: dict[str, Callable[[Sample], str]] = {
    "mmlu": lambda s: s.gold,
    "ceval": lambda s: s.gold,
    "cmmlu": lambda s: s.gold,
    "gsm8k": lambda s: f"12 + 3 = 15 apples.\nThe answer is {s.gold}\n\nQuestion: 7 more",
    "math": lambda s: f"So $x = \\boxed{{{s.gold}}}$.\nFinal Answer: The final answer is ${s.gold}$. I hope it is "
                      "correct.\n\nProblem:\nNext",
    "bbh": lambda s: f"Step one. Step two. So the answer is {s.gold}.\n\nQ: next",
}
CONSTANT = {"mmlu": "A", "ceval": "A", "cmmlu": "A", "gsm8k": "The answer is 0", "bbh": "So the answer is (A).",
            "math": "Final Answer: The final answer is $0$. I hope it is correct."}


def _samples(name: str, root) -> tuple[object, list[Sample]]:
    task = build_task(name, TaskSettings(limit=LIMIT))
    return task, task.samples(root, ByteTokenizer())


@pytest.mark.parametrize("name", sorted(ORACLES))
def test_oracle_scores_100_percent(name: str, bench_root, tmp_path) -> None:
    task, samples = _samples(name, bench_root)
    assert len(samples) == LIMIT
    run = run_task(task, samples, lambda batch: [ORACLES[name](s) for s in batch], tmp_path, batch_size=64)
    wrong = [r for r in run.records if not r["correct"]]
    assert not wrong, wrong[:3]
    assert run.metrics["accuracy"] == 1.0
    assert (tmp_path / f"{name}.json").is_file()


@pytest.mark.parametrize("name", sorted(CONSTANT))
def test_constant_answer_scores_chance(name: str, bench_root, tmp_path) -> None:
    task, samples = _samples(name, bench_root)
    run = run_task(task, samples, lambda batch: [CONSTANT[name]] * len(batch), tmp_path, batch_size=64)
    if name in ("mmlu", "ceval", "cmmlu"):
        share_a = sum(s.gold == "A" for s in samples) / len(samples)
        assert run.metrics["micro"] == pytest.approx(share_a)  # exactly the questions whose answer is A
        assert 0.15 <= run.metrics["accuracy"] <= 0.35  # four options: about a quarter
    elif name == "bbh":
        expected = sum(s.gold == "(A)" for s in samples) / len(samples)
        assert run.metrics["micro"] == pytest.approx(expected) and run.metrics["accuracy"] < 0.2
    else:
        expected = sum(str(s.gold).strip("$ ") == "0" for s in samples) / len(samples)
        assert run.metrics["accuracy"] == pytest.approx(expected) and run.metrics["accuracy"] < 0.05
