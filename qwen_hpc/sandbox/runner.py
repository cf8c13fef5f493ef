"""Run one program in the sandbox: private directory, scrubbed environment, limits, capped output.

The parent never buffers more than `output_bytes` per stream: it reads the pipes as they fill and stops the
program the moment one stream goes over. It enforces the wall-time limit itself and kills the whole sandbox
(process group; bwrap's pid namespace, or a sweep of the slot uid) on any stop, so nothing outlives a run.
"""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol

from qwen_hpc.sandbox.isolation import BWRAP, Isolation, bwrap_args, isolation
from qwen_hpc.sandbox.limits import SandboxLimits
from qwen_hpc.sandbox.result import SandboxResult, Status
from qwen_hpc.sandbox.slots import tasks_of_current_user, uid_slot

MAIN = "main.py"
CHILD_SOURCE = (Path(__file__).with_name("_child.py")).read_text()
SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"
READ_CHUNK = 1 << 16
EXIT_GRACE_S = 0.5


@dataclass
class _Capture:
    """Output of one stream, kept up to a cap."""

    cap: int
    data: bytearray = field(default_factory=bytearray)
    seen: int = 0

    def add(self, chunk: bytes) -> None:
        self.seen += len(chunk)
        room = self.cap - len(self.data)
        if room > 0:
            self.data += chunk[:room]

    @property
    def over(self) -> bool:
        return self.seen > self.cap

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


@dataclass
class _Outcome:
    """Raw facts about how the process ended, before classification."""

    exit_status: int | None = None          # os.waitstatus_to_exitcode of the top process
    status_line: str = ""                   # last line the child wrote on the status pipe
    wall_exceeded: bool = False
    output_exceeded: str | None = None      # "stdout" / "stderr"
    cpu_s: float = 0.0
    duration_s: float = 0.0
    bwrap_exit: bool = False                # exit status came from bwrap (signal N reads as 128+N)
    lost: str | None = None                 # the supervisor of a pooled run went away: why


def scrubbed_env(workdir: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The only environment a program sees: nothing of the parent's (no tokens, no keys, no paths)."""
    env = {
        "PATH": SAFE_PATH, "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    env.update(extra or {})
    return env


@contextmanager
def _workdir(owner: int | None) -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="qwen-sandbox-")
    try:
        if owner is not None:
            os.chown(path, owner, owner)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _write_files(workdir: str, code: str, files: Mapping[str, bytes | str] | None, owner: int | None) -> None:
    root = Path(workdir)
    for name, content in {**(files or {}), MAIN: code}.items():
        target = (root / name).resolve()
        if not target.is_relative_to(root):
            raise ValueError(f"sandbox file {name!r} would land outside the sandbox directory")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content.encode() if isinstance(content, str) else content)
    if owner is not None:
        for dirpath, dirnames, filenames in os.walk(workdir):
            for name in dirnames + filenames:
                os.chown(os.path.join(dirpath, name), owner, owner)


def child_args(iso: Isolation, workdir: str, limits: SandboxLimits, uid: int | None, status_fd: int,
               site_packages: bool, main: str = MAIN) -> list[str]:
    """The `key=value` arguments `_child.py` reads: limits, uid, directories."""
    rlimits = limits.rlimits()
    if uid is None and os.geteuid() != 0:
        # the kernel counts RLIMIT_NPROC over every task of the uid: allow `nproc` more than run already
        soft, hard = rlimits["RLIMIT_NPROC"]
        extra = tasks_of_current_user()
        rlimits["RLIMIT_NPROC"] = (soft + extra, hard + extra)
    args = [f"rlimit={name}:{soft}:{hard}" for name, (soft, hard) in rlimits.items()]
    args += [f"status_fd={status_fd}", f"workdir={workdir}", f"main={os.path.join(workdir, main)}",
             f"site={int(site_packages)}", f"unshare_net={int(iso.mode != BWRAP and iso.network_isolated)}",
             f"forbid_root={int(iso.mode != BWRAP)}"]
    if uid is not None:
        args += [f"uid={uid}", f"gid={uid}"]
    return args


def _command(iso: Isolation, workdir: str, limits: SandboxLimits, uid: int | None, status_fd: int,
             site_packages: bool, main: str = MAIN) -> list[str]:
    python = [iso.python, "-I", "-S", "-c", CHILD_SOURCE,
              *child_args(iso, workdir, limits, uid, status_fd, site_packages, main)]
    return bwrap_args(iso, workdir) + python if iso.mode == BWRAP else python


class _Handle(Protocol):
    """A running program as `_pump` sees it: has it ended (filling `outcome`), and how to stop it."""

    def poll(self, outcome: _Outcome, block: bool) -> bool: ...

    def kill(self) -> None: ...


