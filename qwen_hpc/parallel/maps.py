"""The map interface between domain code and executors (DataTrove's split of steps and executors).

Domain code that has independent work items takes a `map_fn(fn, items) -> results in item order` and never
starts pools, subprocesses or job arrays itself, nor asks which launcher it runs under. The executors live
in `qwen_hpc.launch.array` (process pool, Slurm job array); `sequential_map` is the one that runs here.
A map whose items run in other jobs carries `runs_elsewhere = True`, so that a caller can check a shared
input once before it hands the items out (instead of every task failing on it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

MapFn = Callable[[Callable[[Any], Any], Sequence[Any]], list[Any]]


def sequential_map(fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
    """`fn` over `items` in this process, one after the other."""
    return [fn(item) for item in items]
