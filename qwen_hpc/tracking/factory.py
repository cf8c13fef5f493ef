"""Build the tracker a stage logs through: JSONL always, W&B when enabled, nothing on other ranks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qwen_hpc.tracking.base import NullTracker, Tracker
from qwen_hpc.tracking.jsonl import JsonlTracker

METRICS_FILE = "metrics.jsonl"


class MultiTracker:
    def __init__(self, trackers: list[Any]) -> None:
        self.trackers = trackers

    def log(self, metrics: dict[str, Any], step: int | None = None) -> None:
        for tracker in self.trackers:
            tracker.log(metrics, step)

    def log_table(self, name: str, columns: list[str], rows: list[list[Any]]) -> None:
        for tracker in self.trackers:
            tracker.log_table(name, columns, rows)

    def log_html(self, name: str, page: str) -> None:
        for tracker in self.trackers:
            tracker.log_html(name, page)

    def close(self) -> None:
        for tracker in self.trackers:
            tracker.close()


def make_tracker(
    *,
    logger_kind: str,
    logger_settings: dict[str, Any],
    stage_dir: Path,
    experiment: str,
    stage: str,
    rank: int,
    config: dict[str, Any],
) -> Tracker:
    if rank != 0:
        return NullTracker()
    trackers: list[Any] = [JsonlTracker(Path(stage_dir) / METRICS_FILE, stage)]
    if logger_kind == "wandb" and logger_settings.get("mode") != "disabled":
        from qwen_hpc.tracking.wandb_tracker import WandbTracker

        trackers.append(
            WandbTracker(
                stage_dir=stage_dir,
                project=logger_settings["project"],
                experiment=experiment,
                stage=stage,
                mode=logger_settings["mode"],
                entity=logger_settings.get("entity"),
                tags=logger_settings.get("tags"),
                config=config,
            )
        )
    return MultiTracker(trackers)


def summarize_into_stage_run(
    *,
    logger_kind: str,
    logger_settings: dict[str, Any],
    target_stage_dir: Path,
    own_stage_dir: Path,
    experiment: str,
    metrics: dict[str, Any],
) -> bool:
    """Write `metrics` into the summary of another stage's W&B run (the pretrain run, for evaluations):
    so a person who opens the training run sees its evals. The update is written under this stage's own
    folder (`own_stage_dir/wandb`); the target stage's folder is only read (its run id)."""
    if logger_kind != "wandb" or logger_settings.get("mode") == "disabled":
        return False
    from qwen_hpc.tracking.wandb_tracker import RUN_ID_FILE, update_run_summary

    id_file = Path(target_stage_dir) / RUN_ID_FILE
    if not id_file.exists():
        return False
    return update_run_summary(
        run_id=id_file.read_text().strip(),
        wandb_dir=Path(own_stage_dir) / "wandb",
        project=logger_settings["project"],
        experiment=experiment,
        mode=logger_settings["mode"],
        entity=logger_settings.get("entity"),
        metrics=metrics,
    )
