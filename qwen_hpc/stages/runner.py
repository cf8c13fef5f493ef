"""Run one stage under the contract: skip when current, track, mark done. Same code in every launcher."""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qwen_hpc.config.compose import typed_config
from qwen_hpc.config.schema import QwenConfig
from qwen_hpc.launch.distributed import ensure_process_group, job_rank
from qwen_hpc.launch.job import FolderClaim
from qwen_hpc.launch.submit import effective_launcher
from qwen_hpc.outputs import MARKER, STARTED
from qwen_hpc.stages.base import (
    StageContext,
    StageModule,
    StageResult,
    config_hash,
    lineage,
    marker_is_current,
    run_dir,
    stage_dir,
    upstream_lineages,
    write_marker,
)
from qwen_hpc.stages.registry import get_stage
from qwen_hpc.tracking.factory import make_tracker, summarize_into_stage_run
from qwen_hpc.utils.io import read_json, write_json

log = logging.getLogger(__name__)


# evaluations of the pretrained model: their headline numbers also go into the pretrain run's W&B summary
SUMMARIZED_INTO_PRETRAIN = ("evaluate", "long_context")


class StageInputError(RuntimeError):
    """An upstream stage has not finished: nothing to run on."""


def _current_lineage(module: StageModule, cfg: QwenConfig, plain: dict[str, Any]) -> tuple[str, str, dict]:
    try:
        inputs = upstream_lineages(module, cfg)
    except FileNotFoundError as exc:  # an input folder named in the config is missing
        raise StageInputError(str(exc)) from exc
    missing = [name for name, value in inputs.items() if value is None]
    if missing:
        raise StageInputError(
            f"stage {module.NAME!r} needs {', '.join(missing)} first: no "
            + ", ".join(str(stage_dir(cfg, m) / MARKER) for m in missing)
        )
    cfg_hash = config_hash(module, plain)
    return cfg_hash, lineage(cfg_hash, inputs), inputs


def check_ready(stage: str, plain: dict[str, Any], cfg: QwenConfig) -> tuple[bool, str]:
    """(up_to_date, lineage): called by the submitter before any job is submitted."""
    module = get_stage(stage)
    _, lin, _ = _current_lineage(module, cfg, plain)
    return marker_is_current(stage_dir(cfg, stage) / MARKER, lin), lin


def prepare_stage_dir(stage: str, cfg: QwenConfig, expected_lineage: str) -> None:
    """Keep, never delete, a stage folder made with another config: move it aside so the new run
    starts clean (no stale shards, no checkpoint of a different model resumed by accident)."""
    sdir = stage_dir(cfg, stage)
    recorded = None
    for name in (MARKER, STARTED):
        if (sdir / name).exists():
            try:
                recorded = read_json(sdir / name).get("lineage")
            except (OSError, ValueError):
                recorded = "unreadable"
            break
    if recorded is not None and recorded != expected_lineage:
        aside = sdir.with_name(f"{stage}.superseded-{time.strftime('%Y%m%d-%H%M%S')}")
        log.warning("config of stage %s changed: moving %s to %s", stage, sdir, aside)
        shutil.move(str(sdir), str(aside))
    sdir.mkdir(parents=True, exist_ok=True)
    if not (sdir / STARTED).exists():
        write_json(sdir / STARTED, {"lineage": expected_lineage, "time": time.time()})


def run_stage(
    stage: str, plain: dict[str, Any], *, should_stop: Callable[[], bool] = lambda: False
) -> StageResult:
    # Over 60 lines on purpose: the whole stage contract in the order it happens (up to date? -> ranks ->
    # started marker -> tracker and context -> the stage -> _SUCCESS.json -> pretrain's W&B summary), so
    # it is read in one place.
    cfg = typed_config(plain)
    module = get_stage(stage)
    sdir = stage_dir(cfg, stage)
    cfg_hash, lin, inputs = _current_lineage(module, cfg, plain)
    if marker_is_current(sdir / MARKER, lin):
        log.info("stage %s is up to date (%s): nothing to do", stage, sdir / MARKER)
        return StageResult("skipped", metrics=read_json(sdir / MARKER).get("metrics", {}))

    rank, world_size = job_rank(), 1
    if module.DISTRIBUTED:
        info = ensure_process_group()
        rank, world_size = info.rank, info.world_size
    elif rank != 0:
        return StageResult("skipped")
    if rank == 0:
        sdir.mkdir(parents=True, exist_ok=True)
        if not (sdir / STARTED).exists():
            write_json(sdir / STARTED, {"lineage": lin, "time": time.time()})

    started = time.time()
    tracker = make_tracker(
        logger_kind=cfg.logger.kind,
        logger_settings=plain["logger"],
        stage_dir=sdir,
        experiment=cfg.run.name,
        stage=stage,
        rank=rank,
        config=plain,
    )
    ctx = StageContext(
        name=stage,
        stage_dir=sdir,
        run_dir=run_dir(cfg),
        tracker=tracker,
        should_stop=should_stop,
        rank=rank,
        world_size=world_size,
        config_hash=cfg_hash,
    )
    try:
        result = module.run(cfg, ctx)
        if result.status == "completed" and rank == 0:
            tracker.log({f"final/{k}": v for k, v in result.metrics.items() if _is_number(v)})
            write_marker(
                sdir / MARKER,
                stage=stage,
                experiment=cfg.run.name,
                cfg_hash=cfg_hash,
                inputs=inputs,
                metrics=result.metrics,
                started_at=started,
                outputs=result.outputs,
            )
    finally:
        tracker.close()
    if result.status == "completed" and rank == 0 and stage in SUMMARIZED_INTO_PRETRAIN:
        summarize_into_stage_run(
            logger_kind=cfg.logger.kind,
            logger_settings=plain["logger"],
            target_stage_dir=stage_dir(cfg, "pretrain"),
            own_stage_dir=sdir,
            experiment=cfg.run.name,
            metrics={f"{stage}/{k}": v for k, v in result.metrics.items() if _is_number(v)},
        )
    return result


@dataclass(frozen=True)
class StageWork:
    """What a launcher runs for one stage (`launch.job.JobWork`): picklable, only the stage name and the
    plain config travel to the job, which builds the typed config and the stage itself."""

    stage: str
    plain_cfg: dict[str, Any]

    def claim(self) -> FolderClaim:
        """The stage folder to lock, the progress found in it (a stage's optional `progress(stage_dir)`)
        and the requeue budget of the stage's effective launcher."""
        cfg = typed_config(self.plain_cfg)  # built once per process: run_stage reuses it
        sdir = stage_dir(cfg, self.stage)
        progress_of = getattr(get_stage(self.stage), "progress", None)
        progress = progress_of(sdir) if callable(progress_of) else None
        budget = effective_launcher(cfg.launcher, getattr(cfg, self.stage).resources).max_requeues
        return FolderClaim(sdir, progress, budget)

    def __call__(self, should_stop: Callable[[], bool]) -> dict[str, Any]:
        return run_stage(self.stage, self.plain_cfg, should_stop=should_stop).to_dict()


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def marker_path(cfg: QwenConfig, stage: str) -> Path:
    return stage_dir(cfg, stage) / MARKER
