"""The callable every launcher runs: one stage, with preemption handled in two halves.

First half (`StopFlag`): USR1/USR2/TERM only set a flag. The stage's loops notice it at a step
boundary, every rank saves, and the stage returns status "preempted". Second half (here): rank 0 hands
over to submitit's own USR2 handler, which asks `checkpoint()` for the resubmission — the same stage and
config, never pickled model state, because the stage resumes from its checkpoint on disk — writes it,
requeues the Slurm job (`scontrol requeue`) within the `max_requeues` budget, and exits.
"""

from __future__ import annotations

import logging
import signal
import sys
from typing import Any

import submitit

from qwen_hpc.launch.preemption import StopFlag

log = logging.getLogger(__name__)


# Slurm's warning signals (`--signal=USR2@N` before the time limit, or sent by an operator): requeue
REQUEUE_SIGNALS = (int(signal.SIGUSR1), int(signal.SIGUSR2))


class StagePreempted(RuntimeError):
    """Raised where no scheduler can requeue us (debug launcher): rerun the same command to resume."""


def setup_logging() -> None:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )


class StageJob(submitit.helpers.Checkpointable):
    def __call__(self, stage: str, plain_cfg: dict[str, Any]) -> dict[str, Any]:
        from qwen_hpc.stages.runner import run_stage

        setup_logging()
        flag = StopFlag().install()
        requeue_handler = flag.previous_handler(signal.SIGUSR2)  # submitit's, when we run as its job
        try:
            result = run_stage(stage, plain_cfg, should_stop=flag)
        finally:
            flag.restore()
        if result.status == "preempted":
            self._requeue(flag.signum, requeue_handler)
        return result.to_dict()

    def checkpoint(self, stage: str, plain_cfg: dict[str, Any]) -> submitit.helpers.DelayedSubmission:
        return submitit.helpers.DelayedSubmission(StageJob(), stage, plain_cfg)

    @staticmethod
    def _requeue(signum: int | None, handler: Any) -> None:
        in_job = True
        try:
            submitit.JobEnvironment()
        except RuntimeError:
            in_job = False
        if not in_job or not callable(handler):
            raise StagePreempted(f"stage stopped by signal {signum} after saving; rerun to resume")
        if signum not in REQUEUE_SIGNALS:
            # SIGTERM is both `scancel` and Slurm's preemption notice. A preempted job is requeued by
            # Slurm itself (PreemptMode=REQUEUE); a cancelled one must stay cancelled. So: saved, exit.
            raise StagePreempted(f"stage stopped by signal {signum} after saving a checkpoint; not "
                                 "requeueing (Slurm requeues preempted jobs itself); rerun to resume")
        log.warning("checkpoint saved after signal %s: handing over to submitit to requeue", signum)
        handler(signal.SIGUSR2, None)  # rank 0: requeue + exit; other ranks: returns
