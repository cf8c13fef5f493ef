"""The callable every launcher runs: one piece of work handed in by the entry layer (a picklable `JobWork`,
for a stage `stages.runner.StageWork`), with preemption handled in two halves.

First half (`StopFlag`): USR1/USR2/TERM only set a flag. The stage's loops notice it at a step
boundary, every rank saves, and the stage returns status "preempted". Second half (here):
- USR1/USR2 (time limit near): rank 0 hands over to submitit's own USR2 handler, which asks
  `checkpoint()` for the resubmission — the same work (stage and config), never pickled model state, because the
  stage resumes from its checkpoint on disk — writes it, requeues the Slurm job (`scontrol requeue`) and
  exits;
- SIGTERM inside a Slurm job (`scancel`, `scontrol requeue`, preemption, node failure with `--requeue`):
  every rank exits with `EXIT_PREEMPTED` and *no* result, leaving the verdict to Slurm — a requeued job
  runs again under the same id and resumes, a cancelled one stays CANCELLED; the waiting submitter reads
  which from the scheduler (`qwen_hpc.launch.scheduler`).
Before the work runs, rank 0 takes the folder the work claims (`JobWork.claim`, the stage folder) with its
lock (`qwen_hpc.launch.ownership`) and applies the requeue budget: only restarts that found no progress
since the previous start count. This module imports no stage and no domain package.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import submitit

from qwen_hpc.launch import ownership
from qwen_hpc.launch.preemption import StopFlag

log = logging.getLogger(__name__)


# Slurm's warning signals (`--signal=USR2@N` before the time limit, or sent by an operator): requeue
REQUEUE_SIGNALS = (int(signal.SIGUSR1), int(signal.SIGUSR2))
# exit status of a task that saved after a signal and leaves the rest to the scheduler (or to a rerun)
EXIT_PREEMPTED = 3


class StagePreempted(RuntimeError):
    """Raised where no scheduler can requeue us (debug launcher): rerun the same command to resume."""


def setup_logging() -> None:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )


def _submitit_env() -> Any:
    try:
        return submitit.JobEnvironment()
    except RuntimeError:
        return None


def _owner_record(token: str | None) -> dict[str, Any]:
    """Who this task is, for the stage folder's lock: the Slurm job (sbatch or submitit), the submitit
    local job, or this process."""
    env = _submitit_env()
    slurm_id = os.environ.get("SLURM_JOB_ID")
    if (env is not None and env.cluster == "slurm") or (env is None and slurm_id):
        job_id = str(env.job_id) if env is not None else str(slurm_id)
        return {"token": token or f"slurm-{job_id}", "launcher": "slurm", "job_id": job_id, "pid": os.getpid()}
    if env is not None:
        return {"token": token or f"local-{env.job_id}", "launcher": "local", "job_id": str(env.job_id),
                "pid": os.getpid()}
    return {"token": token or f"process-{os.getpid()}", "launcher": "process", "job_id": None,
            "pid": os.getpid()}


def sbatch_token(launcher_kind: str) -> str | None:
    """The lock token of this very Slurm job when a stage runs in-process inside it (slurm/stage.sbatch):
    a requeued run of the job carries the same one."""
    if launcher_kind == "debug" and "SLURM_JOB_ID" in os.environ:
        return f"slurm-{os.environ['SLURM_JOB_ID']}"
    return None


def task_rank() -> int:
    for var in ("RANK", "SUBMITIT_GLOBAL_ID", "SLURM_PROCID"):
        if var in os.environ:
            return int(os.environ[var])
    env = _submitit_env()
    return int(env.global_rank) if env is not None else 0


def _in_slurm_job() -> bool:
    env = _submitit_env()
    return env.cluster == "slurm" if env is not None else "SLURM_JOB_ID" in os.environ


@dataclass(frozen=True)
class FolderClaim:
    """What rank 0 locks before the work runs: the output folder, the progress found in it now (compared at
    each restart, so only restarts without progress count) and the requeue budget."""

    folder: Path
    progress: int | None
    max_requeues: int


class JobWork(Protocol):
    """The picklable callable a launcher runs (the entry layer builds it, e.g. `stages.runner.StageWork`):
    the launcher knows no stage, only what to lock and what to call."""

    def claim(self) -> FolderClaim | None: ...

    def __call__(self, should_stop: Callable[[], bool]) -> dict[str, Any]: ...


def _own_folder(work: JobWork, token: str | None) -> tuple[Path, str] | None:
    """Rank 0: take the folder's lock (refusing a second writer) and count this start against the
    requeue budget. Returns (folder, token) to release on completion."""
    if task_rank() != 0:
        return None
    claim = work.claim()
    if claim is None:
        return None
    record = _owner_record(token)
    ownership.job_start(claim.folder, record, claim.progress, claim.max_requeues)
    return claim.folder, record["token"]


class StageJob(submitit.helpers.Checkpointable):
    """Runs a `JobWork` under the lock and the stop flag; its result dict's "status" says "preempted" when
    the work saved and stopped after a signal."""

    def __call__(self, work: JobWork, lock_token: str | None = None) -> dict[str, Any]:
        setup_logging()
        owned = _own_folder(work, lock_token)
        flag = StopFlag().install()
        requeue_handler = flag.previous_handler(signal.SIGUSR2)  # submitit's, when we run as its job
        keep_lock = False
        try:
            result = work(should_stop=flag)
            if result.get("status") == "preempted":
                keep_lock = _in_slurm_job()  # the same job comes back (requeue) or Slurm ends it
                flag.restore()
                self._requeue(flag.signum, requeue_handler)
        finally:
            flag.restore()
            if owned is not None and not keep_lock:
                ownership.release(*owned)
        return result

    def checkpoint(self, work: JobWork, lock_token: str | None = None) -> submitit.helpers.DelayedSubmission:
        return submitit.helpers.DelayedSubmission(StageJob(), work, lock_token)

    @staticmethod
    def _requeue(signum: int | None, handler: Any) -> None:
        if not _in_slurm_job():
            raise StagePreempted(f"stage stopped by signal {signum} after saving; rerun to resume")
        if signum in REQUEUE_SIGNALS and callable(handler) and task_rank() == 0 and _submitit_env():
            log.warning("checkpoint saved after signal %s: handing over to submitit to requeue", signum)
            handler(signal.SIGUSR2, None)  # requeues the job and exits (SystemExit: no result written)
        if signum in REQUEUE_SIGNALS and _submitit_env() is None:
            # a plain sbatch task (slurm/stage.sbatch): the batch script requeues on this exit status
            raise StagePreempted(f"stage stopped by signal {signum} after saving a checkpoint")
        # SIGTERM is `scancel`, `scontrol requeue`, preemption or a node failure: Slurm decides. Exit with
        # no result, so the waiting submitter asks Slurm whether this job comes back or was cancelled.
        log.warning("checkpoint saved after signal %s: exiting; Slurm requeues the job (it resumes from the "
                    "checkpoint) or it stays cancelled", signum)
        logging.shutdown()
        raise SystemExit(EXIT_PREEMPTED)
