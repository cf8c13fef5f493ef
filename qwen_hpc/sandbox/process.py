"""A long-lived sandboxed interpreter (the code interpreter's Jupyter kernel), under the same isolation and
limits as `run_python` but not waited for: the caller talks to it, checks it is alive and kills it.

Output goes to log files in a directory the sandbox cannot see (no pipe can fill up and block the
program); the slot uid is held for the process's whole life and swept when it is killed.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Mapping
from contextlib import ExitStack
from pathlib import Path

from qwen_hpc.sandbox.isolation import isolation
from qwen_hpc.sandbox.limits import SandboxLimits
from qwen_hpc.sandbox.runner import _command, _kill, scrubbed_env
from qwen_hpc.sandbox.slots import kill_uid, uid_slot

LAUNCH = ".sandbox-main.py"


class SandboxProcess:
    def __init__(self, code: str, *, workdir: str | Path, limits: SandboxLimits, site_packages: bool,
                 env: Mapping[str, str] | None, isolation_mode: str) -> None:
        self.iso = isolation(isolation_mode)
        self.workdir = Path(workdir).resolve()
        self._stack = ExitStack()
        self.uid = self._stack.enter_context(uid_slot()) if self.iso.own_uid else None
        self._logs = Path(tempfile.mkdtemp(prefix="qwen-sandbox-logs-"))
        (self.workdir / LAUNCH).write_text(code)
        self.give(self.workdir)
        status_r, status_w = os.pipe()
        self._status_r = status_r
        out = open(self._logs / "stdout", "wb")  # noqa: SIM115 - handed to the child, closed below
        err = open(self._logs / "stderr", "wb")  # noqa: SIM115
        try:
            self.proc = subprocess.Popen(
                _command(self.iso, str(self.workdir), limits, self.uid, status_w, site_packages, LAUNCH),
                stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=self.workdir,
                env=scrubbed_env(str(self.workdir), env), start_new_session=True, pass_fds=(status_w,))
        finally:
            os.close(status_w)
            out.close()
            err.close()

    def give(self, path: str | Path) -> None:
        """Hand a file or directory (recursively) to the sandbox's uid, so the program can use it."""
        if self.uid is None:
            return
        path = Path(path)
        os.chown(path, self.uid, self.uid)
        if path.is_dir():
            for dirpath, dirnames, filenames in os.walk(path):
                for name in dirnames + filenames:
                    os.chown(os.path.join(dirpath, name), self.uid, self.uid)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stderr(self, tail: int = 4000) -> str:
        try:
            return (self._logs / "stderr").read_bytes()[-tail:].decode("utf-8", errors="replace")
        except OSError:
            return ""

    def describe_exit(self) -> str:
        rc = self.proc.poll()
        last = [line for line in self.stderr().splitlines() if line.strip()]
        why = f"exit status {rc}" if rc is not None and rc >= 0 else f"signal {-rc}" if rc is not None else "running"
        return why + (f": {last[-1][:200]}" if last else "")

    def kill(self) -> None:
        _kill(self.proc)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        if self.uid is not None:
            kill_uid(self.uid)
        os.close(self._status_r)
        self._stack.close()
        for name in ("stdout", "stderr"):
            (self._logs / name).unlink(missing_ok=True)
        self._logs.rmdir()


def spawn_python(code: str, *, workdir: str | Path, limits: SandboxLimits | None = None,
                 site_packages: bool = True, env: Mapping[str, str] | None = None,
                 isolation_mode: str = "auto") -> SandboxProcess:
    """Start `code` in the sandbox with `workdir` as its private, writable directory, and return at once."""
    return SandboxProcess(code, workdir=workdir, limits=limits or SandboxLimits(), site_packages=site_packages,
                          env=env, isolation_mode=isolation_mode)
