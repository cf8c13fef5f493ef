"""Per-stage overrides of the launcher's resources (a tokenizer job needs less than pretraining)."""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass
class ResourceOverrides:
    """Unset (None) fields keep the launcher's value."""

    nodes: int | None = None
    tasks_per_node: int | None = None
    gpus_per_node: int | None = None
    cpus_per_task: int | None = None
    mem_gb: float | None = None
    timeout_min: int | None = None
    signal_delay_s: int | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None and value < 0:
                raise ValueError(f"resources.{f.name}={value} must be >= 0")

    def as_dict(self) -> dict[str, float | int]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}
