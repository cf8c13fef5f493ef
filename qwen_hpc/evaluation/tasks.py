"""The benchmark registry: name → task object, for base models (Table 2) and chat models (Table 5)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from qwen_hpc.sandbox.config import SandboxConfig

BENCHMARKS = ("mmlu", "ceval", "cmmlu", "gsm8k", "math", "humaneval", "mbpp", "bbh")
CHAT_BENCHMARKS = ("mmlu", "ceval", "gsm8k", "humaneval", "bbh", "math")  # Table 5's columns + Table 12's MATH


@dataclass
class TaskSettings:
    limit: int = 0
    max_length: int = 2048  # the model's training length: multiple-choice prompts are cut to it
    chat: bool = False
    math_split: str = "math500"
    samples_per_task: int = 1  # code tasks: n samples per problem for pass@k
    pass_k: tuple[int, ...] = (1,)
    sandbox: SandboxConfig | None = None  # code tasks: limits, workers, isolation (None: the defaults)


def build_task(name: str, settings: TaskSettings) -> Any:
    """The task object of benchmark `name` (see `qwen_hpc.evaluation.suite.Task`)."""
    s = settings
    if s.chat:
        from qwen_hpc.evaluation import chat_tasks

        if name not in CHAT_BENCHMARKS:
            raise ValueError(
                f"no chat-mode prompt for {name!r}: Table 5 (spec §8.3) has {', '.join(CHAT_BENCHMARKS)}"
            )
        return chat_tasks.build(name, limit=s.limit, math_split=s.math_split)
    if name == "mmlu":
        from qwen_hpc.evaluation.multiple_choice import Mmlu

        return Mmlu(limit=s.limit, max_length=s.max_length)
    if name == "ceval":
        from qwen_hpc.evaluation.multiple_choice import Ceval

        return Ceval(limit=s.limit, max_length=s.max_length)
    if name == "cmmlu":
        from qwen_hpc.evaluation.multiple_choice import Cmmlu

        return Cmmlu(limit=s.limit, max_length=s.max_length)
    if name == "gsm8k":
        from qwen_hpc.evaluation.gsm8k import Gsm8k

        return Gsm8k(limit=s.limit)
    if name == "math":
        from qwen_hpc.evaluation.competition_math import CompetitionMath

        return CompetitionMath(limit=s.limit, split=s.math_split)
    if name == "bbh":
        from qwen_hpc.evaluation.bbh import Bbh

        return Bbh(limit=s.limit)
    if name in ("humaneval", "mbpp"):
        from qwen_hpc.evaluation import code_tasks

        return code_tasks.build(name, limit=s.limit, samples=s.samples_per_task, pass_k=s.pass_k,
                                sandbox=s.sandbox)
    raise ValueError(f"unknown benchmark {name!r}; choose from {', '.join(BENCHMARKS)}")
