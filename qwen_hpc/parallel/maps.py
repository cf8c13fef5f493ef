"""The map interface between domain code and executors (DataTrove's split of steps and executors).

Domain code that has independent work items takes a `map_fn(fn, items) -> results in item order` and never
starts pools, subprocesses or job arrays itself, nor asks which launcher it runs under. The executors live
in `qwen_hpc.launch.array` (process pool, Slurm job array); `sequential_map` is the one that runs here.
A map whose items run in other jobs carries `runs_elsewhere = True`, so that a caller can check a shared
input once before it hands the items out (instead of every task failing on it).

`SubmitFn` is the same split for one call that must run in a process of its own, beside the caller (the
GPTDataset index caches, built in a world of one while a distributed job waits): `submit(fn, *args)` starts
it and returns a `Future` at once, which the caller polls (`done()`) and reads (`result()` raises the
call's error). The executor that spawns the process is `qwen_hpc.launch.array.spawn_apart`; `submit_here`
runs the call in this process.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

MapFn = Callable[[Callable[[Any], Any], Sequence[Any]], list[Any]]
SubmitFn = Callable[..., "Future[Any]"]


def sequential_map(fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
    """`fn` over `items` in this process, one after the other."""
    return [fn(item) for item in items]


def submit_here(fn: Callable[..., Any], *args: Any) -> Future[Any]:
    """`fn(*args)` in this process, now; the returned future is already done (with its error, if any)."""
    future: Future[Any] = Future()
    try:
        future.set_result(fn(*args))
    except Exception as exc:  # noqa: BLE001 - handed to the caller through the future, as an executor does
        future.set_exception(exc)
    return future
