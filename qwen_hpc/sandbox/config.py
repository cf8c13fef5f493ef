"""`sandbox:` block of a stage config (e.g. `evaluate.sandbox`), typed; embed it as a dataclass field."""

from __future__ import annotations

from dataclasses import dataclass

from qwen_hpc.sandbox.isolation import MODES
from qwen_hpc.sandbox.limits import SandboxLimits
from qwen_hpc.utils.config_fields import runtime


@dataclass
class SandboxConfig:
    """Limits per run plus how many run at once. `isolation`: auto (bwrap if it works here), bwrap (fail
    if it does not), rlimits (no namespaces)."""

    cpu_s: float = 10.0
    wall_s: float = 20.0
    memory_mb: int = 2048
    file_size_mb: int = 64
    nproc: int = 32
    output_bytes: int = 1 << 20
    workers: int | None = runtime(None)  # how many at once: never part of a stage's config hash
    isolation: str = "auto"

    def __post_init__(self) -> None:
        if self.isolation not in MODES:
            raise ValueError(f"sandbox.isolation={self.isolation!r}: expected one of {', '.join(MODES)}")
        if self.workers is not None and self.workers < 1:
            raise ValueError(f"sandbox.workers={self.workers} must be >= 1 (or null for the CPU count)")
        self.limits  # noqa: B018 - validates the limits now, naming the key

    @property
    def limits(self) -> SandboxLimits:
        return SandboxLimits(cpu_s=self.cpu_s, wall_s=self.wall_s, memory_mb=self.memory_mb,
                             file_size_mb=self.file_size_mb, nproc=self.nproc, output_bytes=self.output_bytes)
