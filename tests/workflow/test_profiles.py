"""Effective Snakemake settings of the two ways in, read by Snakemake's own argument parser: the `slurm`
profile's `cores` (jobs in flight) must survive the workflow profile that Snakemake loads after it."""

from __future__ import annotations

import pytest
from snakemake.cli import parse_args

from tests.conftest import REPO
from tests.workflow.helpers import SNAKEFILE


@pytest.fixture(autouse=True)
def _from_project_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)  # `--profile slurm` is looked up where the README runs it: the project root


def _effective(*argv: str):
    _, args = parse_args(["-s", str(SNAKEFILE), *argv])
    return args


def test_slurm_profile_settings_win_over_the_workflow_profile() -> None:
    args = _effective("--profile", "slurm")
    assert args.cores == 8  # several stage jobs in flight at once
    assert args.latency_wait == 30
    assert [p.name for p in args.configfile] == ["workflow.yaml"]
    assert args.show_failed_logs and args.printshellcmds  # the workflow profile still applies
    assert sorted(map(str, args.rerun_triggers)) == ["input", "mtime", "params"]


def test_laptop_run_takes_cores_from_the_command_line() -> None:
    args = _effective("--cores", "2")
    assert args.cores == 2
    assert not args.configfile  # launcher=local: the Snakefile's default
    assert args.show_failed_logs and args.printshellcmds
    assert sorted(map(str, args.rerun_triggers)) == ["input", "mtime", "params"]


def test_command_line_still_overrides_the_slurm_profile() -> None:
    assert _effective("--profile", "slurm", "--cores", "3").cores == 3