@dataclass
class _Direct:
    """A run that is its own process tree (bwrap or the interpreter), started by us."""

    proc: subprocess.Popen[bytes]
    bwrap: bool

    def poll(self, outcome: _Outcome, block: bool) -> bool:
        pid, status, usage = os.wait4(self.proc.pid, 0 if block else os.WNOHANG)
        if pid == 0:
            return False
        outcome.bwrap_exit = self.bwrap
        outcome.exit_status = os.waitstatus_to_exitcode(status)
        outcome.cpu_s = usage.ru_utime + usage.ru_stime
        self.proc.returncode = outcome.exit_status
        return True

    def kill(self) -> None:
        _kill(self.proc)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL a sandbox's process group (bwrap takes its namespace down with it)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _pump(handle: _Handle, stdout_r: int, stderr_r: int, status_r: int, limits: SandboxLimits,
          out: _Capture, err: _Capture) -> _Outcome:
    """Read stdout/stderr/status until the program ends or a limit stops it."""
    outcome = _Outcome()
    start = time.monotonic()
    deadline = start + limits.wall_s
    status = bytearray()
    selector = selectors.DefaultSelector()
    selector.register(stdout_r, selectors.EVENT_READ, out)
    selector.register(stderr_r, selectors.EVENT_READ, err)
    selector.register(status_r, selectors.EVENT_READ, None)
    reaped = False
    reaped_at = 0.0
    try:
        while selector.get_map():
            now = time.monotonic()
            if now > deadline and not reaped:
                outcome.wall_exceeded = True
                break
            if reaped and now - reaped_at > EXIT_GRACE_S:
                break  # something the program left behind holds a pipe open; stop waiting for it
            for key, _ in selector.select(timeout=min(0.1, max(0.0, deadline - now))):
                chunk = os.read(key.fd, READ_CHUNK)
                if not chunk:
                    selector.unregister(key.fd)
                elif key.data is None:
                    status += chunk[:4096]
                else:
                    key.data.add(chunk)
                    if key.data.over:
                        outcome.output_exceeded = "stdout" if key.data is out else "stderr"
            if outcome.output_exceeded:
                break
            if not reaped and handle.poll(outcome, block=False):
                reaped, reaped_at = True, time.monotonic()
    finally:
        selector.close()
        if not reaped:
            handle.kill()
            handle.poll(outcome, block=True)
        else:
            handle.kill()  # anything the program left behind
        outcome.duration_s = time.monotonic() - start
    lines = status.decode(errors="replace").split()
    outcome.status_line = " ".join(lines[-2:]) if lines else ""
    return outcome


def _signal_of(outcome: _Outcome) -> int | None:
    rc = outcome.exit_status
    if rc is None:
        return None
    if rc < 0:
        return -rc
    if outcome.bwrap_exit and rc > 128 and not outcome.status_line:
        return rc - 128  # bwrap reports a child killed by signal N as exit status 128+N
    return None


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip()[:300] if lines else ""


def classify(outcome: _Outcome, limits: SandboxLimits, iso: Isolation, stderr: str) -> tuple[Status, str]:
    """Turn raw facts into a status and a readable reason (order: our own stops first, then the program's)."""
    if outcome.lost:
        return Status.ERROR, f"sandbox supervisor lost: {outcome.lost}"
    if outcome.output_exceeded:
        return Status.OUTPUT_LIMIT, f"{outcome.output_exceeded} exceeded {limits.output_bytes} bytes; stopped"
    if outcome.wall_exceeded:
        return Status.TIMEOUT, f"wall time limit {limits.wall_s:g}s exceeded"
    kind, _, detail = outcome.status_line.partition(" ")
    sig = _signal_of(outcome)
    if kind == "exception" and detail == "MemoryError":
        return Status.MEMORY, f"MemoryError: memory limit {limits.memory_mb} MiB (address space) reached"
    if sig == signal.SIGXCPU or (sig == signal.SIGKILL and outcome.cpu_s >= 0.95 * limits.cpu_s):
        # SIGXCPU comes from RLIMIT_CPU's soft limit; SIGKILL from its hard one (a program ignoring SIGXCPU)
        return Status.TIMEOUT, f"CPU time limit {limits.cpu_s:g}s exceeded"
    if sig is not None:
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        return Status.KILLED, f"killed by {name}" + (f": {_last_line(stderr)}" if stderr.strip() else "")
    if kind == "exception":
        return Status.FAILED, _last_line(stderr) or detail
    if outcome.exit_status == 0:
        return Status.PASSED, "exit status 0" + ("" if kind == "ok" else " (did not run to its last line)")
    if not outcome.status_line and stderr.startswith("bwrap:"):
        return Status.ERROR, f"sandbox failed to start: {_last_line(stderr)}"
    return Status.FAILED, f"exit status {outcome.exit_status}" + (f": {_last_line(stderr)}" if stderr else "")


