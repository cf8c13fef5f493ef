"""The benchmark suite's shared vocabulary: a `Sample` (one rendered prompt with its gold answer), the
`Task` protocol every benchmark family implements, and the files each benchmark needs under the data root.

Why a protocol and not a class tree: the families differ in what "an answer" is (a letter scored from four
log-probs, a number cut from generated text, a program run in the sandbox), but the runner only needs four
things from each — its samples, how to query the model, how to judge a batch of outputs, how to average.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

# where the README of the data root says to get every benchmark (`../shared/datasets/README.md`, SOURCES.md)
DATA_README = "README.md and SOURCES.md of the data root (../shared/datasets in a checkout)"


@dataclass
class Sample:
    """One question, rendered. `prompt` is the exact text the model reads (records keep it); `prompt_ids`
    what it is fed (ChatML prompts carry special ids the text alone would not give back)."""

    id: str
    prompt: str
    prompt_ids: list[int]
    gold: Any
    group: str = ""  # subject / task / category the averages are taken over
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Judged:
    extracted: Any
    correct: bool
    detail: str = ""  # why not (a sandbox verdict, …)
    fields: dict[str, Any] = field(default_factory=dict)  # more per-record numbers (pass counts, log-probs)


class Task(Protocol):
    """A benchmark. `kind` is "choice" (one forward, the log-probs of `choices` at the last position) or
    "generate" (the KV-cache generator with `max_new_tokens` and `stop_strings`)."""

    name: str
    kind: str

    def required_files(self, root: Path) -> list[Path]: ...

    def samples(self, root: Path, tokenizer: Any) -> list[Sample]: ...

    def judge(self, samples: Sequence[Sample], outputs: Sequence[str]) -> list[Judged]: ...

    def aggregate(self, records: Sequence[dict[str, Any]]) -> dict[str, float]: ...


class MissingBenchmarkData(FileNotFoundError):
    """A selected benchmark's files are not under the data root."""


def missing_files(task: Task, root: Path) -> list[Path]:
    return [p for p in task.required_files(Path(root)) if not p.exists()]


def check_data(tasks: Sequence[Task], root: Path) -> None:
    """Raise naming every missing file of every selected task and where to get it (before any submission)."""
    lines = []
    for task in tasks:
        missing = missing_files(task, root)
        if missing:
            lines.append(f"  {task.name}: " + ", ".join(str(p) for p in missing))
    if lines:
        raise MissingBenchmarkData(
            f"benchmark data missing under the data root {root} (run.data_root or QWEN_HPC_DATA_ROOT):\n"
            + "\n".join(lines)
            + f"\nsee {DATA_README} for where to get each set, or drop the task from evaluate.tasks"
        )


def interleave(groups: dict[str, list[Sample]], limit: int) -> list[Sample]:
    """All samples, or — `limit` > 0 — the first `limit` taken round-robin over the groups in order, so a
    quick look at MMLU sees every subject instead of 500 questions of abstract algebra."""
    if limit <= 0:
        return [s for g in groups.values() for s in g]
    out: list[Sample] = []
    depth = 0
    while len(out) < limit:
        row = [g[depth] for g in groups.values() if depth < len(g)]
        if not row:
            break
        out += row[: limit - len(out)]
        depth += 1
    return out


def mean(values: Sequence[float]) -> float:
    return float(sum(values) / len(values)) if values else 0.0


def accuracy_by(records: Sequence[dict[str, Any]], key: str = "group") -> dict[str, float]:
    """Accuracy of the records per value of `key`."""
    buckets: dict[str, list[float]] = {}
    for r in records:
        buckets.setdefault(str(r.get(key, "")), []).append(float(bool(r["correct"])))
    return {k: mean(v) for k, v in sorted(buckets.items())}
