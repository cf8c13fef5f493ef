"""Which isolation this machine gives the sandbox, found by probing once per process.

bubblewrap (`bwrap`) gives namespaces: no network, a private pid namespace (the program sees neither the
parent nor any other process, and everything it started dies with it), a read-only view of `/`, private
/tmp, /dev and /proc. When the parent is root, the program also runs under a uid of its own (a "slot"),
which is what makes RLIMIT_NPROC bite (the kernel never applies it to root) and keeps the program from
signalling or reading anything of root's. Without bwrap, or when a probe shows the kernel refuses its
namespaces, the sandbox falls back to rlimits (+ own uid and a network namespace where root allows), and
says so: `isolation()` reports the mode and why.
"""

from __future__ import annotations

import functools
import os
import shutil
import stat
import sys
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path

BWRAP = "bwrap"
RLIMITS = "rlimits"
MODES = ("auto", BWRAP, RLIMITS)

REQUIRED_BWRAP_FLAGS = ("--die-with-parent", "--unshare-net", "--unshare-pid")
OPTIONAL_BWRAP_FLAGS = ("--unshare-ipc", "--unshare-uts", "--new-session")
UID_FLAGS = ("--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID")


@dataclass(frozen=True)
class Isolation:
    """What a run gets. `mode` is "bwrap" or "rlimits"; the booleans say which protections are active."""

    mode: str
    python: str
    bwrap: str | None = None
    flags: tuple[str, ...] = ()
    own_uid: bool = False         # runs under a slot uid: nproc limit applies, cannot touch root's things
    network_isolated: bool = False
    pid_namespace: bool = False
    readonly_root: bool = False
    reason: str = ""
    hidden: tuple[str, ...] = field(default=())  # dirs replaced by an empty tmpfs (interpreter rebound)

    def describe(self) -> dict[str, object]:
        return {
            "mode": self.mode, "python": self.python, "bwrap": self.bwrap, "flags": list(self.flags),
            "own_uid": self.own_uid, "network_isolated": self.network_isolated,
            "pid_namespace": self.pid_namespace, "readonly_root": self.readonly_root, "reason": self.reason,
        }


def interpreter_roots(python: str) -> list[str]:
    """Directories the interpreter needs: its prefix(es) and the real location of the executable."""
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    roots.add(str(Path(os.path.realpath(python)).parent.parent))
    roots.add(str(Path(python).absolute().parent.parent))
    return sorted(roots)


def _closed_ancestor(path: str) -> str | None:
    """The top-most directory on `path` that other users cannot traverse (mode lacks o+x), if any."""
    current = Path("/")
    for part in Path(path).parts[1:]:
        current = current / part
        try:
            mode = current.stat().st_mode
        except OSError:
            return None
        if stat.S_ISDIR(mode) and not mode & stat.S_IXOTH:
            return str(current)
    return None


def reachable_by_others(python: str) -> bool:
    """Whether an unprivileged uid can run `python` from where it is (no rebinding, as in rlimits mode)."""
    return all(_closed_ancestor(root) is None for root in interpreter_roots(python))


def bwrap_args(iso: Isolation, workdir: str) -> list[str]:
    """The bwrap command prefix for one run whose private directory is `workdir`."""
    args = list(bwrap_prefix(iso)) + ["--bind", workdir, workdir, "--chdir", workdir]
    if iso.own_uid:
        args += list(UID_FLAGS)
    return args


@functools.lru_cache(maxsize=16)
def bwrap_prefix(iso: Isolation) -> tuple[str, ...]:
    """The part of the bwrap command that does not depend on the run (computed once per isolation)."""
    args = [iso.bwrap or BWRAP, *iso.flags, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
            "--tmpfs", "/tmp"]
    for hidden in iso.hidden:
        args += ["--tmpfs", hidden]
    made: set[Path] = set()
    # an interpreter under a directory that a tmpfs now covers (a hidden one, or /tmp itself: a venv made
    # under /tmp) is bound back read-only, or the sandbox could not start it
    covering = [Path("/tmp"), *map(Path, iso.hidden)]
    for root in interpreter_roots(iso.python):
        covers = [c for c in covering if Path(root).is_relative_to(c)]
        if not covers:
            continue
        innermost = max(covers, key=lambda c: len(c.parts))
        # bwrap would create the directories between the tmpfs and the bind as 0700: make them 0755
        for parent in reversed(Path(root).parents):
            if parent.is_relative_to(innermost) and parent != innermost and parent not in made:
                args += ["--perms", "0755", "--dir", str(parent)]
                made.add(parent)
        args += ["--ro-bind", root, root]
    return tuple(args)


