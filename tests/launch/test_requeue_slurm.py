"""Preemption on a real Slurm: USR2 mid-training → checkpoint → requeue → resume → the full step count;
and a submitter stopped by Snakemake cancels its job instead of orphaning it."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from qwen_hpc.report.html import read_jsonl
from qwen_hpc.utils.io import read_json
from tests.conftest import QWEN, REPO, child_env, run_qwen

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

SMALL = [
    "logger=none",
    "data.embedded_max_docs_per_source=150",
    "data.embedded_max_chars_per_source=200000",
    "tokenizer.vocab_size=512",
]
ITERS = 150


def _wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"submitter exited {proc.returncode} while waiting for {what}\n{out}\n{err}")
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _steps_logged(path: Path) -> int:
    return sum(1 for r in read_jsonl(path) if "loss" in r)


def _sacct_states(job_id: str, want: str) -> list[str]:
    """All records of the job (requeues included); sacct may lag a few seconds behind the job."""
    states: list[str] = []
    for _ in range(60):
        states = subprocess.run(["sacct", "-j", job_id, "-n", "-X", "-D", "-P", "-o", "State"],
                                capture_output=True, text=True, check=True).stdout.splitlines()
        if states and states[-1].startswith(want):
            break
        time.sleep(1)
    return states


@pytest.fixture(scope="module")
def prepared(require_slurm, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """data → tokenizer → tokens of a small run, made once and copied into each test's own root."""
    root = tmp_path_factory.mktemp("prepared")
    for stage in ("data", "tokenizer", "tokens"):
        run_qwen([stage, f"run.root={root}", "run.name=requeue", *SMALL, "launcher=debug"])
    return root


def _start_pretrain(root: Path, prepared: Path, *extra: str) -> subprocess.Popen:
    shutil.copytree(prepared / "requeue", root / "requeue")
    args = [f"run.root={root}", "run.name=requeue", *SMALL, "launcher=slurm", "launcher.cpus_per_task=1",
            "launcher.timeout_min=15", f"pretrain.train.train_iters={ITERS}", "pretrain.train.save_interval=1000",
            "pretrain.train.eval_interval=0", *extra]
    return subprocess.Popen([*QWEN, "pretrain", *args], cwd=REPO, env=child_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_usr2_requeues_and_training_finishes_its_steps(prepared: Path, tmp_path: Path) -> None:
    proc = _start_pretrain(tmp_path, prepared)
    stage_dir = tmp_path / "requeue" / "pretrain"
    try:
        _wait_for(lambda: (stage_dir / "launch.json").exists(), 120, "the job to be submitted", proc)
        job_id = read_json(stage_dir / "launch.json")["job_id"]
        _wait_for(lambda: _steps_logged(stage_dir / "metrics.jsonl") >= 20, 300, "20 training steps", proc)
        subprocess.run(["scancel", "--signal=USR2", job_id], check=True)
        out, err = proc.communicate(timeout=900)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, f"{out}\n{err}"

    marker = read_json(stage_dir / "_SUCCESS.json")["metrics"]
    assert marker["iteration"] == ITERS
    assert marker["resumed_from"] is not None and 20 <= marker["resumed_from"] < ITERS
    steps = sorted({r["step"] for r in read_jsonl(stage_dir / "metrics.jsonl") if "loss" in r})
    assert steps == list(range(1, ITERS + 1))
    # the interruption really happened: a checkpoint at the preemption step, and Slurm requeued the job
    assert (stage_dir / "checkpoints" / f"iter_{marker['resumed_from']:07d}").is_dir()
    states = _sacct_states(job_id, "COMPLETED")
    assert states[-1] == "COMPLETED" and "REQUEUED" in states, states


def test_stopping_the_submitter_cancels_its_job(prepared: Path, tmp_path: Path) -> None:
    proc = _start_pretrain(tmp_path, prepared)
    stage_dir = tmp_path / "requeue" / "pretrain"
    try:
        _wait_for(lambda: (stage_dir / "launch.json").exists(), 120, "the job to be submitted", proc)
        job_id = read_json(stage_dir / "launch.json")["job_id"]
        _wait_for(lambda: _steps_logged(stage_dir / "metrics.jsonl") >= 5, 300, "5 training steps", proc)
        proc.send_signal(signal.SIGTERM)  # what Snakemake does to a rule's process when it stops
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    assert f"cancelling job {job_id}" in err
    states = _sacct_states(job_id, "CANCELLED")
    assert states[-1].startswith("CANCELLED"), states
    assert not (stage_dir / "_SUCCESS.json").exists()
