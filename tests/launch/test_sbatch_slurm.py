"""`sbatch slurm/stage.sbatch pretrain ...` on a real Slurm: a 2-task allocation is a DP=2 world (layout
checks and torch.distributed both from the allocation), a `scontrol requeue` in the middle resumes under
the same job id, and the result is bit-identical to the same run through `qwen-hpc pretrain
launcher=slurm launcher.tasks_per_node=2`."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

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

ITERS = 100
MID = 10  # steps done before the requeue
TRAIN = [f"pretrain.train.train_iters={ITERS}", "pretrain.train.save_interval=1000", "pretrain.train.eval_interval=0",
         "pretrain.train.micro_batch_size=4"]  # global batch 8 = micro 4 × DP 2


def _root(tmp: Path, prepared: Path) -> Path:
    shutil.copytree(prepared / "requeue", tmp / "requeue")
    return tmp


def test_sbatch_two_tasks_requeued_matches_the_submitit_run(prepared: Path, tmp_path: Path) -> None:
    by_hand, submitted = _root(tmp_path / "sbatch", prepared), _root(tmp_path / "submitit", prepared)
    stage_dir = by_hand / "requeue" / "pretrain"
    log = tmp_path / "sbatch-%j.out"
    job_id = subprocess.run(
        ["sbatch", "--parsable", "--ntasks=2", "--cpus-per-task=1", "--time=15", f"--output={log}",
         "slurm/stage.sbatch", "pretrain", f"run.root={by_hand}", "run.name=requeue", *SMALL, *TRAIN],
        cwd=REPO, env=child_env(), capture_output=True, text=True, check=True,
    ).stdout.strip().split(";")[0]
    output = Path(str(log).replace("%j", job_id))
    try:
        wait_for(lambda: steps_logged(stage_dir / "metrics.jsonl") >= MID, 900, f"{MID} training steps")
        lock = read_json(stage_dir / "_LOCK.json")
        assert (lock["launcher"], lock["job_id"]) == ("slurm", job_id)
        subprocess.run(["scontrol", "requeue", job_id], check=True)
        # meanwhile: the same run through the submitter, 2 tasks of one job
        proc = subprocess.run(
            [*QWEN, "pretrain", f"run.root={submitted}", "run.name=requeue", *SMALL, *TRAIN, "launcher=slurm",
             "launcher.tasks_per_node=2", "launcher.cpus_per_task=1", "launcher.timeout_min=15"],
            cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=900,
        )
        assert proc.returncode == 0, proc.stderr[-6000:]
        states = sacct_states(job_id, "COMPLETED")
        deadline = time.monotonic() + 600
        while states[-1] != "COMPLETED" and time.monotonic() < deadline:
            time.sleep(2)
            states = sacct_states(job_id, "COMPLETED")
    finally:
        subprocess.run(["scancel", job_id], check=False)  # a no-op once it has completed
    text = output.read_text() if output.exists() else ""
    assert states[-1] == "COMPLETED" and "REQUEUED" in states, f"{states}\n{text[-6000:]}"
    assert "(restart 1): qwen-hpc pretrain on 2 task(s)" in text, text[-6000:]
    ours = read_json(stage_dir / "_SUCCESS.json")["metrics"]
    theirs = read_json(submitted / "requeue" / "pretrain" / "_SUCCESS.json")["metrics"]
    assert (ours["iteration"], ours["world_size"], ours["data_parallel_size"]) == (ITERS, 2, 2)
    assert (theirs["world_size"], theirs["data_parallel_size"]) == (2, 2)
    assert ours["resumed_from"] is None or MID <= ours["resumed_from"] < ITERS, ours  # killed before saving: from 0
    assert not (stage_dir / "_LOCK.json").exists()
    assert_bit_identical(final_tensors(stage_dir, tmp_path), final_tensors(submitted / "requeue" / "pretrain",
                                                                             tmp_path))


def test_sbatch_layout_check_sees_the_allocation(prepared: Path, tmp_path: Path) -> None:
    """Micro-batch 8 × DP 2 cannot make a global batch of 8: with 2 tasks the check before training must
    say so (with the world of one it used to see, the run would start)."""
    root = _root(tmp_path, prepared)
    log = tmp_path / "bad.out"
    subprocess.run(
        ["sbatch", "--wait", "--ntasks=2", "--cpus-per-task=1", "--time=5", f"--output={log}",
         "slurm/stage.sbatch", "pretrain", f"run.root={root}", "run.name=requeue", *SMALL, *TRAIN,
         "pretrain.train.micro_batch_size=8"],
        cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=600, check=False,
    )
    text = log.read_text()
    assert "parallel layout of stage pretrain (world size 2" in text, text[-4000:]
    assert not (root / "requeue" / "pretrain" / "checkpoints").exists()
