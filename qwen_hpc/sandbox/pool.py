"""Warm sandboxes for batches: one bwrap sandbox per worker, each run a fork inside it.

Starting bwrap and an interpreter costs more than the typical benchmark program. A pool keeps one
*supervisor* per worker alive inside a bwrap sandbox (same namespaces and read-only root as a single run);
for each run the parent makes a fresh directory and sends the supervisor the run's arguments and its
stdin/stdout/stderr/status pipes over a Unix socket. The supervisor forks; the child applies the rlimits,
drops to the run's own uid (a fresh slot per run, so nothing of one run can touch the next: its directory
is 0700, its leftovers are killed by uid), and runs the program. The supervisor keeps only CAP_SETUID,
CAP_SETGID (to drop) and CAP_KILL (to sweep a finished run's processes); a run cannot signal or trace it.

What runs of one worker share, unlike single runs: the network namespace (loopback only), SysV IPC, and
the sandbox's empty /tmp, which is not writable by runs (TMPDIR is the run's directory).
"""

from __future__ import annotations

import os
import queue
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass

from qwen_hpc.sandbox.isolation import BWRAP, Isolation, bwrap_prefix
from qwen_hpc.sandbox.limits import SandboxLimits
from qwen_hpc.sandbox.result import SandboxResult, Status
from qwen_hpc.sandbox.runner import (
    CHILD_SOURCE,
    _Capture,
    _Outcome,
    _pump,
    _result,
    _write_files,
    child_args,
    scrubbed_env,
)
from qwen_hpc.sandbox.slots import kill_uid, uid_slot

SUPERVISOR_CAPS = ("CAP_SETUID", "CAP_SETGID", "CAP_KILL")
REPLY_TIMEOUT_S = 30.0


class _Supervisor:
    """One warm sandbox: a bwrap'd interpreter serving runs on a socket, one at a time."""

    def __init__(self, iso: Isolation, pool_dir: str) -> None:
        ours, theirs = socket.socketpair()
        caps = [arg for cap in SUPERVISOR_CAPS for arg in ("--cap-add", cap)]
        command = [*bwrap_prefix(iso), "--bind", pool_dir, pool_dir, "--chdir", pool_dir, *caps,
                   iso.python, "-I", "-S", "-c", CHILD_SOURCE, "serve", f"sock_fd={theirs.fileno()}"]
        self.proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, env=scrubbed_env(pool_dir),
                                     pass_fds=(theirs.fileno(),), start_new_session=True)
        theirs.close()
        self.sock = ours
        self.pending = b""
        self.broken = False

    def close(self) -> None:
        self.sock.close()  # the supervisor reads EOF and exits; bwrap takes the namespace down with it
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, 9)
            self.proc.wait()


@dataclass
class _Pooled:
    """A run inside a supervisor, as `_pump` sees it: the reply on the socket says it ended."""

    supervisor: _Supervisor
    uid: int
    done: bool = False

    def poll(self, outcome: _Outcome, block: bool) -> bool:
        sock = self.supervisor.sock
        sock.settimeout(REPLY_TIMEOUT_S if block else 0.0)
        while b"\n" not in self.supervisor.pending:
            try:
                chunk = sock.recv(256)
            except (BlockingIOError, InterruptedError):
                return False
            except OSError as error:  # includes the timeout
                return self._lost(outcome, f"no reply ({error})")
            if not chunk:
                return self._lost(outcome, f"supervisor exited ({self.supervisor.proc.poll()})")
            self.supervisor.pending += chunk
        line, _, self.supervisor.pending = self.supervisor.pending.partition(b"\n")
        code, cpu = line.split()
        outcome.exit_status, outcome.cpu_s = int(code), float(cpu)
        self.done = True
        return True

    def _lost(self, outcome: _Outcome, why: str) -> bool:
        self.supervisor.broken = True
        outcome.lost = why
        self.done = True
        return True

    def kill(self) -> None:
        if not self.done:
            kill_uid(self.uid)  # from outside: the run's processes are visible here too


