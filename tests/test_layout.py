"""House rules that keep the layout readable: one name per stage everywhere, imports point down."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from qwen_hpc.stages.registry import STAGE_NAMES, get_stage

REPO = Path(__file__).resolve().parents[1]
# The recipe (usable as a library without Hydra, Slurm or the CLI), the cross-cutting observers, and the
# foundations every layer may use. Layers, top down: cli/stages (entry) -> launch -> domain -> foundation.
DOMAIN = ("data", "tokenizer", "model", "training", "evaluation", "inference", "alignment", "rlhf", "interop", "sandbox",
          "agents", "tracking", "report")
FOUNDATION = ("compat", "parallel", "utils")
ENTRY = ("qwen_hpc.cli", "qwen_hpc.stages", "qwen_hpc.outputs", "qwen_hpc.launch", "qwen_hpc.config")
FORBIDDEN_IN_DOMAIN = ("submitit", "hydra", "omegaconf", "snakemake", "wandb", *ENTRY)
# further arrows that must not exist (package -> what it never imports)
FORBIDDEN_EXTRA = {
    "model": ("qwen_hpc.training", "qwen_hpc.tokenizer", "qwen_hpc.interop", "qwen_hpc.evaluation",
              "qwen_hpc.inference"),
    "tracking": ("qwen_hpc.training",),
}
# what a package may import although the domain rule forbids it
ALLOWED = {"tracking": ("wandb",)}


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


def _offenders(package: str, forbidden: tuple[str, ...]) -> list[str]:
    offenders = []
    for path in sorted((REPO / "qwen_hpc" / package).rglob("*.py")):
        for name in _imports(path):
            if any(name == bad or name.startswith(bad + ".") for bad in forbidden):
                offenders.append(f"{path.relative_to(REPO)} imports {name}")
    return offenders


def test_every_package_is_placed_in_a_layer() -> None:
    packages = {p.name for p in (REPO / "qwen_hpc").iterdir() if (p / "__init__.py").is_file()}
    placed = set(DOMAIN) | set(FOUNDATION) | {name.split(".")[1] for name in ENTRY}
    assert packages <= placed, f"packages in no layer of tests/test_layout.py: {sorted(packages - placed)}"


@pytest.mark.parametrize("package", DOMAIN + FOUNDATION)
def test_domain_packages_import_downwards_only(package: str) -> None:
    forbidden = tuple(b for b in FORBIDDEN_IN_DOMAIN if b not in ALLOWED.get(package, ()))
    forbidden += FORBIDDEN_EXTRA.get(package, ())
    if package in FOUNDATION:  # foundations import no recipe code at all
        forbidden += tuple(f"qwen_hpc.{d}" for d in DOMAIN)
    offenders = _offenders(package, forbidden)
    assert not offenders, "\n".join(offenders)


def test_launch_imports_no_domain_package_and_no_stage() -> None:
    """Executors run what the entry layer hands them (a callable, a map); they know no recipe code."""
    forbidden = tuple(f"qwen_hpc.{d}" for d in DOMAIN) + ("qwen_hpc.stages", "qwen_hpc.cli", "qwen_hpc.outputs")
    offenders = _offenders("launch", forbidden)
    assert not offenders, "\n".join(offenders)


def test_only_launch_reads_job_environment_variables() -> None:
    offenders = []
    for path in sorted((REPO / "qwen_hpc").rglob("*.py")):
        if path.parent.name == "launch":
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
    module = get_stage(stage)
    known = set(module.UPSTREAM) | set(getattr(module, "OPTIONAL_UPSTREAM", ()))  # read when they ran
    assert read <= known, f"{stage} reads {sorted(read)} but UPSTREAM is {module.UPSTREAM}"
    shared = {"qwen_hpc.stages.base", "qwen_hpc.stages.registry", "qwen_hpc.stages.pretraining"}  # not stages
    others = {n for n in _imports(path) if n.startswith("qwen_hpc.stages") and n not in shared}
    assert not others, f"stage {stage} imports {sorted(others)}: read upstream outputs through qwen_hpc.outputs"
