"""Compose the Hydra config tree in `config/` and turn it into validated, typed objects.

We use Hydra's compose API rather than `@hydra.main`: a stage must validate and possibly submit a job
without Hydra changing directories, creating `outputs/` folders or taking over logging.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.errors import HydraException
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from qwen_hpc.config.schema import QwenConfig

SCHEMA_NAME = "qwen_schema"


class ConfigError(ValueError):
    """A config that must not run: the message names the offending key."""


def config_dir() -> Path:
    """`$QWEN_HPC_CONFIG_DIR`, else the `config/` folder beside the package (editable install / checkout)."""
    env = os.environ.get("QWEN_HPC_CONFIG_DIR")
    path = Path(env) if env else Path(__file__).resolve().parents[2] / "config"
    if not (path / "config.yaml").is_file():
        raise ConfigError(
            f"no config.yaml in {path}: set QWEN_HPC_CONFIG_DIR to the project's config/ folder"
        )
    return path


def _register_schema() -> None:
    ConfigStore.instance().store(name=SCHEMA_NAME, node=QwenConfig)


def compose_config(overrides: list[str] | None = None) -> DictConfig:
    """Compose `config.yaml` with Hydra overrides; unknown keys and wrong types fail here."""
    _register_schema()
    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3", job_name="qwen-hpc"):
            return compose(config_name="config", overrides=list(overrides or []))
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(_first_line_block(exc)) from exc


def to_typed(cfg: DictConfig | dict[str, Any]) -> QwenConfig:
    """Resolve interpolations and build the dataclasses; impossible values fail in `__post_init__`."""
    try:
        node = cfg if isinstance(cfg, DictConfig) else OmegaConf.merge(OmegaConf.structured(QwenConfig), cfg)
        OmegaConf.resolve(node)
        _reject_unknown_keys(node, "")
        typed = OmegaConf.to_object(node)
    except (OmegaConfBaseException, ValueError, TypeError) as exc:
        raise ConfigError(_first_line_block(exc)) from exc
    assert isinstance(typed, QwenConfig)
    return typed


def _reject_unknown_keys(node: Any, path: str) -> None:
    """`+key=value` appends bypass struct mode, and `to_object` would then drop the key silently."""
    if node is None or (isinstance(node, DictConfig | ListConfig) and node._is_none()):
        return
    if isinstance(node, DictConfig):
        schema = OmegaConf.get_type(node)
        known = {f.name for f in dataclasses.fields(schema)} if dataclasses.is_dataclass(schema) else None
        for key in node.keys():
            full = f"{path}.{key}" if path else str(key)
            if known is not None and key not in known:
                raise ConfigError(f"unknown key {full!r} (not a field of {schema.__name__})")
            _reject_unknown_keys(node._get_node(key), full)
    elif isinstance(node, ListConfig):
        for i in range(len(node)):
            _reject_unknown_keys(node._get_node(i), f"{path}[{i}]")


_TYPED: dict[str, QwenConfig] = {}


def typed_config(plain: dict[str, Any], typed: QwenConfig | None = None) -> QwenConfig:
    """The typed config of a plain one, built once per process: later calls with the same content return
    the same object. `typed` records one already built for `plain` (the CLI validated it before running
    the stage in the same process)."""
    key = json.dumps(plain, sort_keys=True, default=str)
    if typed is not None:
        _TYPED[key] = typed
    if key not in _TYPED:
        _TYPED[key] = to_typed(plain)
    return _TYPED[key]


def to_plain(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as plain Python, what a job receives (never pickled dataclasses)."""
    container = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    assert isinstance(container, dict)
    return container


def load(overrides: list[str] | None = None) -> tuple[dict[str, Any], QwenConfig]:
    """Compose + validate: the one call every entry point makes before doing any work."""
    cfg = compose_config(overrides)
    typed = to_typed(cfg)
    return to_plain(cfg), typed


def _first_line_block(exc: BaseException) -> str:
    """Hydra/OmegaConf messages carry the key; drop their long 'full_key/object_type' tails only once."""
    message = str(exc).strip()
    cause = exc.__cause__ or exc.__context__
    if cause is not None and str(cause).strip() and str(cause).strip() not in message:
        message = f"{message}\n{str(cause).strip()}"
    return message