class SandboxPool:
    """`workers` warm bwrap sandboxes; `run` is thread-safe and blocks until a worker is free.

    Needs bwrap with an own uid (root); `run_many` uses it automatically when that is what `isolation()`
    found, and falls back to one sandbox per run otherwise.
    """

    def __init__(self, iso: Isolation, workers: int) -> None:
        if iso.mode != BWRAP or not iso.own_uid:
            raise ValueError(f"a sandbox pool needs bwrap with an own uid; isolation here: {iso.reason}")
        self.iso = iso
        self.workers = workers
        self.dir = tempfile.mkdtemp(prefix="qwen-sandbox-pool-")
        os.chmod(self.dir, 0o711)  # runs may reach their own subdirectory, not list the others
        self._free: queue.SimpleQueue[_Supervisor] = queue.SimpleQueue()
        self._all: list[_Supervisor] = []
        self._lock = threading.Lock()
        self._closed = False

    def __enter__(self) -> SandboxPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _acquire(self) -> _Supervisor:
        with self._lock:
            if self._closed:
                raise RuntimeError("sandbox pool is closed")
            if len(self._all) < self.workers:
                supervisor = _Supervisor(self.iso, self.dir)
                self._all.append(supervisor)
                return supervisor
        return self._free.get()

    def _release(self, supervisor: _Supervisor) -> None:
        if supervisor.broken or supervisor.proc.poll() is not None:
            with self._lock:
                self._all.remove(supervisor)
            supervisor.close()
            return
        self._free.put(supervisor)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            supervisors, self._all = self._all, []
        for supervisor in supervisors:
            supervisor.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def run(self, code: str, *, limits: SandboxLimits | None = None,
            files: Mapping[str, bytes | str] | None = None, stdin: str | None = None,
            site_packages: bool = False) -> SandboxResult:
        """Like `run_python`, on a warm worker. A worker that died (nothing a run can do to it, but the
        OOM killer can) is replaced and the run retried once on a fresh one."""
        limits = limits or SandboxLimits()
        for attempt in range(2):
            supervisor = self._acquire()
            try:
                result = self._run(supervisor, code, limits, files, stdin, site_packages)
            finally:
                self._release(supervisor)
            if not (supervisor.broken and result.status is Status.ERROR) or attempt:
                return result
        raise AssertionError("unreachable")

    def _run(self, supervisor: _Supervisor, code: str, limits: SandboxLimits,
             files: Mapping[str, bytes | str] | None, stdin: str | None, site_packages: bool) -> SandboxResult:
        with ExitStack() as stack:
            uid = stack.enter_context(uid_slot(sweep=False))
            workdir = tempfile.mkdtemp(dir=self.dir)
            stack.callback(shutil.rmtree, workdir, True)
            os.chown(workdir, uid, uid)
            _write_files(workdir, code, files, uid)
            stdin_file = stack.enter_context(tempfile.TemporaryFile() if stdin else open(os.devnull, "rb"))
            if stdin:
                stdin_file.write(stdin.encode())
                stdin_file.seek(0)
            pipes = [os.pipe() for _ in range(3)]
            for read_end, _ in pipes:
                stack.callback(os.close, read_end)
            try:
                message = "\0".join(child_args(self.iso, workdir, limits, uid, 3, site_packages)).encode()
                socket.send_fds(supervisor.sock, [message], [stdin_file.fileno(), *(w for _, w in pipes)])
            except OSError as error:
                supervisor.broken = True
                outcome = _Outcome(lost=f"could not send the run ({error})")
                return _result(outcome, limits, self.iso, _Capture(1), _Capture(1))
            finally:
                for _, write_end in pipes:
                    os.close(write_end)
            out, err = _Capture(limits.output_bytes), _Capture(limits.output_bytes)
            handle = _Pooled(supervisor, uid)
            outcome = _pump(handle, pipes[0][0], pipes[1][0], pipes[2][0], limits, out, err)
            return _result(outcome, limits, self.iso, out, err)
