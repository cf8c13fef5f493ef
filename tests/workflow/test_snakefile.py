"""The workflow itself: a dry run plans one job per stage; the linter finds nothing but the missing
conda/container directive (the project installs its environment with pip)."""

from __future__ import annotations

from pathlib import Path

from tests.workflow.helpers import STAGES, describe, snakemake

ACCEPTED_LINT = "Specify a conda environment or container for each rule.:"


def test_dry_run_plans_one_job_per_stage(tmp_path: Path) -> None:
    proc = snakemake(tmp_path, "--cores", "2", "--dry-run")
    assert proc.returncode == 0, describe(proc)
    out = proc.stdout + proc.stderr
    for stage in STAGES:
        assert f"rule {stage}:" in out or f"localrule {stage}:" in out, stage
    assert "qwen-hpc pretrain experiment=tiny launcher=local" in out
    assert not (tmp_path / "runs").exists()


def test_slurm_profile_selects_the_slurm_launcher(tmp_path: Path) -> None:
    # a partition this machine lacks: the planning-time pre-submission checks would (rightly) refuse it
    proc = snakemake(tmp_path, "--profile", "slurm", "--dry-run", "--config", "overrides=launcher.partition=gpu",
                     "preflight=false")
    assert proc.returncode == 0, describe(proc)
    assert "launcher=slurm" in proc.stdout and "launcher.partition=gpu" in proc.stdout


def test_lint_is_clean_apart_from_conda(tmp_path: Path) -> None:
    proc = snakemake(tmp_path, "--lint")
    lints = [line.strip() for line in (proc.stdout + proc.stderr).splitlines() if line.strip().startswith("* ")]
    assert lints, describe(proc)
    assert all(line == f"* {ACCEPTED_LINT}" for line in lints), lints
