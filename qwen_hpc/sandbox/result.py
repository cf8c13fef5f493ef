"""What one sandboxed run produced: a status a caller can branch on, a reason a person can read."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    """Outcome of a run. `passed` means exit status 0; everything else names what stopped it."""

    PASSED = "passed"          # exited with status 0
    FAILED = "failed"          # non-zero exit or an uncaught exception
    TIMEOUT = "timeout"        # CPU-time or wall-time limit
    MEMORY = "memory"          # MemoryError / address-space limit
    OUTPUT_LIMIT = "output_limit"  # wrote more than `output_bytes` to stdout or stderr
    KILLED = "killed"          # died of a signal we did not send for a limit
    ERROR = "error"            # the sandbox itself could not start the program


@dataclass
class SandboxResult:
    """One run. `completed` is True only when the program ran to its last line (sys.exit(0) or os._exit(0)
    part-way count as `passed` but not `completed`); benchmark checks require both."""

    status: Status
    reason: str
    returncode: int | None
    stdout: str
    stderr: str
    duration_s: float
    isolation: str
    completed: bool = False
    exception: str | None = None
    stdout_truncated: bool = False
    stderr_truncated: bool = False

    @property
    def passed(self) -> bool:
        return self.status is Status.PASSED

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["status"] = str(self.status)
        return record
