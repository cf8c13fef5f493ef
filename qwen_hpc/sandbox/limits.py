"""Resource limits of one sandboxed run, and the rlimits that enforce them in the child."""

from __future__ import annotations

import resource
from dataclasses import asdict, dataclass

MIB = 1 << 20


@dataclass(frozen=True)
class SandboxLimits:
    """Per-run budget. Every limit is enforced by the kernel (rlimits) or by the parent's watchdog.

    cpu_s: CPU seconds (RLIMIT_CPU); wall_s: wall-clock seconds, enforced by the parent, which kills the
    whole sandbox; memory_mb: address space (RLIMIT_AS) of each process; file_size_mb: largest file the
    program may write (RLIMIT_FSIZE); nproc: processes/threads the sandbox user may own (RLIMIT_NPROC, only
    meaningful when the sandbox runs under its own uid, see `isolation()`); output_bytes: stdout and stderr
    are each kept up to this many bytes, and a program that writes more is stopped.
    """

    cpu_s: float = 10.0
    wall_s: float = 20.0
    memory_mb: int = 2048
    file_size_mb: int = 64
    nproc: int = 32
    output_bytes: int = 1 << 20

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not value > 0:
                raise ValueError(f"sandbox limit {name}={value!r} must be > 0")

    def rlimits(self) -> dict[str, tuple[int, int]]:
        """The (soft, hard) rlimits the child sets on itself before running the program.

        The CPU hard limit is one second above the soft one: the soft limit delivers SIGXCPU (reported as a
        timeout), the hard one SIGKILLs a program that ignores it. Core dumps are off.
        """
        cpu = max(1, int(round(self.cpu_s)))
        return {
            "RLIMIT_CPU": (cpu, cpu + 1),
            "RLIMIT_AS": (self.memory_mb * MIB, self.memory_mb * MIB),
            "RLIMIT_FSIZE": (self.file_size_mb * MIB, self.file_size_mb * MIB),
            "RLIMIT_NPROC": (self.nproc, self.nproc),
            "RLIMIT_CORE": (0, 0),
        }


def rlimit_number(name: str) -> int:
    """The platform's number of an RLIMIT_* name (the child receives names, not numbers, in its config)."""
    return int(getattr(resource, name))
