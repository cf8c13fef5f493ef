"""Preemption on a real Slurm. USR2 (time limit near) and `scontrol requeue` (SIGTERM, as Slurm's
preemption and a node failure with --requeue) mid-training: the same `qwen-hpc pretrain` call follows the
job through its requeue, returns 0, and the final weights are bit-identical to an uninterrupted run's; the
requeued job logs into the same W&B run with no step twice or missing. `scancel` ends as cancelled (exit
4, no requeue); a second submission while the first job lives is refused (exit 5) naming it; a submitter
stopped by Snakemake cancels its job instead of orphaning it."""

from __future__ import annotations

import shutil
import signal
import subprocess
from pathlib import Path

import pytest
import torch

from qwen_hpc.report.html import read_jsonl
from qwen_hpc.tracking.wandb_records import offline_runs
from qwen_hpc.utils.io import read_json
from tests.conftest import QWEN, REPO, child_env
from tests.launch.conftest import SMALL
from tests.launch.slurm_helpers import (
    assert_bit_identical,
    final_tensors,
    sacct_states,
    steps_logged,
    wait_for,
)

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

ITERS = 150
MID = 20  # steps done before the interruption
EXIT_CANCELLED, EXIT_BUSY = 4, 5


def _pretrain_args(root: Path, *extra: str) -> list[str]:
    small = [a for a in SMALL if not (a.startswith("logger=") and any(e.startswith("logger=") for e in extra))]
    return [f"run.root={root}", "run.name=requeue", *small, "launcher=slurm", "launcher.cpus_per_task=1",
            "launcher.timeout_min=15", f"pretrain.train.train_iters={ITERS}", "pretrain.train.save_interval=1000",
            "pretrain.train.eval_interval=0", *extra]


