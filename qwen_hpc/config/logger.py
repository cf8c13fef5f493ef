"""Observation settings: metrics.jsonl is always written; W&B is offline unless the user opts in."""

from __future__ import annotations

from dataclasses import dataclass

LOGGER_KINDS = ("wandb", "none")
WANDB_MODES = ("offline", "online", "disabled")


@dataclass
class LoggerConfig:
    kind: str = "wandb"
    project: str = "qwen-hpc"
    entity: str | None = None
    mode: str = "offline"
    tags: list[str] | None = None

    def __post_init__(self) -> None:
        if self.kind not in LOGGER_KINDS:
            raise ValueError(f"logger.kind={self.kind!r} must be one of {', '.join(LOGGER_KINDS)}")
        if self.mode not in WANDB_MODES:
            raise ValueError(f"logger.mode={self.mode!r} must be one of {', '.join(WANDB_MODES)}")
