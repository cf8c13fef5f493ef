"""The stage contract: `run(cfg, ctx) -> StageResult`, outputs only in `runs/<experiment>/<stage>/`,
a `_SUCCESS.json` marker written last that carries hashes, so reruns with the same config do nothing and
a changed config never silently reuses old output."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from qwen_hpc.config.schema import QwenConfig
from qwen_hpc.outputs import MARKER
from qwen_hpc.tracking.base import NullTracker, Tracker
from qwen_hpc.utils.config_fields import field_schema, output_view
from qwen_hpc.utils.hashing import hash_obj
from qwen_hpc.utils.io import read_json, write_json

VERSIONED_PACKAGES = (
    "qwen-hpc",
    "torch",
    "megatron-core",
    "tiktoken",
    "submitit",
    "snakemake",
    "hydra-core",
    "wandb",
    "numpy",
)


@dataclass
class StageResult:
    status: str  # "completed" | "skipped" | "preempted"
    metrics: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class StageContext:
    """What a stage gets besides its config: where to write, how to log, when to stop, who it is."""

    name: str
    stage_dir: Path
    run_dir: Path
    tracker: Tracker = field(default_factory=NullTracker)
    should_stop: Callable[[], bool] = lambda: False
    rank: int = 0
    world_size: int = 1
    config_hash: str = ""  # hash of the config sections that decide this stage's output (see config_hash)

    def stage_path(self, stage: str) -> Path:
        return self.run_dir / stage


class StageModule(Protocol):
    NAME: str
    DESCRIPTION: str
    CONFIG_KEYS: tuple[str, ...]
    UPSTREAM: tuple[str, ...]
    DISTRIBUTED: bool

    def run(self, cfg: QwenConfig, ctx: StageContext) -> StageResult: ...


def data_root(cfg: QwenConfig) -> Path:
    """Where the real datasets (evaluation sets ...) are: QWEN_HPC_DATA_ROOT if set, else run.data_root."""
    return Path(os.environ.get("QWEN_HPC_DATA_ROOT") or cfg.run.data_root)


def run_dir(cfg: QwenConfig) -> Path:
    return Path(cfg.run.root) / cfg.run.name


def stage_dir(cfg: QwenConfig, stage: str) -> Path:
    return run_dir(cfg) / stage


def config_view(module: StageModule, plain_cfg: dict[str, Any]) -> dict[str, Any]:
    """The part of the config that decides this stage's output: its CONFIG_KEYS sections without the
    fields declared `runtime` (how it runs) and without `scoped` fields the stage does not name
    (`model.long_context` counts for long_context and export_hf only). See qwen_hpc.utils.config_fields."""
    include = frozenset(k for k in module.CONFIG_KEYS if "." in k)
    sections = dict.fromkeys(k.split(".")[0] for k in module.CONFIG_KEYS)
    schemas = {f.name: field_schema(QwenConfig, f.name) for f in dataclasses.fields(QwenConfig)}
    return {
        key: output_view(schemas.get(key), plain_cfg.get(key), include=include, path=key) for key in sections
    }


def config_hash(module: StageModule, plain_cfg: dict[str, Any]) -> str:
    """Hash of the config that decides this stage's output (not where or how it runs)."""
    return hash_obj(config_view(module, plain_cfg))


def upstream_lineages(module: StageModule, cfg: QwenConfig) -> dict[str, str | None]:
    """What this stage reads, as lineages: its UPSTREAM stages' markers, unless the module says otherwise
    with `input_lineages(cfg)` (export_hf given an explicit checkpoint folder needs no upstream stage)."""
    custom = getattr(module, "input_lineages", None)
    if custom is not None:
        return custom(cfg)
    out = marker_lineages(module.UPSTREAM, cfg)
    for up in getattr(module, "OPTIONAL_UPSTREAM", ()):  # read only when they ran: part of the lineage then
        marker = stage_dir(cfg, up) / MARKER
        if marker.exists():
            out[up] = read_json(marker).get("lineage")
    return out


def marker_lineages(stages: tuple[str, ...], cfg: QwenConfig) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for up in stages:
        marker = stage_dir(cfg, up) / MARKER
        out[up] = read_json(marker).get("lineage") if marker.exists() else None
    return out


def lineage(cfg_hash: str, inputs: dict[str, str | None]) -> str:
    """Hash of this stage's config and of every upstream lineage: equal lineage = equal output."""
    return hash_obj({"config": cfg_hash, "inputs": inputs})


def marker_is_current(path: Path, expected_lineage: str) -> bool:
    if not path.exists():
        return False
    try:
        return read_json(path).get("lineage") == expected_lineage
    except (OSError, ValueError):
        return False


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def write_marker(
    path: Path,
    *,
    stage: str,
    experiment: str,
    cfg_hash: str,
    inputs: dict[str, str | None],
    metrics: dict[str, Any],
    started_at: float,
    outputs: dict[str, str] | None = None,
) -> None:
    """`outputs` (name -> path) are recorded relative to the stage folder when inside it, so a moved run
    folder still reads them (`qwen_hpc.outputs.read_marker`)."""
    write_json(
        path,
        {
            "stage": stage,
            "experiment": experiment,
            "config_hash": cfg_hash,
            "inputs": inputs,
            "lineage": lineage(cfg_hash, inputs),
            "versions": package_versions(),
            "metrics": metrics,
            "outputs": {name: _relative(value, path.parent) for name, value in (outputs or {}).items()},
            "started_at": started_at,
            "finished_at": time.time(),
            "wall_s": round(time.time() - started_at, 3),
        },
    )


def _relative(value: str, folder: Path) -> str:
    try:
        return str(Path(value).resolve().relative_to(folder.resolve()))
    except ValueError:
        return str(value)
