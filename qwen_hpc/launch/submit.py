"""Dispatch a validated stage to its launcher and wait: `debug` in-process, `local`/`slurm` via submitit.

The submitter stays attached until the job ends, streams the job's log so a person (or Snakemake's log)
sees progress, and turns a failed job into a non-zero exit carrying the job's own traceback. On Slurm it
follows the job's *state* (`qwen_hpc.launch.scheduler`), not only its result file: a job that is requeued
(preemption, `scontrol requeue`, a node failure, a time limit) keeps its id and runs again, and the
submitter keeps waiting until Slurm says COMPLETED, FAILED or CANCELLED.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import submitit

from qwen_hpc.config.launcher import LauncherConfig
from qwen_hpc.config.resources import ResourceOverrides
from qwen_hpc.launch import ownership
from qwen_hpc.launch.job import JobWork, StageJob
from qwen_hpc.launch.scheduler import MAYBE_REQUEUED_STATES, SlurmJobState, slurm_job_state
from qwen_hpc.utils.io import write_json

log = logging.getLogger(__name__)


def effective_launcher(launcher: LauncherConfig, resources: ResourceOverrides) -> LauncherConfig:
    merged = asdict(launcher)
    merged.update(resources.as_dict())
    return LauncherConfig(**merged)


def executor_parameters(launcher: LauncherConfig, job_name: str) -> dict[str, Any]:
    params: dict[str, Any] = {
        "name": job_name,
        "timeout_min": launcher.timeout_min,
        "tasks_per_node": launcher.tasks_per_node,
        "nodes": launcher.nodes,
    }
    if launcher.kind == "local":  # submitit.LocalExecutor's own parameter names
        params.pop("name")
        params["signal_delay_s"] = launcher.signal_delay_s
        if launcher.gpus_per_node:
            params["gpus_per_node"] = launcher.gpus_per_node
        return params
    params.update(
        slurm_signal_delay_s=launcher.signal_delay_s,
        cpus_per_task=launcher.cpus_per_task,
    )
    if launcher.gpus_per_node:
        params["gpus_per_node"] = launcher.gpus_per_node
    if launcher.mem_gb is not None:
        params["mem_gb"] = launcher.mem_gb
    for key in ("partition", "account", "qos"):
        value = getattr(launcher, key)
        if value:
            params[f"slurm_{key}"] = value
    # requeue on node failure / preemption whatever the cluster's JobRequeue default
    extra: dict[str, Any] = {"requeue": True}
    extra.update(launcher.additional_sbatch)
    if extra:
        params["slurm_additional_parameters"] = extra
    if launcher.setup:
        params["slurm_setup"] = list(launcher.setup)
    return params


class _LogStreamer:
    """Print new lines of the job's stdout/stderr as they appear (the job may be requeued: keep going)."""

    def __init__(self, paths: list[Path]) -> None:
        self.offsets = {p: 0 for p in paths}

    def pump(self) -> None:
        for path, offset in self.offsets.items():
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                continue
            if size < offset:  # a requeued job truncates its log
                offset = 0
            if size > offset:
                with open(path, "rb") as fh:
                    fh.seek(offset)
                    chunk = fh.read(size - offset)
                self.offsets[path] = offset + len(chunk)
                sys.stderr.write(chunk.decode("utf-8", "replace"))
                sys.stderr.flush()


class SubmitterInterrupted(RuntimeError):
    pass


class StageCancelled(RuntimeError):
    """The stage's job was cancelled (`scancel`): not a failure of the stage, not to be resumed silently."""


# submitit's own time-out budget is replaced by ours (`ownership.job_start`: only restarts without progress
# count), so its countdown must never be the one that stops a long run
SUBMITIT_TIMEOUT_BUDGET = 1_000_000
# how long a PREEMPTED / NODE_FAIL state may take to turn into a requeue before we believe it
REQUEUE_GRACE_S = 60.0
# a job that neither the controller nor accounting knows for this long is reported as lost
UNKNOWN_GIVE_UP_S = 300.0


@contextlib.contextmanager
def _cancel_on_interrupt(job: submitit.Job) -> Iterator[None]:
    """Ctrl-C or SIGTERM to the waiting submitter (Snakemake stopping a rule) cancels the job, so no
    orphaned stage keeps running on the cluster after the workflow that wanted it has gone."""

    def _raise(signum: int, frame: Any) -> None:
        raise SubmitterInterrupted(f"submitter received signal {signum}")

    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    except (KeyboardInterrupt, SubmitterInterrupted):
        log.warning("interrupted: cancelling job %s", job.job_id)
        job.cancel(check=False)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)


