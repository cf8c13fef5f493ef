"""One writer per stage folder (`_LOCK.json`) and the requeue budget that counts only restarts without
progress — on real processes; the Slurm side (job ids, requeues) is in test_requeue_slurm.py."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from qwen_hpc.launch import ownership
from qwen_hpc.utils.io import read_json, write_json
from tests.conftest import run_qwen


@pytest.fixture
def live_process():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield proc
    proc.kill()
    proc.wait()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_live_owner_is_refused_by_name(tmp_path: Path, live_process) -> None:
    ownership.acquire(tmp_path, {"token": "a", "launcher": "process", "job_id": None, "pid": live_process.pid})
    lock = read_json(tmp_path / ownership.LOCK_FILE)
    assert lock["host"] == socket.gethostname() and lock["pid"] == live_process.pid
    with pytest.raises(ownership.StageBusy, match=f"pid {live_process.pid} on {socket.gethostname()}"):
        ownership.acquire(tmp_path, {"token": "b", "launcher": "process", "pid": 1234})
    assert read_json(tmp_path / ownership.LOCK_FILE)["token"] == "a"
    # the owner itself (same token: a requeued run of the same job) may come back
    ownership.acquire(tmp_path, {"token": "a", "launcher": "process", "pid": live_process.pid, "x": 1})
    assert read_json(tmp_path / ownership.LOCK_FILE)["x"] == 1


def test_a_stale_lock_is_taken_over_and_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    dead = _dead_pid()
    write_json(tmp_path / ownership.LOCK_FILE, {"token": "old", "launcher": "process", "pid": dead,
                                                "host": socket.gethostname(), "started_at": 1.0})
    with caplog.at_level(logging.WARNING):
        previous = ownership.acquire(tmp_path, {"token": "new", "launcher": "process", "pid": 1})
    assert previous["token"] == "old"
    assert read_json(tmp_path / ownership.LOCK_FILE)["token"] == "new"
    assert "taking over the stale lock" in caplog.text and f"process {dead}" in caplog.text


def test_a_slurm_owner_unknown_to_slurm_is_stale(tmp_path: Path) -> None:
    write_json(tmp_path / ownership.LOCK_FILE, {"token": "old", "launcher": "slurm", "job_id": "999999999",
                                                "host": "elsewhere"})
    assert not ownership.owner_liveness(read_json(tmp_path / ownership.LOCK_FILE)).alive
    ownership.acquire(tmp_path, {"token": "new", "launcher": "process", "pid": 1})


def test_release_only_removes_our_own_lock(tmp_path: Path, live_process) -> None:
    ownership.acquire(tmp_path, {"token": "a", "launcher": "process", "pid": live_process.pid})
    ownership.release(tmp_path, "b")
    assert (tmp_path / ownership.LOCK_FILE).exists()
    ownership.release(tmp_path, "a")
    assert not (tmp_path / ownership.LOCK_FILE).exists()


def test_requeue_budget_counts_only_restarts_without_progress(tmp_path: Path) -> None:
    record = {"token": "job", "launcher": "process", "pid": 1}
    assert ownership.job_start(tmp_path, record, None, max_requeues=1)["starts"] == 1
    # a long run: every restart found more iterations done, so any number of requeues is fine
    for step in range(10, 60, 10):
        assert ownership.job_start(tmp_path, record, step, max_requeues=1)["stalled_restarts"] == 0
    # a crash loop: the same iteration twice in a row is one restart without progress, the next is too many
    assert ownership.job_start(tmp_path, record, 50, max_requeues=1)["stalled_restarts"] == 1
    with pytest.raises(ownership.RequeueBudgetExceeded, match="2 times in a row without progress"):
        ownership.job_start(tmp_path, record, 50, max_requeues=1)
    # progress again resets the count
    assert ownership.job_start(tmp_path, record, 60, max_requeues=1)["stalled_restarts"] == 0
    assert read_json(tmp_path / ownership.LOCK_FILE)["starts"] == 9


def test_the_command_refuses_a_stage_folder_owned_by_a_live_job(tmp_path: Path, live_process) -> None:
    stage_dir = tmp_path / "own" / "data"
    stage_dir.mkdir(parents=True)
    write_json(stage_dir / ownership.LOCK_FILE, {"token": "other", "launcher": "process", "job_id": None,
                                                 "pid": live_process.pid, "host": socket.gethostname(),
                                                 "started_at": 1.0})
    proc = run_qwen(["data", f"run.root={tmp_path}", "run.name=own", "launcher=debug"], check=False)
    assert proc.returncode == 5, proc.stderr
    assert f"owned by pid {live_process.pid}" in proc.stderr and "refusing" in proc.stderr
    assert not (stage_dir / "_SUCCESS.json").exists()
