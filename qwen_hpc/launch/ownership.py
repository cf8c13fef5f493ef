"""One writer per stage folder: `<stage>/_LOCK.json` names the job that owns the folder.

Why: a Slurm job that is requeued keeps running the stage with nobody watching it; a second `qwen-hpc`
(a Snakemake rerun) must not start another trainer on the same checkpoint folder. The lock records a
`token` (the submission it belongs to: kept across requeues, since the requeued job reruns the same
pickled call), the owner job (`launcher`, `job_id`, `host`, `pid`, `started_at`) and, for the requeue
budget, the progress seen at each start of that job.

An owner is alive while Slurm still lists its job as active (PENDING/RUNNING/REQUEUED/…) or, for local
and in-process owners, while its process exists on its host. A lock whose owner is gone is stale: the
next run takes it over and says so in its log.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qwen_hpc.launch.scheduler import slurm_job_state
from qwen_hpc.utils.io import read_json, write_json

log = logging.getLogger(__name__)

LOCK_FILE = "_LOCK.json"


class StageBusy(RuntimeError):
    """The stage folder belongs to another live job: refuse to become a second writer."""


class RequeueBudgetExceeded(RuntimeError):
    """The job was requeued more than `max_requeues` times in a row without advancing."""


def new_token() -> str:
    return uuid.uuid4().hex


def hostname() -> str:
    return socket.gethostname()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped) is not a writer
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[-1].split()[0] not in ("Z", "X")
    except OSError:
        return True


@dataclass(frozen=True)
class Liveness:
    alive: bool
    why: str


def owner_liveness(lock: dict[str, Any]) -> Liveness:
    """Is the owner named in `lock` still running (or about to run again)?"""
    launcher, job_id = lock.get("launcher"), lock.get("job_id")
    if launcher == "slurm" and job_id:
        state = slurm_job_state(str(job_id))
        if state is None:
            return Liveness(False, f"Slurm does not know job {job_id}")
        return Liveness(state.active, f"Slurm job {job_id} is {state.state}")
    pid, host = lock.get("pid"), lock.get("host")
    if not pid:
        return Liveness(False, "no owner process recorded")
    if host != hostname():
        return Liveness(True, f"process {pid} on another host ({host}): cannot check it from {hostname()}")
    alive = _pid_alive(int(pid))
    return Liveness(alive, f"process {pid} on {host} is {'running' if alive else 'gone'}")


def describe_owner(lock: dict[str, Any]) -> str:
    started = lock.get("started_at")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)) if started else "?"
    what = f"{lock.get('launcher')} job {lock.get('job_id')}" if lock.get("job_id") else f"pid {lock.get('pid')}"
    return f"{what} on {lock.get('host')} (since {when})"


def read_lock(stage_dir: Path) -> dict[str, Any] | None:
    path = Path(stage_dir) / LOCK_FILE
    try:
        return read_json(path)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {"unreadable": True}


def _create_exclusive(path: Path, record: dict[str, Any]) -> bool:
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as fh:
        json.dump(record, fh, indent=2, sort_keys=True)
    return True


def acquire(stage_dir: Path, record: dict[str, Any]) -> dict[str, Any] | None:
    """Make `record` (with its `token`) the owner of `stage_dir`; return the lock it replaced, if any.

    Same token: our own lock (a requeued run of our job) — updated. A live other owner: `StageBusy`
    naming it. A dead other owner: taken over, with a warning in the log.
    """
    path = Path(stage_dir) / LOCK_FILE
    record = {**record, "host": record.get("host") or hostname(), "acquired_at": time.time()}
    for _ in range(3):
        if _create_exclusive(path, record):
            return None
        current = read_lock(stage_dir)
        if current is None:
            continue  # released meanwhile: try to create again
        if current.get("token") == record["token"]:
            write_json(path, {**current, **record})
            return current
        liveness = owner_liveness(current) if not current.get("unreadable") else Liveness(False, "unreadable")
        if liveness.alive:
            raise StageBusy(
                f"stage folder {stage_dir} is owned by {describe_owner(current)} ({liveness.why}); refusing "
                f"to start a second writer. Wait for it, or cancel it (scancel {current.get('job_id')}) "
                "and run again"
            )
        log.warning("taking over the stale lock %s of %s: %s", path, describe_owner(current), liveness.why)
        write_json(path, record)
        if (read_lock(stage_dir) or {}).get("token") == record["token"]:
            return current
    raise StageBusy(f"could not take the lock {path}: another run keeps replacing it")


def update(stage_dir: Path, token: str, **fields: Any) -> None:
    """Record more about the owner (its job id once submitted) in a lock we hold."""
    current = read_lock(stage_dir)
    if current is not None and current.get("token") == token:
        write_json(Path(stage_dir) / LOCK_FILE, {**current, **fields})


def release(stage_dir: Path, token: str) -> None:
    """Remove the lock if it is still ours (never someone else's)."""
    current = read_lock(stage_dir)
    if current is not None and current.get("token") == token:
        (Path(stage_dir) / LOCK_FILE).unlink(missing_ok=True)


def job_start(stage_dir: Path, record: dict[str, Any], progress: int | None, max_requeues: int) -> dict[str, Any]:
    """A job (or a requeued run of it) starts on the stage: own the folder and apply the requeue budget.

    `progress` is how far the stage has got (pretrain: the latest checkpoint's iteration). A restart that
    finds the same progress as the previous start counts against `max_requeues`; one that advanced
    resets the count, so a long run may be requeued any number of times while a crash loop stops.
    """
    previous = acquire(stage_dir, record)
    starts = int(previous.get("starts", 0)) if previous and previous.get("token") == record["token"] else 0
    stalled = 0
    if starts:
        before = previous.get("progress") if previous else None
        advanced = progress is not None and (before is None or progress > before)
        stalled = 0 if advanced else int(previous.get("stalled_restarts", 0)) + 1
        log.warning("restart %d of this stage's job (progress %s, at the previous start %s)", starts, progress,
                    before)
    fields = {"starts": starts + 1, "progress": progress, "stalled_restarts": stalled, "started_at": time.time()}
    update(stage_dir, record["token"], **fields)
    if stalled > max_requeues:
        raise RequeueBudgetExceeded(
            f"requeued {stalled} times in a row without progress (still at {progress}); "
            f"launcher.max_requeues={max_requeues}: giving up instead of looping"
        )
    return {**record, **fields}
