"""One home for each default: the dataclasses in `qwen_hpc/config/` (and the domain configs they reuse).

The stage YAML files under `config/stage/` restate those defaults with comments for a reader; this test
makes sure the two cannot drift: every value a stage file (or `config.yaml`'s `run:`, or the default
logger) writes equals the dataclass default of that key. Group options that are deliberate variants
(`model=qwen_7b`, `launcher=slurm`, experiments) are overrides, not defaults, and are not compared.
"""

from __future__ import annotations

from typing import Any

import pytest
from omegaconf import OmegaConf

from qwen_hpc.config.compose import config_dir
from qwen_hpc.config.schema import QwenConfig

CONFIG = config_dir()
DEFAULTS = OmegaConf.to_container(OmegaConf.structured(QwenConfig))


def _drift(yaml: Any, default: Any, path: str) -> list[str]:
    if isinstance(yaml, dict):
        out = []
        for key, value in yaml.items():
            if key == "defaults":
                continue
            if not isinstance(default, dict) or key not in default:
                out.append(f"{path}{key}: not a field of the schema")
                continue
            out.extend(_drift(value, default[key], f"{path}{key}."))
        return out
    return [] if yaml == default else [f"{path[:-1]}: YAML {yaml!r} but dataclass default {default!r}"]


def _yaml(path) -> dict[str, Any]:
    return OmegaConf.to_container(OmegaConf.load(path))  # unresolved: ${oc.env:...} stays a string


# config/stage/<name>.yaml of each stage section; other files there (sft_paper.yaml) are recipe variants
@pytest.mark.parametrize("stage", sorted(p.stem for p in (CONFIG / "stage").glob("*.yaml") if p.stem in DEFAULTS))
def test_stage_yaml_restates_the_dataclass_defaults(stage: str) -> None:
    drift = _drift(_yaml(CONFIG / "stage" / f"{stage}.yaml"), DEFAULTS[stage], f"{stage}.")
    assert not drift, "\n".join(drift)


def test_root_and_default_logger_restate_the_dataclass_defaults() -> None:
    run = dict(_yaml(CONFIG / "config.yaml")["run"])
    assert run.pop("data_root") == "${oc.env:QWEN_HPC_DATA_ROOT," + DEFAULTS["run"]["data_root"] + "}"
    drift = _drift(run, DEFAULTS["run"], "run.") + _drift(
        _yaml(CONFIG / "logger" / "wandb.yaml"), DEFAULTS["logger"], "logger."
    )
    assert not drift, "\n".join(drift)
