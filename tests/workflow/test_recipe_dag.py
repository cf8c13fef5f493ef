"""The whole recipe as one DAG: a dry run of each paper-size experiment through the Slurm profile plans every
stage of its branches with the resources of its experiment file, after every stage's pre-submission checks."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from qwen_hpc.config.compose import load
from qwen_hpc.launch.submit import effective_launcher
from tests.workflow.helpers import describe, snakemake

BASE = ("data", "tokenizer", "tokens", "pretrain", "evaluate", "long_context", "sft", "report", "export_hf",
        "reward_model_pmp", "reward_model", "ppo", "agent_eval")
BRANCHES = {
    "qwen_7b": (),
    "code_qwen_7b": ("code_pretrain", "code_sft"),
    "code_qwen_14b": ("code_pretrain", "code_sft"),
    "math_qwen_7b": ("math_sft", "math_evaluate"),
    "math_qwen_14b": ("math_sft", "math_evaluate"),
}


def _planned(out: str) -> dict[str, dict[str, int]]:
    """rule name -> its resources, from Snakemake's dry-run listing."""
    jobs = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", out):
        head = re.match(r"(?:local)?rule (\w+):", block)
        res = re.search(r"resources: (.*)", block)
        if head and res:
            pairs = (item.split("=", 1) for item in res.group(1).split(", "))
            jobs[head.group(1)] = {k: int(v) for k, v in pairs if v.isdigit()}
    return jobs


@pytest.mark.parametrize("experiment", sorted(BRANCHES))
def test_paper_experiment_dry_run_lists_every_stage_with_its_resources(
    experiment: str, tmp_path: Path, data_root: Path
) -> None:
    proc = snakemake(tmp_path, "-n", "--profile", "slurm", "--config", f"experiment={experiment}")
    assert proc.returncode == 0, describe(proc)
    jobs = _planned(proc.stdout)
    expected = set(BASE) | set(BRANCHES[experiment])
    assert expected <= set(jobs), sorted(expected - set(jobs))
    switched_off = {"code_pretrain", "code_sft", "math_sft", "math_evaluate"} - set(BRANCHES[experiment])
    assert not switched_off & set(jobs), sorted(switched_off & set(jobs))  # a branch the experiment leaves out
    _, cfg = load([f"experiment={experiment}", "launcher=slurm"])
    for stage in expected:
        launcher = effective_launcher(cfg.launcher, getattr(cfg, stage).resources)
        assert jobs[stage]["nodes"] == launcher.nodes, stage
        assert jobs[stage]["gpus"] == launcher.nodes * launcher.gpus_per_node, stage
        assert jobs[stage]["runtime"] == launcher.timeout_min, stage
    assert jobs["pretrain"]["gpus"] >= 128  # the experiment file's layout, not the launcher's default
    for stage in BRANCHES[experiment]:
        if stage != "math_evaluate":
            assert jobs[stage]["gpus"] >= 32, (stage, jobs[stage])


def test_an_impossible_branch_layout_fails_the_dry_run(tmp_path: Path, data_root: Path) -> None:
    proc = snakemake(tmp_path, "-n", "--profile", "slurm", "--config", "experiment=code_qwen_7b",
                     "overrides=code_pretrain.resources.nodes=3")
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "pre-submission checks failed" in out and "code_pretrain: parallel layout" in out
