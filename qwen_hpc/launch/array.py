"""Run a stage's independent work items (the data stage's per-shard step) where the stage runs:
a Slurm job array (submitit `map_array`) under `launcher=slurm`, a local process pool under
`launcher=local`, this process under `launcher=debug`. The domain code only sees a `map_fn(fn, items)`.

The array uses the stage's own Slurm settings (partition, account, qos, time, setup ...) with one task
and `cpus_per_task` CPUs per array element; `array_parallelism` caps how many run at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from qwen_hpc.config.launcher import LauncherConfig
from qwen_hpc.data.pipeline import sequential_map

log = logging.getLogger(__name__)

MapFn = Callable[[Callable[[Any], Any], Sequence[Any]], list[Any]]


def process_pool_map(workers: int) -> MapFn:
    """Up to `workers` spawned processes (spawn: no inherited threads, locks or W&B state); order kept."""

    def run(fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        if workers <= 1 or len(items) <= 1:
            return sequential_map(fn, items)
        with ProcessPoolExecutor(max_workers=min(workers, len(items)), mp_context=get_context("spawn")) as pool:
            return list(pool.map(fn, items))

    return run


def slurm_array_map(launcher: LauncherConfig, folder: Path, *, name: str = "qwen-array",
                    array_parallelism: int = 64) -> MapFn:
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

    return run


def array_map(launcher: LauncherConfig, workers: int, folder: Path, *, name: str = "qwen-array") -> MapFn:
    """The map function for a stage under `launcher`: Slurm array, process pool or sequential."""
    if launcher.kind == "slurm":
        return slurm_array_map(launcher, folder, name=name)
    if launcher.kind == "debug":
        return sequential_map
    return process_pool_map(workers)
