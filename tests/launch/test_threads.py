"""Tasks of one job on one node share the CPUs instead of each sizing torch's pool to all of them."""

from __future__ import annotations

import os

import pytest
import torch

from qwen_hpc.launch.distributed import share_cpu_threads


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _job_env(monkeypatch: pytest.MonkeyPatch, **env: str) -> None:
    for var in ("OMP_NUM_THREADS", "LOCAL_WORLD_SIZE", "SLURM_NTASKS_PER_NODE", "SLURM_CPUS_PER_TASK"):
        monkeypatch.delenv(var, raising=False)
    for var, value in env.items():
        monkeypatch.setenv(var, value)


def test_local_tasks_split_the_cpus_they_may_run_on(monkeypatch, restore_threads) -> None:
    _job_env(monkeypatch, LOCAL_WORLD_SIZE="2")
    share = max(1, len(os.sched_getaffinity(0)) // 2)
    assert share_cpu_threads() == share and torch.get_num_threads() == share


def test_slurm_cpus_per_task_and_a_users_setting_win(monkeypatch, restore_threads) -> None:
    _job_env(monkeypatch, SLURM_NTASKS_PER_NODE="4", SLURM_CPUS_PER_TASK="1")
    assert share_cpu_threads() == 1 and torch.get_num_threads() == 1
    _job_env(monkeypatch, LOCAL_WORLD_SIZE="2", OMP_NUM_THREADS="3")
    assert share_cpu_threads() is None
    _job_env(monkeypatch)  # one task: torch's own default stands
    assert share_cpu_threads() is None
