"""W&B behind the tracker interface: one run per stage, grouped by experiment, resumable by id.

The run id is stored in the stage directory, so a requeued job continues the same W&B run (same id,
`resume="allow"`) instead of starting a new one at step 0 (a common Megatron-LM/torchtitan complaint).
The step axis is the caller's (pretrain: the iteration, which a resumed job continues from its
checkpoint); a resumed job logs only steps above the highest one W&B already holds for the run (offline:
read back from the earlier `offline-run-*` directories, `wandb_records`; online: the run's starting
step), so steps a killed job had logged past its last checkpoint are not logged a second time when the
resumed job recomputes them, and steps it had not yet written are not lost. Offline, each start of the job writes its own `offline-run-<time>-<id>` directory; all of them
carry the one id, and `wandb sync` uploads the directories of one id as one run, in start order.

Evaluation stages also write their headline numbers into the *pretrain* run's summary
(`update_run_summary`): they resume that run by its id for a moment — online that updates it in place,
offline it leaves a summary-only directory with the pretrain run's id in the evaluating stage's own
folder, which `wandb sync` merges into the same run.

Any W&B failure — no account, no network, a broken service process — is logged and turns this tracker
into a no-op: the stage's results never depend on observation.
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
        self.last_step = -1
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
        # the id file outlives a killed job and only a killed job (a changed config moves the stage folder
        # aside, stages/runner.prepare_stage_dir): when it is there, this start resumes the run
        resuming = id_file.exists()
        run_id = id_file.read_text().strip() if resuming else uuid.uuid4().hex[:12]
        if not resuming:
            write_text(id_file, run_id + "\n")
        wandb_dir = Path(stage_dir) / "wandb"
        wandb_dir.mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("WANDB_SILENT", "true")
        if mode == "offline":
            from qwen_hpc.tracking.wandb_records import last_written_step

            try:
                self.last_step = last_written_step(stage_dir, run_id)
            except (OSError, ValueError) as exc:
                log.warning("could not read the earlier offline W&B records of run %s: %s", run_id, exc)
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
        if mode != "offline":  # the server knows where a resumed run stands
            self.last_step = max(self.last_step, int(getattr(self._run, "starting_step", 0) or 0) - 1)
        if resuming:  # also when W&B wrote nothing before the kill (last_step -1): every logged step counts
            self._backfill(Path(stage_dir) / "metrics.jsonl")
            log.info("W&B run %s resumed: logging steps after %d", run_id, self.last_step)

    def _backfill(self, metrics_file: Path) -> None:
        """Steps the killed job wrote to metrics.jsonl (synchronously) but W&B had not written yet (its
        writer died with the job): log them now, so no step is missing from the run. Steps the resumed job
        will recompute (after its checkpoint) are then skipped live, so none is logged twice."""
        from qwen_hpc.utils.io import read_jsonl

        by_step: dict[int, dict[str, Any]] = {}
        for record in read_jsonl(metrics_file):  # [] if absent; a line torn by the kill is skipped
            step = record.get("step")
            if not isinstance(step, int) or step <= self.last_step or "table" in record:
                continue
            by_step.setdefault(step, {}).update(
                {k: v for k, v in record.items() if k not in ("stage", "time", "step")})
        for step in sorted(by_step):
            self._run.log(by_step[step], step=step)
            self.last_step = step
        if by_step:
            log.info("W&B: %d steps from metrics.jsonl the interrupted job had not written", len(by_step))

    def log(self, metrics: dict[str, Any], step: int | None = None) -> None:
        if self._run is None:
            return
        if step is not None and step <= self.last_step:
            return  # logged by an earlier run of this job before it was killed: never twice
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

    def log_html(self, name: str, page: str) -> None:
        """A whole page (the report) as an HTML media panel of this run, so the W&B UI shows it as it is."""
        if self._run is None:
            return
        try:
            import wandb

            self._run.log({name: wandb.Html(page, inject=False)})
        except Exception as exc:  # noqa: BLE001
            log.warning("W&B html log failed (%s); disabling W&B for the rest of this stage", exc)
            self._run = None

    def close(self) -> None:
        if self._run is None:
            return
        try:
            self._run.finish()
        except Exception as exc:  # noqa: BLE001
            log.warning("W&B finish failed: %s", exc)
        self._run = None


def update_run_summary(
    *,
    run_id: str,
    wandb_dir: Path,
    project: str,
    experiment: str,
    mode: str,
    entity: str | None,
    metrics: dict[str, Any],
) -> bool:
    """Add `metrics` to the summary of the existing run `run_id` (resumed for this update only)."""
    try:
        import wandb

        Path(wandb_dir).mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("WANDB_SILENT", "true")
        run = wandb.init(
            project=project,
            entity=entity,
            group=experiment,
            id=run_id,
            resume="allow",
            mode=mode,
            dir=str(wandb_dir),
            reinit="create_new",
            settings=wandb.Settings(console="off", x_disable_stats=True, init_timeout=120),
        )
        run.summary.update(metrics)
        run.finish()
        return True
    except Exception as exc:  # noqa: BLE001 - observation must never stop a stage
        log.warning("could not add %d metrics to W&B run %s (%s: %s)", len(metrics), run_id,
                    type(exc).__name__, exc)
        return False
