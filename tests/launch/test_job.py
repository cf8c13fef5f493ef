"""The job callable runs whatever work the entry layer hands it: it locks the folder the work claims,
releases it when the work ends, and turns a "preempted" result into the launcher's resume path."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from qwen_hpc.launch import ownership
from qwen_hpc.launch.job import FolderClaim, StageJob, StagePreempted
from qwen_hpc.launch.submit import run_inline


@dataclass(frozen=True)
class _Work:
    folder: Path
    status: str = "completed"

    def claim(self) -> FolderClaim:
        return FolderClaim(self.folder, progress=7, max_requeues=1)

    def __call__(self, should_stop: Callable[[], bool]) -> dict[str, Any]:
        lock = ownership.read_lock(self.folder)  # held while the work runs
        return {"status": self.status, "lock": lock, "stopped": should_stop()}


def test_the_work_runs_under_the_lock_of_the_folder_it_claims(tmp_path: Path) -> None:
    result = run_inline(_Work(tmp_path), "tok-1")
    assert result["status"] == "completed" and result["stopped"] is False
    assert result["lock"]["token"] == "tok-1" and result["lock"]["progress"] == 7
    assert result["lock"]["starts"] == 1
    assert ownership.read_lock(tmp_path) is None  # released once the work has ended


def test_preempted_work_outside_a_scheduler_asks_for_a_rerun_and_frees_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    with pytest.raises(StagePreempted, match="rerun to resume"):
        StageJob()(_Work(tmp_path, status="preempted"))
    assert ownership.read_lock(tmp_path) is None


def test_the_resubmission_carries_the_same_work(tmp_path: Path) -> None:
    work = _Work(tmp_path)
    delayed = StageJob().checkpoint(work, "tok-2")
    assert delayed.args == (work, "tok-2")
    assert pickle.loads(pickle.dumps(delayed.args)) == (work, "tok-2")  # what submitit writes to disk


def test_a_stage_is_handed_over_as_picklable_work(tmp_path: Path) -> None:
    from qwen_hpc.config.compose import load
    from qwen_hpc.stages.runner import StageWork

    plain, _ = load([f"run.root={tmp_path}"])
    work = pickle.loads(pickle.dumps(StageWork("tokens", plain)))
    claim = work.claim()
    assert claim.folder.name == "tokens" and claim.folder.parent.parent == tmp_path
    assert claim.max_requeues >= 0
