"""Run a stage's independent work items (the data stage's per-shard step) where the stage runs:
a Slurm job array (submitit `map_array`) under `launcher=slurm`, a local process pool under
`launcher=local`, this process under `launcher=debug`. The domain code only sees a `map_fn(fn, items)`.
`spawn_apart` runs one call in a fresh process of its own (a `parallel.SubmitFn`): the domain code only
sees the future.

The array uses the stage's own Slurm settings (partition, account, qos, time, setup ...) with one task
and `cpus_per_task` CPUs per array element; `array_parallelism` caps how many run at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from qwen_hpc.config.launcher import LauncherConfig
from qwen_hpc.parallel.maps import MapFn, sequential_map

log = logging.getLogger(__name__)

def process_pool_map(workers: int, *, caller_threads: int = 0) -> MapFn:
    """`fn` over the items by up to `workers` at once, results in item order; hand the items over most
    expensive first (each free worker takes the first one left: the longest-first rule, the least idle
    time at the end).

    The workers are spawned processes (spawn: no inherited threads, locks or W&B state) and, with
    `caller_threads`, that many threads of the calling process, which spawns as many fewer processes.
    A spawned process spends most of a second starting Python, importing and loading what the task needs
    (the `tokens` stage's vocabulary) before its first item, while the caller's threads start at once and
    load such state once for all of them; for a function that leaves the GIL for most of its time (tiktoken
    encodes without it) two threads do the work of two processes. `fn` must then be thread-safe.
    """

    def run(fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        if workers <= 1 or len(items) <= 1:
            return sequential_map(fn, items)
        threads = min(caller_threads, workers, len(items))
        spawned = min(workers - threads, len(items))
        if spawned < 1:
            done = _CallerShare(fn, items, None).run(threads)
            return [done[i] for i in range(len(items))]
        pool = ProcessPoolExecutor(max_workers=spawned, mp_context=get_context("spawn"))
        try:
            futures = [pool.submit(fn, item) for item in items]
            here = _CallerShare(fn, items, futures).run(threads) if threads else {}
            results = [here[i] if i in here else f.result() for i, f in enumerate(futures)]
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)  # fail fast: queued items never start
            raise
        # Every result is in: the processes exit on their own (a few tenths of a second of interpreter
        # teardown) while the caller goes on; the executor still reaps them.
        pool.shutdown(wait=False)
        return results

    return run


def spawn_apart(fn: Callable[..., Any], *args: Any) -> Future[Any]:
    """`fn(*args)` in a freshly spawned Python process (spawn: no inherited process group, threads or
    locks; the environment is inherited), returning its future at once. The process exits once the call
    has returned; `fn` and `args` must be picklable."""
    pool = ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn"))
    future = pool.submit(fn, *args)
    pool.shutdown(wait=False)  # no further work: the submitted call still runs, then the process exits
    return future


class _CallerShare:
    """The calling process's threads as workers beside a process pool that was handed every item.

    A thread claims the first item the pool has not started (`Future.cancel` succeeds only then, so no
    item runs twice) and runs it here; without a pool it claims the next item. Claiming stops at the end
    of the list, after a failure here, or as soon as a pool item has failed (whose error the caller then
    raises)."""

    def __init__(self, fn: Callable[[Any], Any], items: Sequence[Any], futures: list[Future[Any]] | None):
        self.fn, self.items, self.futures = fn, items, futures
        self.results: dict[int, Any] = {}
        self.next = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        for future in futures or ():
            future.add_done_callback(self._note_failure)

    def _note_failure(self, future: Future[Any]) -> None:
        if not future.cancelled() and future.exception() is not None:
            self.stop.set()

    def _claim(self) -> int | None:
        with self.lock:
            while self.next < len(self.items) and not self.stop.is_set():
                i, self.next = self.next, self.next + 1
                if self.futures is None or self.futures[i].cancel():
                    return i
            return None

    def _work(self) -> None:
        try:
            while (i := self._claim()) is not None:
                self.results[i] = self.fn(self.items[i])
        except BaseException:
            self.stop.set()
            raise

    def run(self, threads: int) -> dict[int, Any]:
        """Run claimed items on `threads` threads (this one among them); re-raise the first failure."""
        if threads <= 1:
            self._work()
            return self.results
        with ThreadPoolExecutor(threads - 1) as helpers:
            others = [helpers.submit(self._work) for _ in range(threads - 1)]
            self._work()
            for other in others:
                other.result()
        return self.results


def slurm_array_map(
    launcher: LauncherConfig, folder: Path, *, name: str = "qwen-array", array_parallelism: int = 64
) -> MapFn:
    """Submit one Slurm job array (one element per item) with the launcher's settings and wait for it."""

    def run(fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        import submitit

        from qwen_hpc.launch.submit import executor_parameters

        if not items:
            return []
        executor = submitit.AutoExecutor(folder=Path(folder) / "%j", cluster="slurm")
        params = executor_parameters(launcher, name)
        params.update(tasks_per_node=1, nodes=1, slurm_array_parallelism=array_parallelism)
        params.pop("gpus_per_node", None)  # array elements are CPU work
        executor.update_parameters(**params)
        jobs = executor.map_array(fn, list(items))
        log.info("submitted Slurm array %s with %d tasks", jobs[0].job_id.split("_")[0], len(jobs))
        while not all(job.done() for job in jobs):
            time.sleep(max(0.5, launcher.poll_interval_s))
        return [job.result() for job in jobs]  # raises with the failing task's traceback

    run.runs_elsewhere = True  # type: ignore[attr-defined]  # items run in other jobs (see parallel.maps)
    return run


def array_map(
    launcher: LauncherConfig,
    workers: int,
    folder: Path,
    *,
    name: str = "qwen-array",
    caller_threads: int = 0,
) -> MapFn:
    """The map function for a stage under `launcher`: Slurm array, process pool or sequential.

    `caller_threads` (process pool only): that many of the `workers` are threads of the stage's own
    process (`process_pool_map`); a Slurm array runs every item in the array."""
    if launcher.kind == "slurm":
        return slurm_array_map(launcher, folder, name=name)
    if launcher.kind == "debug":
        return sequential_map
    return process_pool_map(workers, caller_threads=caller_threads)
