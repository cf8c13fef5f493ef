"""The local half of `qwen_hpc.launch.array`: a process pool whose caller can work as threads beside it.

Items are claimed by whichever worker is free, so these tests check what must hold whatever the timing:
results in item order, every item run exactly once, failures raised to the caller."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from qwen_hpc.launch.array import process_pool_map


def run_once(item: tuple[Path, int]) -> tuple[int, int]:
    """Square `n`, leaving a file named after it that a second run of the same item could not create."""
    folder, n = item
    with open(folder / f"{n}.ran", "x"):  # FileExistsError if this item ran before
        pass
    return n * n, os.getpid()


def fail_on_three(n: int) -> int:
    if n == 3:
        raise ValueError(f"item {n} is bad")
    return n


@pytest.mark.parametrize(("workers", "caller_threads"), [(2, 0), (3, 1), (2, 2), (3, 2)])
def test_every_item_runs_once_and_results_keep_item_order(tmp_path, workers, caller_threads) -> None:
    items = [(tmp_path, n) for n in range(12)]
    results = process_pool_map(workers, caller_threads=caller_threads)(run_once, items)
    assert [square for square, _ in results] == [n * n for n in range(12)]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{n}.ran" for n in range(12))
    pids = {pid for _, pid in results}
    if caller_threads == 0:  # only spawned processes work
        assert os.getpid() not in pids
    if caller_threads >= workers:  # only the caller's threads work: nothing is spawned
        assert pids == {os.getpid()}


@pytest.mark.parametrize(("workers", "caller_threads"), [(2, 0), (3, 1), (2, 2)])
def test_a_failing_item_raises_its_error(workers, caller_threads) -> None:
    with pytest.raises(ValueError, match="item 3 is bad"):
        process_pool_map(workers, caller_threads=caller_threads)(fail_on_three, list(range(8)))


def test_one_worker_or_one_item_runs_in_this_process(tmp_path) -> None:
    assert process_pool_map(1, caller_threads=0)(run_once, [(tmp_path, 1), (tmp_path, 2)]) == [
        (1, os.getpid()),
        (4, os.getpid()),
    ]
    assert process_pool_map(4)(run_once, [(tmp_path, 3)]) == [(9, os.getpid())]


def pid_and_world(n: int) -> tuple[int, int, bool]:
    import torch.distributed as dist

    return n + 1, os.getpid(), dist.is_initialized()


def test_spawn_apart_runs_one_call_in_a_fresh_process_and_hands_back_its_future() -> None:
    from qwen_hpc.launch.array import spawn_apart

    future = spawn_apart(pid_and_world, 41)
    value, pid, joined = future.result(timeout=120)
    assert (value, joined) == (42, False) and pid != os.getpid()
    with pytest.raises(ValueError, match="item 3 is bad"):
        spawn_apart(fail_on_three, 3).result(timeout=120)


def test_submit_here_is_the_in_process_counterpart() -> None:
    from qwen_hpc.parallel import submit_here

    assert submit_here(pid_and_world, 1).result()[:2] == (2, os.getpid())
    failed = submit_here(fail_on_three, 3)
    assert failed.done() and isinstance(failed.exception(), ValueError)
