"""Sandbox uids: each concurrent run gets a uid of its own, held with a lock file across processes.

A uid per run (not one shared sandbox uid) keeps RLIMIT_NPROC per run, since the kernel counts a limit
against all processes of the uid, and keeps parallel runs from signalling each other. The lock is an flock
on `<lock dir>/<uid>.lock`, so two evaluation jobs on one machine never share a uid, and a crashed holder's
lock is released by the kernel.
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

UID_BASE = 61000
UID_COUNT = 512


def _lock_dir() -> Path:
    path = Path(tempfile.gettempdir()) / "qwen-hpc-sandbox-uids"
    path.mkdir(mode=0o755, exist_ok=True)
    return path


def _lock_path(directory: Path, uid: int) -> Path:
    """The file whose exclusive lock a run holds on `uid` for its whole life, sweep included."""
    return directory / f"{uid}.lock"


@contextmanager
def uid_slot(sweep: bool = True, base: int = UID_BASE, count: int = UID_COUNT,
             wait_s: float = 60.0) -> Iterator[int]:
    """Hold a free uid in [base, base+count) for the block; `sweep` kills what the uid left running."""
    directory = _lock_dir()
    deadline = time.monotonic() + wait_s
    start = (os.getpid() * 31 + time.monotonic_ns()) % count
    while True:
        for offset in range(count):
            uid = base + (start + offset) % count
            fd = os.open(_lock_path(directory, uid), os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            try:
                yield uid
            finally:
                if sweep:
                    kill_uid(uid)
                os.close(fd)
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"no free sandbox uid in [{base}, {base + count}) after {wait_s:.0f}s")
        time.sleep(0.05)


def processes_by_uid(uids: range) -> dict[int, list[int]]:
    """Pids per real uid, for the uids in `uids` that own any (one pass over /proc)."""
    found: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/status", "rb") as handle:
                for line in handle:
                    if line.startswith(b"Uid:"):
                        uid = int(line.split()[1])
                        if uid in uids:
                            found.setdefault(uid, []).append(int(entry.name))
                        break
        except (OSError, ValueError):
            continue
    return found


def processes_of(uid: int) -> list[int]:
    """Pids whose real uid is `uid` (from /proc)."""
    return processes_by_uid(range(uid, uid + 1)).get(uid, [])


def leftover_processes(base: int = UID_BASE, count: int = UID_COUNT) -> dict[int, list[int]]:
    """Processes of slot uids that no run holds: what some run left behind. A uid's processes while its run
    holds the slot's lock (other sandboxes working at the same time, in this process or another) are not
    leftovers; the lock is taken, without waiting, only to look."""
    found, directory = {}, _lock_dir()
    for uid in processes_by_uid(range(base, base + count)):
        fd = os.open(_lock_path(directory, uid), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            pids = processes_of(uid)  # listed again under the lock: the run may have swept it meanwhile
        except BlockingIOError:
            pids = []  # a run holds this uid now
        finally:
            os.close(fd)
        if pids:
            found[uid] = pids
    return found


def kill_uid(uid: int, timeout_s: float = 10.0) -> bool:
    """SIGKILL every process of a slot uid and wait until none is left, zombies included: daemons a run left
    behind in rlimits mode, a fork bomb still forking, or a bwrap namespace still being torn down. A uid is
    only handed to the next run once it owns nothing. The wait is wall time, not a count of rounds: on a
    loaded machine a fork bomb's thousands of processes take seconds to die. False if some outlived it."""
    deadline = time.monotonic() + timeout_s
    while True:
        pids = processes_of(uid)
        if not pids:
            return True
        if time.monotonic() > deadline:
            log.warning("sandbox uid %d still owns %d processes after %.0f s of SIGKILL", uid, len(pids), timeout_s)
            return False
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.01)


def tasks_of_current_user() -> int:
    """Threads owned by the caller's uid, for an RLIMIT_NPROC relative to what already runs."""
    uid = os.getuid()
    total = 0
    for pid in processes_of(uid):
        try:
            total += len(os.listdir(f"/proc/{pid}/task"))
        except OSError:
            continue
    return total