def _run(code: str, limits: SandboxLimits, files: Mapping[str, bytes | str] | None, stdin: str | None,
         iso: Isolation, site_packages: bool, env: Mapping[str, str] | None) -> SandboxResult:
    with ExitStack() as stack:
        uid = stack.enter_context(uid_slot()) if iso.own_uid else None
        workdir = stack.enter_context(_workdir(uid))
        _write_files(workdir, code, files, uid)
        stdin_file: int | IO[bytes] = subprocess.DEVNULL
        if stdin:
            stdin_file = stack.enter_context(tempfile.TemporaryFile())
            stdin_file.write(stdin.encode())
            stdin_file.seek(0)
        status_r, status_w = os.pipe()
        stack.callback(os.close, status_r)
        try:
            proc = subprocess.Popen(
                _command(iso, workdir, limits, uid, status_w, site_packages), stdin=stdin_file,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=workdir, env=scrubbed_env(workdir, env),
                start_new_session=True, pass_fds=(status_w,))
        finally:
            os.close(status_w)
        with proc:
            assert proc.stdout is not None and proc.stderr is not None
            out, err = _Capture(limits.output_bytes), _Capture(limits.output_bytes)
            outcome = _pump(_Direct(proc, iso.mode == BWRAP), proc.stdout.fileno(), proc.stderr.fileno(), status_r, limits, out, err)
        return _result(outcome, limits, iso, out, err)


def _result(outcome: _Outcome, limits: SandboxLimits, iso: Isolation, out: _Capture,
            err: _Capture) -> SandboxResult:
    stderr = err.text()
    status, reason = classify(outcome, limits, iso, stderr)
    kind, _, detail = outcome.status_line.partition(" ")
    return SandboxResult(
        status=status, reason=reason, returncode=outcome.exit_status, stdout=out.text(), stderr=stderr,
        duration_s=outcome.duration_s, isolation=iso.mode, completed=kind == "ok" and status is Status.PASSED,
        exception=detail if kind == "exception" else None, stdout_truncated=out.over,
        stderr_truncated=err.over)


def run_python(code: str, *, limits: SandboxLimits | None = None, files: Mapping[str, bytes | str] | None = None,
               stdin: str | None = None, isolation_mode: str = "auto", site_packages: bool = False,
               env: Mapping[str, str] | None = None) -> SandboxResult:
    """Run `code` as `main.py` in a fresh sandbox directory (with `files` beside it) and report how it ended.

    `site_packages=False` (the default) starts the interpreter without site-packages, which is faster and
    all benchmark programs need; the code interpreter turns it on for numpy & co. `env` adds variables to
    the scrubbed environment.
    """
    iso = isolation(isolation_mode)
    return _run(code, limits or SandboxLimits(), files, stdin, iso, site_packages, env)


def run_many(programs: list[str], *, limits: SandboxLimits | None = None, workers: int | None = None,
             isolation_mode: str = "auto", site_packages: bool = False, pooled: bool = True) -> list[SandboxResult]:
    """Run independent programs on `workers` parallel sandboxes (default: the usable CPUs); order is kept.

    With bwrap and an own uid the runs go to a `SandboxPool` (warm sandboxes, a fork per run) unless
    `pooled=False`; otherwise each run is a sandbox of its own.
    """
    from qwen_hpc.sandbox.pool import SandboxPool

    iso = isolation(isolation_mode)
    limits = limits or SandboxLimits()
    workers = workers or len(os.sched_getaffinity(0))
    if workers < 1:
        raise ValueError(f"sandbox workers={workers} must be >= 1")
    workers = min(workers, max(1, len(programs)))
    with ExitStack() as stack:
        if pooled and iso.mode == BWRAP and iso.own_uid:
            pool = stack.enter_context(SandboxPool(iso, workers))

            def one(code: str) -> SandboxResult:
                return pool.run(code, limits=limits, site_packages=site_packages)
        else:
            def one(code: str) -> SandboxResult:
                return _run(code, limits, None, None, iso, site_packages, None)
        executor = stack.enter_context(ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sandbox"))
        return list(executor.map(one, programs))


def probe_run(candidate: Isolation) -> tuple[bool, str]:
    """Whether a trivial program runs under `candidate` (used by `isolation()` to pick a mode)."""
    limits = SandboxLimits(cpu_s=5, wall_s=20)
    try:
        result = _run("import sys\nsys.stdout.write('ok')\n", limits, None, None, candidate, False, None)
    except OSError as error:
        return False, str(error)
    if result.status is Status.PASSED and result.stdout == "ok":
        return True, "ok"
    return False, f"{result.status}: {result.reason}"
