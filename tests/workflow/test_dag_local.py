"""The main job: the whole `tiny` experiment through Snakemake on this machine, as `snakemake --cores 2`
(the `tiny_dag` fixture in conftest.py, shared with test_rerun_triggers.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from qwen_hpc.report.html import read_jsonl
from qwen_hpc.utils.io import read_json
from tests.workflow.helpers import MATH_STAGES, RECIPE_STAGES, describe, snakemake, tiny_config

pytestmark = pytest.mark.slow


def _ran(run: Path) -> tuple[str, ...]:
    """Every stage of the recipe; the math branch only where ../shared/datasets/gsm8k exists."""
    return tuple(s for s in RECIPE_STAGES if s not in MATH_STAGES or (run / s / "_SUCCESS.json").exists())


def test_every_stage_succeeds_and_loss_falls(tiny_dag: Path) -> None:
    run = tiny_dag / "runs" / "tiny"
    for stage in _ran(run):
        marker = read_json(run / stage / "_SUCCESS.json")
        assert marker["stage"] == stage and marker["experiment"] == "tiny"
        assert (run / "logs" / f"{stage}.log").exists()
    pretrain = read_json(run / "pretrain" / "_SUCCESS.json")["metrics"]
    assert pretrain["iteration"] == 300
    losses = [r["loss"] for r in read_jsonl(run / "pretrain" / "metrics.jsonl") if "loss" in r]
    start, end = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert end < start - 1.0, f"training loss did not fall enough: {start:.3f} -> {end:.3f}"
    page = (run / "report" / "index.html").read_text()
    assert "<img" in page and "data:image/png;base64," in page


def test_every_stage_ran_as_a_submitit_job(tiny_dag: Path) -> None:
    for stage in _ran(tiny_dag / "runs" / "tiny"):
        launch = read_json(tiny_dag / "runs" / "tiny" / stage / "launch.json")
        assert launch["launcher"] == "local"
        assert Path(launch["stdout"]).exists()


def test_rerunning_a_finished_dag_runs_nothing(tiny_dag: Path) -> None:
    stages = _ran(tiny_dag / "runs" / "tiny")
    markers = {s: (tiny_dag / "runs" / "tiny" / s / "_SUCCESS.json").stat().st_mtime_ns for s in stages}
    proc = snakemake(tiny_dag, "--cores", "2", *tiny_config())
    assert proc.returncode == 0, describe(proc)
    assert "Nothing to be done" in proc.stdout + proc.stderr
    assert markers == {s: (tiny_dag / "runs" / "tiny" / s / "_SUCCESS.json").stat().st_mtime_ns for s in stages}


def test_the_recipe_report_renders_in_headless_chromium(tiny_dag: Path) -> None:
    """The whole recipe's report in a real browser: a section for every training stage's curves, the data
    funnel, tokenizer compression, perplexity against length, the benchmark / Math-Qwen / agent tables next
    to the paper's, the stage table; every plot decoded and drawn, nothing in the console."""
    from tests.browser import chromium_binary, open_page
    from tests.report.test_report_in_browser import assert_page_shows_everything

    if chromium_binary() is None:
        if os.environ.get("QWEN_HPC_REQUIRE_CHROMIUM"):
            pytest.fail("QWEN_HPC_REQUIRE_CHROMIUM is set but no chromium is on PATH")
        pytest.skip("no chromium on PATH (Debian: apt-get install chromium; .ci/run installs it)")
    run = tiny_dag / "runs" / "tiny"
    report = open_page(run / "report" / "index.html")
    training = ["pretrain", "sft", "code_pretrain", "code_sft", "reward_model", "ppo"]
    if (run / "math_sft" / "_SUCCESS.json").exists():
        training.append("math_sft")
    expected = [
        "pretraining loss",
        "SFT loss (mean over supervised tokens, Qwen §3.1)",
        *(f"{stage}: training curves" for stage in training),
        "tokenizer compression (tokens relative to the reference, per source)",
        "perplexity vs context length (Qwen §2.5, Table 3)",
        "data curation funnel (documents remaining after each step)",
        "agents: tool use, code interpreter, HF Agent (Qwen §3.4, Tables 6-9)",
        "Stages",
    ]
    assert_page_shows_everything(report, expected)
    headings = [s["heading"] for s in report.sections]
    assert any(h.startswith("benchmarks: ours next to the paper's") for h in headings), headings
    if (run / "math_evaluate" / "_SUCCESS.json").exists():
        assert any(h.startswith("math_evaluate: Math-Qwen-Chat next to") for h in headings), headings
