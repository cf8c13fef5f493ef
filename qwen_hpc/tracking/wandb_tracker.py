"""W&B behind the tracker interface: one run per stage, grouped by experiment, resumable by id.

The run id is stored in the stage directory, so a requeued job continues the same W&B run instead of
starting a new one at step 0 (a common Megatron-LM/torchtitan complaint). Any W&B failure — no
account, no network, a broken service process — is logged and turns this tracker into a no-op: the
stage's results never depend on observation.
"""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

RUN_ID_FILE = "wandb_run_id"


class WandbTracker:
    def __init__(
        self,
        *,
        stage_dir: Path,
        project: str,
        experiment: str,
        stage: str,
        mode: str,
        entity: str | None,
        tags: list[str] | None,
        config: dict[str, Any],
    ) -> None:
        self._run: Any = None
        self.run_id: str | None = None
        try:
            self._start(stage_dir, project, experiment, stage, mode, entity, tags, config)
        except Exception as exc:  # noqa: BLE001 - observation must never stop a stage
            log.warning(
                "W&B disabled for this stage (%s: %s); metrics.jsonl still records everything",
                type(exc).__name__,
                exc,
            )
            self._run = None

    def _start(self, stage_dir, project, experiment, stage, mode, entity, tags, config) -> None:
        import wandb

        from qwen_hpc.utils.io import write_text

        id_file = Path(stage_dir) / RUN_ID_FILE
        run_id = id_file.read_text().strip() if id_file.exists() else uuid.uuid4().hex[:12]
        if not id_file.exists():
            write_text(id_file, run_id + "\n")
        wandb_dir = Path(stage_dir) / "wandb"
        wandb_dir.mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("WANDB_SILENT", "true")
        self._run = wandb.init(
            project=project,
            entity=entity,
            group=experiment,
            name=f"{experiment}/{stage}",
            job_type=stage,
            id=run_id,
            resume="allow",
            mode=mode,
            dir=str(wandb_dir),
            tags=tags,
            config=config,
            settings=wandb.Settings(console="off", x_disable_stats=True, init_timeout=120),
        )
        self.run_id = run_id

    def log(self, metrics: dict[str, Any], step: int | None = None) -> None:
        if self._run is None:
            return
        try:
            self._run.log(metrics, step=step)
        except Exception as exc:  # noqa: BLE001
            log.warning("W&B log failed (%s); disabling W&B for the rest of this stage", exc)
            self._run = None

    def log_table(self, name: str, columns: list[str], rows: list[list[Any]]) -> None:
        if self._run is None:
            return
        try:
            import wandb

            self._run.log({name: wandb.Table(columns=list(columns), data=[list(r) for r in rows])})
        except Exception as exc:  # noqa: BLE001
            log.warning("W&B table log failed (%s); disabling W&B for the rest of this stage", exc)
            self._run = None

    def close(self) -> None:
        if self._run is None:
            return
        try:
            self._run.finish()
        except Exception as exc:  # noqa: BLE001
            log.warning("W&B finish failed: %s", exc)
        self._run = None
