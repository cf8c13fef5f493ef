"""One home for each default: the dataclasses in `qwen_hpc/config/` (and the domain configs they reuse).

The YAML files restate those defaults with comments for a reader; this test makes sure the two cannot
drift: every value that the option `config.yaml` selects for each group (`model: tiny`, `launcher: local`,
`logger: wandb`, `stage@<name>: <name>`, and any group added later), every stage file, and `config.yaml`'s
`run:` write equals the dataclass default of that key. The other options of a group are deliberate
variants (`model=qwen_7b`, `launcher=slurm`, `sft_paper`) and experiments are overrides: their values are
not compared, but every key they set must be a field of the schema.
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


def _selected_options() -> list[tuple[str, str, str]]:
    """(group folder, option, config section) of every group option `config.yaml` composes by default."""
    chosen = []
    for entry in _yaml(CONFIG / "config.yaml")["defaults"]:
        if not isinstance(entry, dict):  # qwen_schema, _self_
            continue
        ((target, option),) = entry.items()
        group, _, section = target.partition("@")
        if group != "experiment":  # the experiment is an override layer on top of the defaults
            chosen.append((group, option, section or group))
    return chosen


def test_every_group_of_config_yaml_is_checked() -> None:
    groups = {group for group, _, _ in _selected_options()}
    assert {"model", "launcher", "logger", "stage"} <= groups
    assert {section for _, _, section in _selected_options()} <= set(DEFAULTS)
    # every stage section's own file is its default (so it is compared above)
    stage_files = {p.stem for p in (CONFIG / "stage").glob("*.yaml") if p.stem in DEFAULTS}
    assert {(s, s) for s in stage_files} <= {(o, s) for g, o, s in _selected_options() if g == "stage"}


@pytest.mark.parametrize(("group", "option", "section"), _selected_options(),
                         ids=[f"{s}={o}" for _, o, s in _selected_options()])
def test_the_default_option_of_each_group_restates_the_dataclass_defaults(
    group: str, option: str, section: str
) -> None:
    drift = _drift(_yaml(CONFIG / group / f"{option}.yaml"), DEFAULTS[section], f"{section}.")
    assert not drift, f"config/{group}/{option}.yaml is the default {section}:\n" + "\n".join(drift)


def _variants() -> list[tuple[str, str]]:
    sections = {group: section for group, _, section in _selected_options() if group != "stage"}
    out = [(f"{group}/{p.stem}", section) for group, section in sections.items()
           for p in sorted((CONFIG / group).glob("*.yaml"))]
    # a stage variant file replaces the section it is named after (sft_paper -> sft)
    for path in sorted((CONFIG / "stage").glob("*.yaml")):
        out.append((f"stage/{path.stem}", next(s for s in sorted(DEFAULTS, key=len, reverse=True)
                                               if path.stem == s or path.stem.startswith(s + "_"))))
    return out


def _unknown_keys(yaml: Any, default: Any, path: str) -> list[str]:
    if not isinstance(yaml, dict) or not isinstance(default, dict):
        return []
    out = []
    for key, value in yaml.items():
        if key == "defaults":
            continue
        if key not in default:
            out.append(f"{path}{key}: not a field of the schema")
        elif isinstance(default[key], dict) and default[key]:  # a nested config (dict fields are free-form)
            out.extend(_unknown_keys(value, default[key], f"{path}{key}."))
    return out


@pytest.mark.parametrize(("option", "section"), _variants(), ids=[o for o, _ in _variants()])
def test_every_option_of_every_group_sets_only_schema_fields(option: str, section: str) -> None:
    unknown = _unknown_keys(_yaml(CONFIG / f"{option}.yaml"), DEFAULTS[section], f"{section}.")
    assert not unknown, f"config/{option}.yaml:\n" + "\n".join(unknown)


def test_root_restates_the_dataclass_defaults() -> None:
    run = dict(_yaml(CONFIG / "config.yaml")["run"])
    assert run.pop("data_root") == "${oc.env:QWEN_HPC_DATA_ROOT," + DEFAULTS["run"]["data_root"] + "}"
    drift = _drift(run, DEFAULTS["run"], "run.")
    assert not drift, "\n".join(drift)
