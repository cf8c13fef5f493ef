"""The callable every launcher runs: one stage, with preemption handled in two halves.

First half (`StopFlag`): USR1/USR2/TERM only set a flag. The stage's loops notice it at a step
boundary, every rank saves, and the stage returns status "preempted". Second half (here):
- USR1/USR2 (time limit near): rank 0 hands over to submitit's own USR2 handler, which asks
  `checkpoint()` for the resubmission — the same stage and config, never pickled model state, because the
  stage resumes from its checkpoint on disk — writes it, requeues the Slurm job (`scontrol requeue`) and
  exits;
- SIGTERM inside a Slurm job (`scancel`, `scontrol requeue`, preemption, node failure with `--requeue`):
  every rank exits with `EXIT_PREEMPTED` and *no* result, leaving the verdict to Slurm — a requeued job
  runs again under the same id and resumes, a cancelled one stays CANCELLED; the waiting submitter reads
  which from the scheduler (`qwen_hpc.launch.scheduler`).
Before the stage runs, rank 0 takes the stage folder's lock (`qwen_hpc.launch.ownership`) and applies the
requeue budget: only restarts that found no progress since the previous start count.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from typing import Any

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


def _own_stage_folder(stage: str, plain_cfg: dict[str, Any], token: str | None) -> tuple[Any, str] | None:
    """Rank 0: take the folder's lock (refusing a second writer) and count this start against the
    requeue budget. Returns (stage folder, token) to release on completion."""
    if task_rank() != 0:
        return None
    from qwen_hpc.config.compose import typed_config
    from qwen_hpc.launch.submit import effective_launcher
    from qwen_hpc.stages.base import stage_dir
    from qwen_hpc.stages.registry import get_stage

    cfg = typed_config(plain_cfg)  # built once per process: the runner reuses it
    sdir = stage_dir(cfg, stage)
    progress_of = getattr(get_stage(stage), "progress", None)
    progress = progress_of(sdir) if callable(progress_of) else None
    budget = effective_launcher(cfg.launcher, getattr(cfg, stage).resources).max_requeues
    record = _owner_record(token)
    ownership.job_start(sdir, record, progress, budget)
    return sdir, record["token"]


class StageJob(submitit.helpers.Checkpointable):
    def __call__(self, stage: str, plain_cfg: dict[str, Any], lock_token: str | None = None) -> dict[str, Any]:
        from qwen_hpc.stages.runner import run_stage

        setup_logging()
        owned = _own_stage_folder(stage, plain_cfg, lock_token)
        flag = StopFlag().install()
        requeue_handler = flag.previous_handler(signal.SIGUSR2)  # submitit's, when we run as its job
        keep_lock = False
        try:
            result = run_stage(stage, plain_cfg, should_stop=flag)
            if result.status == "preempted":
                keep_lock = _in_slurm_job()  # the same job comes back (requeue) or Slurm ends it
                flag.restore()
                self._requeue(flag.signum, requeue_handler)
        finally:
            flag.restore()
            if owned is not None and not keep_lock:
                ownership.release(*owned)
        return result.to_dict()

    def checkpoint(self, stage: str, plain_cfg: dict[str, Any], lock_token: str | None = None
                   ) -> submitit.helpers.DelayedSubmission:
        return submitit.helpers.DelayedSubmission(StageJob(), stage, plain_cfg, lock_token)

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
