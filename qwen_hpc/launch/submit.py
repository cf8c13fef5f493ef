"""Dispatch a validated stage to its launcher and wait: `debug` in-process, `local`/`slurm` via submitit.

The submitter stays attached until the job ends, streams the job's log so a person (or Snakemake's log)
sees progress, and turns a failed job into a non-zero exit carrying the job's own traceback.
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
from qwen_hpc.launch.job import StageJob
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
    extra = dict(launcher.additional_sbatch)
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
    stage: str, plain_cfg: dict[str, Any], launcher: LauncherConfig, stage_dir: Path, experiment: str
) -> dict[str, Any]:
    """Submit the stage as a submitit job and block until it ends; raise on failure."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder = stage_dir / "logs" / f"{stamp}_%j"
    executor: submitit.Executor
    if launcher.kind == "local":
        executor = submitit.LocalExecutor(folder=folder)
    else:
        # the requeue budget is a constructor argument of submitit's Slurm executor
        executor = submitit.AutoExecutor(folder=folder, cluster=launcher.kind,
                                         slurm_max_num_timeout=launcher.max_requeues)
    executor.update_parameters(**executor_parameters(launcher, f"qwen-{experiment}-{stage}"))
    job = executor.submit(StageJob(), stage, plain_cfg)
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
    log.info("stage %s submitted as %s job %s", stage, launcher.kind, job.job_id)
    log.info("logs: %s | %s", job.paths.stdout, job.paths.stderr)
    streamer = _LogStreamer([job.paths.stdout, job.paths.stderr]) if launcher.stream_logs else None
    with _cancel_on_interrupt(job):
        while not job.done():
            if streamer:
                streamer.pump()
            time.sleep(launcher.poll_interval_s)
    if streamer:
        streamer.pump()
    # raises FailedJobError / UncompletedJobError with the job's traceback; a multi-task job answers
    # per task, and rank 0 speaks for the stage
    result = job.results()[0] if launcher.tasks_per_node * launcher.nodes > 1 else job.result()
    return result if isinstance(result, dict) else {"status": "completed", "result": result}


def run_inline(stage: str, plain_cfg: dict[str, Any]) -> dict[str, Any]:
    """The debug launcher: the same job callable, in this process."""
    return StageJob()(stage, plain_cfg)
