"""House rules that keep the layout readable: one name per stage everywhere, imports point down."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from qwen_hpc.stages.registry import STAGE_NAMES, get_stage

REPO = Path(__file__).resolve().parents[1]
DOMAIN = ("data", "tokenizer", "model", "training", "evaluation", "compat", "alignment", "interop", "sandbox",
          "parallel")
FORBIDDEN_IN_DOMAIN = ("submitit", "hydra", "omegaconf", "snakemake", "wandb", "qwen_hpc.cli", "qwen_hpc.stages",
                       "qwen_hpc.launch", "qwen_hpc.config")


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_one_name_per_stage_everywhere(stage: str) -> None:
    for path in (
        REPO / "qwen_hpc" / "stages" / f"{stage}.py",
        REPO / "config" / "stage" / f"{stage}.yaml",
        REPO / "workflow" / "rules" / f"{stage}.smk",
        REPO / "tests" / "stages" / f"test_{stage}.py",
    ):
        assert path.is_file(), f"stage {stage!r} lacks {path.relative_to(REPO)}"
    module = get_stage(stage)
    assert module.NAME == stage
    assert module.DESCRIPTION
    rule = (REPO / "workflow" / "rules" / f"{stage}.smk").read_text()
    assert f"rule {stage}:" in rule
    # the rule's inputs are the stage module's UPSTREAM (workflow/rules/common.smk: upstream), never a list
    assert f'    input:\n        upstream("{stage}"),\n    output:' in rule, f"rule {stage}: inputs must be upstream()"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", DOMAIN)
def test_domain_packages_import_downwards_only(package: str) -> None:
    offenders = []
    for path in sorted((REPO / "qwen_hpc" / package).rglob("*.py")):
        for name in _imports(path):
            if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN_IN_DOMAIN):
                offenders.append(f"{path.relative_to(REPO)} imports {name}")
    assert not offenders, "\n".join(offenders)


# The model knows layers and weights only: checkpoint files live in training/, HF folders and tokenizer
# export in interop/ (issue 13 item 2).
FORBIDDEN_IN_MODEL = ("qwen_hpc.training", "qwen_hpc.tokenizer", "qwen_hpc.interop", "qwen_hpc.data")


def test_model_imports_no_training_tokenizer_or_interop() -> None:
    offenders = []
    for path in sorted((REPO / "qwen_hpc" / "model").rglob("*.py")):
        for name in _imports(path):
            if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN_IN_MODEL):
                offenders.append(f"{path.relative_to(REPO)} imports {name}")
    assert not offenders, "\n".join(offenders)


def test_only_launch_reads_job_environment_variables() -> None:
    offenders = []
    for path in sorted((REPO / "qwen_hpc").rglob("*.py")):
        if path.parent.name == "launch" or path.name == "runner.py":
            continue
        text = path.read_text()
        for var in ("SLURM_", "MASTER_ADDR", "MASTER_PORT", '"RANK"', "'RANK'"):
            if var in text:
                offenders.append(f"{path.relative_to(REPO)} mentions {var}")
    assert not offenders, "\n".join(offenders)


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_a_stage_reads_only_its_upstream_and_imports_no_other_stage(stage: str) -> None:
    import re

    path = REPO / "qwen_hpc" / "stages" / f"{stage}.py"
    read = set(re.findall(r'stage_path\("(\w+)"\)', path.read_text()))
    assert read <= set(get_stage(stage).UPSTREAM), f"{stage} reads {sorted(read)} but UPSTREAM is {get_stage(stage).UPSTREAM}"
    shared = {"qwen_hpc.stages.base", "qwen_hpc.stages.registry"}
    others = {n for n in _imports(path) if n.startswith("qwen_hpc.stages") and n not in shared}
    assert not others, f"stage {stage} imports {sorted(others)}: read upstream outputs through qwen_hpc.outputs"