def _bwrap_candidate(bwrap: str, python: str, flags: tuple[str, ...], own_uid: bool) -> Isolation:
    hidden: tuple[str, ...] = ()
    if own_uid:
        closed = {_closed_ancestor(root) for root in interpreter_roots(python)} - {None}
        hidden = tuple(sorted(c for c in closed if c not in ("/", "/tmp")))  # type: ignore[misc]
    return Isolation(mode=BWRAP, python=python, bwrap=bwrap, flags=flags, own_uid=own_uid,
                     network_isolated=True, pid_namespace=True, readonly_root=True, hidden=hidden)


def _probe_bwrap(python: str) -> tuple[Isolation | None, str]:
    """Try the full flag set, then the required flags, then without the own uid; the first that runs wins."""
    from qwen_hpc.sandbox.runner import probe_run

    bwrap = shutil.which(BWRAP)
    if bwrap is None:
        return None, "bwrap not found on PATH"
    root = os.geteuid() == 0
    attempts = [(REQUIRED_BWRAP_FLAGS + OPTIONAL_BWRAP_FLAGS, root), (REQUIRED_BWRAP_FLAGS, root)]
    if root:
        attempts.append((REQUIRED_BWRAP_FLAGS, False))
    failures = []
    for flags, own_uid in attempts:
        candidate = _bwrap_candidate(bwrap, python, flags, own_uid)
        ok, detail = probe_run(candidate)
        if ok:
            dropped = [f for f in OPTIONAL_BWRAP_FLAGS if f not in flags]
            notes = [f"bwrap probe passed with {' '.join(flags)}"]
            if dropped:
                notes.append(f"without {' '.join(dropped)}")
            if root and not own_uid:
                notes.append("without an own uid (nproc limit not enforced)")
            if failures:
                notes.append("after failures: " + "; ".join(failures))
            return candidate, ", ".join(notes)
        failures.append(f"[{' '.join(flags)}{' +uid' if own_uid else ''}] {detail}")
    return None, "bwrap probes failed: " + "; ".join(failures)


def _probe_rlimits(python: str, why: str) -> Isolation:
    """rlimits-only mode. As root it insists on an own uid: a root program outside namespaces could
    kill(-1) every process on the machine, so without one it refuses instead of running."""
    from qwen_hpc.sandbox.runner import probe_run

    root = os.geteuid() == 0
    notes = [why, "no mount or pid namespace: world-writable dirs (/tmp, /dev/shm) stay writable"]
    if root and not reachable_by_others(python):
        raise RuntimeError(
            f"sandbox: {why}; and rlimits mode cannot run {python} under an unprivileged uid (a parent "
            "directory is closed to other users), and will not run model-written code as root. Install "
            "bubblewrap (apt-get install bubblewrap) or use an interpreter other users can read.")
    if not root:
        notes.append("not root: runs under the caller's uid (it could signal the caller's processes; "
                     "nproc counts all of them)")
    candidate = Isolation(mode=RLIMITS, python=python, own_uid=root, network_isolated=root)
    if root:
        ok, detail = probe_run(candidate)
        if not ok:
            notes.append(f"no network namespace ({detail})")
            candidate = replace(candidate, network_isolated=False)
    return replace(candidate, reason="; ".join(notes))


_CACHE: dict[tuple[str, str], Isolation] = {}
_LOCK = threading.Lock()


def isolation(mode: str = "auto", python: str | None = None) -> Isolation:
    """The isolation runs get for `mode` ("auto" prefers bwrap), probed once per process and cached.

    Asking for "bwrap" explicitly on a machine where it does not work raises, rather than silently running
    model-written code with less protection than the caller asked for.
    """
    if mode not in MODES:
        raise ValueError(f"sandbox isolation={mode!r}: expected one of {', '.join(MODES)}")
    python = python or sys.executable
    key = (mode, python)
    with _LOCK:
        if key not in _CACHE:
            if mode == RLIMITS:
                _CACHE[key] = _probe_rlimits(python, "rlimits requested")
            else:
                found, why = _probe_bwrap(python)
                if found is not None:
                    _CACHE[key] = replace(found, reason=why)
                elif mode == BWRAP:
                    raise RuntimeError(f"sandbox isolation=bwrap requested but unavailable: {why}")
                else:
                    _CACHE[key] = _probe_rlimits(python, why)
        return _CACHE[key]

