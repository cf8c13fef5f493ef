"""Where a stage runs. One dataclass for every launcher so the YAML group can switch with one key."""

from __future__ import annotations

from dataclasses import dataclass, field

LAUNCHER_KINDS = ("local", "slurm", "debug")


@dataclass
class LauncherConfig:
    """`local`: submitit's local executor (a child process per task); `debug`: in this process;
    `slurm`: submitit's Slurm executor. Slurm fields are ignored by the other two.

    The defaults are the default launcher's, `config/launcher/local.yaml` (tests/config/test_defaults.py
    keeps the two equal); `slurm.yaml` states every field of its own."""

    kind: str = "local"
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    nodes: int = 1
    tasks_per_node: int = 1
    gpus_per_node: int = 0
    cpus_per_task: int = 1
    mem_gb: float | None = None
    timeout_min: int = 600
    # seconds before the time limit at which the scheduler sends USR2 (submitit's --signal=USR2@N)
    signal_delay_s: int = 30
    # how many restarts in a row without progress (pretrain: same checkpoint iteration) a job may make before
    # it fails for good; restarts that advanced are not counted (a long run may be requeued without limit)
    max_requeues: int = 3
    additional_sbatch: dict[str, str] = field(default_factory=dict)
    # shell lines run in the sbatch script before the task starts (module load, venv activation ...)
    setup: list[str] = field(default_factory=list)
    poll_interval_s: float = 2.0
    # stream the remote job's stdout/stderr to this terminal while waiting
    stream_logs: bool = True

    def __post_init__(self) -> None:
        if self.kind not in LAUNCHER_KINDS:
            raise ValueError(f"launcher.kind={self.kind!r} must be one of {', '.join(LAUNCHER_KINDS)}")
        for name in ("nodes", "tasks_per_node", "cpus_per_task", "timeout_min"):
            if getattr(self, name) < 1:
                raise ValueError(f"launcher.{name}={getattr(self, name)} must be >= 1")
        if self.gpus_per_node < 0:
            raise ValueError(f"launcher.gpus_per_node={self.gpus_per_node} must be >= 0")
        if self.mem_gb is not None and self.mem_gb <= 0:
            raise ValueError(f"launcher.mem_gb={self.mem_gb} must be positive")
        if not 0 <= self.signal_delay_s < self.timeout_min * 60:
            raise ValueError(
                f"launcher.signal_delay_s={self.signal_delay_s} must be in [0, timeout_min*60="
                f"{self.timeout_min * 60})"
            )
        if self.max_requeues < 0:
            raise ValueError(f"launcher.max_requeues={self.max_requeues} must be >= 0")
        if self.poll_interval_s <= 0:
            raise ValueError(f"launcher.poll_interval_s={self.poll_interval_s} must be positive")