def submit_and_wait(
    work: JobWork, launcher: LauncherConfig, stage_dir: Path, job_name: str, lock_token: str | None = None,
    *, label: str = "",
) -> dict[str, Any]:
    """Submit the work (for a stage: `stages.runner.StageWork`) as a submitit job and block until it ends;
    raise on failure or cancellation. `stage_dir` gets the logs and launch.json; `label` names the work in
    messages (the stage name)."""
    label = label or job_name
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder = stage_dir / "logs" / f"{stamp}_%j"
    executor: submitit.Executor
    if launcher.kind == "local":
        executor = submitit.LocalExecutor(folder=folder)
    else:
        executor = submitit.AutoExecutor(folder=folder, cluster=launcher.kind,
                                         slurm_max_num_timeout=SUBMITIT_TIMEOUT_BUDGET)
    executor.update_parameters(**executor_parameters(launcher, job_name))
    job = executor.submit(StageJob(), work, lock_token)
    if lock_token:
        local_pid = {"pid": int(job.job_id)} if launcher.kind == "local" else {}
        ownership.update(stage_dir, lock_token, launcher=launcher.kind, job_id=str(job.job_id), **local_pid)
    write_json(
        stage_dir / "launch.json",
        {
            "launcher": launcher.kind,
            "job_id": str(job.job_id),
            "submitted_at": time.time(),
            "stdout": str(job.paths.stdout),
            "stderr": str(job.paths.stderr),
        },
    )
    log.info("stage %s submitted as %s job %s", label, launcher.kind, job.job_id)
    log.info("logs: %s | %s", job.paths.stdout, job.paths.stderr)
    streamer = _LogStreamer([job.paths.stdout, job.paths.stderr]) if launcher.stream_logs else None
    final: SlurmJobState | None = None
    with _cancel_on_interrupt(job):
        if launcher.kind == "slurm":
            final = _follow_slurm_job(str(job.job_id), launcher.poll_interval_s, streamer)
        else:
            while not job.done():
                if streamer:
                    streamer.pump()
                time.sleep(launcher.poll_interval_s)
    if streamer:
        streamer.pump()
    if final is not None and final.cancelled:
        raise StageCancelled(
            f"stage {label}: Slurm job {job.job_id} was cancelled (scancel; state {final.state}, restarts "
            f"{final.restarts}); its last checkpoint is kept in {stage_dir}: run the same command to resume"
        )
    # raises FailedJobError / UncompletedJobError with the job's traceback; a multi-task job answers
    # per task, and rank 0 speaks for the stage
    result = job.results()[0] if launcher.tasks_per_node * launcher.nodes > 1 else job.result()
    return result if isinstance(result, dict) else {"status": "completed", "result": result}


def _follow_slurm_job(job_id: str, poll_s: float, streamer: _LogStreamer | None) -> SlurmJobState:
    """Wait until Slurm reports a terminal state, through any number of requeues of the same job id."""
    seen: tuple[str, int] | None = None
    doubtful_since: float | None = None
    unknown_since = time.monotonic()
    while True:
        if streamer:
            streamer.pump()
        state = slurm_job_state(job_id)
        if state is None and time.monotonic() - unknown_since > UNKNOWN_GIVE_UP_S:
            return SlurmJobState(job_id, "UNKNOWN", reason="neither scontrol nor sacct knows the job")
        if state is not None:
            unknown_since = time.monotonic()
            if (state.state, state.restarts) != seen:
                if seen is not None and state.restarts > seen[1]:
                    log.warning("job %s was requeued (restart %d, %s): following it", job_id, state.restarts,
                                state.reason or state.state)
                log.info("job %s: %s%s", job_id, state.state, f" ({state.reason})" if state.reason else "")
                seen = (state.state, state.restarts)
            if state.state in MAYBE_REQUEUED_STATES:
                doubtful_since = doubtful_since or time.monotonic()
                if time.monotonic() - doubtful_since < REQUEUE_GRACE_S:
                    time.sleep(poll_s)
                    continue
            elif not state.active:
                return state
            else:
                doubtful_since = None
        time.sleep(poll_s)


def run_inline(work: JobWork, lock_token: str | None = None) -> dict[str, Any]:
    """The debug launcher: the same job callable, in this process."""
    return StageJob()(work, lock_token)