def _start_pretrain(root: Path, prepared: Path, *extra: str, copy: bool = True) -> subprocess.Popen:
    if copy:
        shutil.copytree(prepared / "requeue", root / "requeue")
    return subprocess.Popen([*QWEN, "pretrain", *_pretrain_args(root, *extra)], cwd=REPO, env=child_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def reference(prepared: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, torch.Tensor]:
    """The same run on the same Slurm, never interrupted."""
    root = tmp_path_factory.mktemp("reference")
    proc = _start_pretrain(root, prepared)
    out, err = proc.communicate(timeout=1800)
    assert proc.returncode == 0, f"{out}\n{err}"
    stage_dir = root / "requeue" / "pretrain"
    assert read_json(stage_dir / "_SUCCESS.json")["metrics"]["resumed_from"] is None
    return final_tensors(stage_dir, root)


def test_usr2_requeues_and_training_finishes_its_steps(prepared: Path, reference, tmp_path: Path) -> None:
    proc = _start_pretrain(tmp_path, prepared)
    stage_dir = tmp_path / "requeue" / "pretrain"
    try:
        wait_for(lambda: (stage_dir / "launch.json").exists(), 120, "the job to be submitted", proc)
        job_id = read_json(stage_dir / "launch.json")["job_id"]
        wait_for(lambda: steps_logged(stage_dir / "metrics.jsonl") >= MID, 600, f"{MID} training steps", proc)
        subprocess.run(["scancel", "--signal=USR2", job_id], check=True)
        out, err = proc.communicate(timeout=1800)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, f"{out}\n{err}"

    marker = read_json(stage_dir / "_SUCCESS.json")["metrics"]
    assert marker["iteration"] == ITERS
    assert marker["resumed_from"] is not None and MID <= marker["resumed_from"] < ITERS
    steps = sorted({r["step"] for r in read_jsonl(stage_dir / "metrics.jsonl") if "loss" in r})
    assert steps == list(range(1, ITERS + 1))
    # the interruption really happened: a checkpoint at the preemption step, and Slurm requeued the job
    assert (stage_dir / "checkpoints" / f"iter_{marker['resumed_from']:07d}").is_dir()
    states = sacct_states(job_id, "COMPLETED")
    assert states[-1] == "COMPLETED" and "REQUEUED" in states, states
    assert_bit_identical(final_tensors(stage_dir, tmp_path), reference)


def test_scontrol_requeue_resumes_in_the_same_call_and_the_same_wandb_run(
    prepared: Path, reference, tmp_path: Path
) -> None:
    """SIGTERM from Slurm (`scontrol requeue`; preemption and node failures look the same to the job)."""
    proc = _start_pretrain(tmp_path, prepared, "logger=wandb")
    stage_dir = tmp_path / "requeue" / "pretrain"
    try:
        wait_for(lambda: (stage_dir / "launch.json").exists(), 120, "the job to be submitted", proc)
        job_id = read_json(stage_dir / "launch.json")["job_id"]
        wait_for(lambda: steps_logged(stage_dir / "metrics.jsonl") >= MID, 600, f"{MID} training steps", proc)
        subprocess.run(["scontrol", "requeue", job_id], check=True)
        out, err = proc.communicate(timeout=1800)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, f"{out}\n{err}"
    assert f"job {job_id} was requeued" in err
    marker = read_json(stage_dir / "_SUCCESS.json")["metrics"]
    assert marker["iteration"] == ITERS
    # Slurm gives KillWait (5 s on CI) between SIGTERM and SIGKILL: the step under way plus the save fit in
    # it on an idle machine; on a loaded one the job may be killed first and restart from iteration 0
    resumed = marker["resumed_from"]
    assert resumed is None or MID <= resumed < ITERS, marker
    states = sacct_states(job_id, "COMPLETED")
    assert states[-1] == "COMPLETED" and "REQUEUED" in states, states
    assert_bit_identical(final_tensors(stage_dir, tmp_path), reference)
    assert not (stage_dir / "_LOCK.json").exists()  # released once the job completed

    # W&B: one run (one id) in two offline directories: steps 1..k before the requeue, k+1..ITERS after —
    # k = the checkpoint it resumed from, or (killed before saving) the last step W&B had written, after
    # which the resumed job, recomputing from 0, logs again: no step twice, none missing. On a loaded
    # machine SIGKILL can come before W&B's writer flushed anything (k = 0: the first directory holds no
    # record, not even the run's; its id is then the one in the directory's name)
    runs = offline_runs(stage_dir)
    run_id = (stage_dir / "wandb_run_id").read_text().strip()
    assert len(runs) == 2 and {r.run_id for r in runs} == {run_id}, [(r.path.name, r.run_id) for r in runs]
    first, second = runs[0].steps, runs[1].steps
    k = len(first)
    assert first == list(range(1, k + 1)) and second == list(range(k + 1, ITERS + 1)), (first, second)
    # steps the killed job logged to metrics.jsonl but W&B had not written are backfilled by the resumed
    # job (the checkpoint can be ahead of what W&B wrote before SIGKILL)
    assert resumed is None or resumed >= k


def test_scancel_ends_cancelled_and_a_second_submission_is_refused(prepared: Path, tmp_path: Path) -> None:
    proc = _start_pretrain(tmp_path, prepared)
    stage_dir = tmp_path / "requeue" / "pretrain"
    try:
        wait_for(lambda: (stage_dir / "launch.json").exists(), 120, "the job to be submitted", proc)
        job_id = read_json(stage_dir / "launch.json")["job_id"]
        wait_for(lambda: steps_logged(stage_dir / "metrics.jsonl") >= 5, 600, "5 training steps", proc)
        lock = read_json(stage_dir / "_LOCK.json")
        assert (lock["launcher"], lock["job_id"]) == ("slurm", job_id) and lock["host"] and lock["started_at"]
        second = subprocess.run([*QWEN, "pretrain", *_pretrain_args(tmp_path)], cwd=REPO, env=child_env(),
                                capture_output=True, text=True, timeout=300)
        assert second.returncode == EXIT_BUSY, second.stderr
        assert f"slurm job {job_id}" in second.stderr and "refusing" in second.stderr
        assert (stage_dir / "launch.json").exists() and read_json(stage_dir / "launch.json")["job_id"] == job_id
        subprocess.run(["scancel", job_id], check=True)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == EXIT_CANCELLED, f"{out}\n{err}"
    assert f"Slurm job {job_id} was cancelled" in err
    states = sacct_states(job_id, "CANCELLED")
    assert states[-1].startswith("CANCELLED") and "REQUEUED" not in states, states
    assert not (stage_dir / "_SUCCESS.json").exists()
    assert not (stage_dir / "_LOCK.json").exists()


def test_stopping_the_submitter_cancels_its_job(prepared: Path, tmp_path: Path) -> None:
    proc = _start_pretrain(tmp_path, prepared)
    stage_dir = tmp_path / "requeue" / "pretrain"
    try:
        wait_for(lambda: (stage_dir / "launch.json").exists(), 120, "the job to be submitted", proc)
        job_id = read_json(stage_dir / "launch.json")["job_id"]
        wait_for(lambda: steps_logged(stage_dir / "metrics.jsonl") >= 5, 600, "5 training steps", proc)
        proc.send_signal(signal.SIGTERM)  # what Snakemake does to a rule's process when it stops
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    assert f"cancelling job {job_id}" in err
    states = sacct_states(job_id, "CANCELLED")
    assert states[-1].startswith("CANCELLED"), states
    assert not (stage_dir / "_SUCCESS.json").exists()
