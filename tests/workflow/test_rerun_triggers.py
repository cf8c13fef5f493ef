"""A knob that only says how a stage runs reruns nothing; one that decides an output reruns exactly that stage
and its dependants. Checked on the finished `tiny` DAG (conftest.tiny_dag) without running any stage again:
per field in process (the same check `qwen-hpc <stage>` makes before submitting), then all runtime knobs at
once through a Snakemake dry run and the `qwen-hpc` command itself."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from qwen_hpc.config.compose import load
from qwen_hpc.config.schema import QwenConfig
from qwen_hpc.stages.runner import check_ready
from qwen_hpc.utils.config_fields import RUNTIME, iter_fields
from tests.conftest import run_qwen
from tests.workflow.helpers import TINY_DAG_OVERRIDES, describe, snakemake, tiny_config

pytestmark = pytest.mark.slow

# Every stage the `tiny` experiment plans: the base chain, the chat/RLHF/agent branch and Code-/Math-Qwen.
BASE_STAGES = ("data", "tokenizer", "tokens", "pretrain", "evaluate", "long_context", "report", "export_hf")
CHAT_STAGES = ("sft", "agent_eval", "reward_model_pmp", "reward_model", "ppo")
CODE_STAGES = ("code_pretrain", "code_sft")
MATH_STAGES = ("math_sft", "math_evaluate")  # planned only where ../shared/datasets/gsm8k exists
DAG_STAGES = (*BASE_STAGES, *CHAT_STAGES, *CODE_STAGES, *MATH_STAGES)
BASE = ["experiment=tiny", "launcher=local", "run.name=tiny", *TINY_DAG_OVERRIDES]

# One changed value for every field declared `runtime` (how it runs); a new runtime field must be added here.
RUNTIME_CHANGES: dict[str, list[str]] = {
    "model.reference_vocab_size": ["model.reference_vocab_size=1000"],
    "data.decontamination.require_all": ["data.decontamination.require_all=true"],
    "data.workers": ["data.workers=1"],
    "tokens.workers": ["tokens.workers=3"],
    "tokens.caller_threads": ["tokens.caller_threads=1"],
    "long_context.attention_chunk": ["long_context.attention_chunk=64"],
    "evaluate.sandbox.workers": ["evaluate.sandbox.workers=1"],
    "launcher": ["launcher.timeout_min=120", "launcher.poll_interval_s=0.5", "launcher.stream_logs=false",
                 "launcher.mem_gb=4", "launcher.max_requeues=1"],
    "logger": ["logger=none"],
    **{f"{s}.resources": [f"{s}.resources.timeout_min=77"] for s in (*DAG_STAGES, "import_hf")},
    "math_evaluate.sandbox.workers": ["math_evaluate.sandbox.workers=1"],
    # the evaluation and RLHF layouts (null = pretraining's): how the models are split, not what they compute
    **{f"{s}.{k}_model_parallel_size": [f"{s}.{k}_model_parallel_size=1"]
       for s in ("evaluate", "math_evaluate", "reward_model_pmp", "reward_model", "ppo") for k in ("tensor", "pipeline")},
    **{f"{s}.save_interval": [f"{s}.save_interval=11"] for s in ("reward_model_pmp", "reward_model", "ppo")},
    **{f"{s}.train.{key}": [f"{s}.train.{key}={value}"] for s in ("pretrain", "sft", "code_pretrain", "code_sft", "math_sft") for key, value in (
        ("log_interval", 7), ("eval_interval", 25), ("save_interval", 33), ("keep_last_checkpoints", 5),
        ("max_consecutive_nonfinite", 9), ("peak_flops_per_device", 1e12))},
}
# (override, the stages it must rerun: itself and its dependants in the `tiny` DAG)
DECIDES = [
    ("tokenizer.vocab_size=700", set(DAG_STAGES) - {"data"}),
    ("model.long_context.use_dynamic_ntk=true", {"long_context", "report", "export_hf"}),
    ("evaluate.eval_iters=3", {"evaluate", "report"}),
    ("code_sft.train.train_iters=5", {"code_sft", "report"}),
    ("reward_model.lr=3e-4", {"reward_model", "ppo", "report"}),
]


def _runtime_fields() -> set[str]:
    """Top-most fields declared runtime (a runtime section's own fields are runtime with it)."""
    found: set[str] = set()
    for path, _, kind in iter_fields(QwenConfig):
        if kind == RUNTIME and not any(path.startswith(f"{p}.") for p in found):
            found.add(path)
    return found


def _all_runtime_changes() -> list[str]:
    return [change for changes in RUNTIME_CHANGES.values() for change in changes]


def _planned(proc) -> set[str]:  # noqa: ANN001
    jobs = set(re.findall(r"^(?:local)?rule (\w+):", proc.stdout + proc.stderr, flags=re.M))
    return jobs - {"all"}


def _ran(tiny_dag: Path) -> tuple[str, ...]:
    """The stages the finished DAG ran (the math branch only where its data exists)."""
    ran = tuple(s for s in DAG_STAGES if (tiny_dag / "runs" / "tiny" / s / "_SUCCESS.json").exists())
    assert set(BASE_STAGES + CHAT_STAGES + CODE_STAGES) <= set(ran), ran
    return ran


def _stale(tiny_dag: Path, overrides: list[str]) -> set[str]:
    """The DAG stages `qwen-hpc <stage>` would run (not up to date) with these overrides."""
    plain, typed = load([*BASE, f"run.root={tiny_dag / 'runs'}", *overrides])
    return {stage for stage in _ran(tiny_dag) if not check_ready(stage, plain, typed)[0]}


def test_every_runtime_field_has_a_change_under_test() -> None:
    assert _runtime_fields() == set(RUNTIME_CHANGES)


@pytest.mark.parametrize("field", sorted(RUNTIME_CHANGES))
def test_a_runtime_knob_leaves_every_stage_up_to_date(tiny_dag: Path, field: str) -> None:
    assert _stale(tiny_dag, RUNTIME_CHANGES[field]) == set()


def test_all_runtime_knobs_at_once_run_nothing(tiny_dag: Path) -> None:
    changes = _all_runtime_changes()
    markers = {s: (tiny_dag / "runs" / "tiny" / s / "_SUCCESS.json").stat().st_mtime_ns for s in _ran(tiny_dag)}
    proc = snakemake(tiny_dag, "--cores", "2", "--dry-run", *tiny_config(*changes))
    assert proc.returncode == 0, describe(proc)
    assert "Nothing to be done" in proc.stdout + proc.stderr, describe(proc)
    for stage in ("pretrain", "long_context", "export-hf"):
        proc = run_qwen([stage, *BASE, "run.root=runs", *changes], cwd=tiny_dag)
        assert "up to date" in proc.stdout + proc.stderr, proc.stderr
    assert markers == {s: (tiny_dag / "runs" / "tiny" / s / "_SUCCESS.json").stat().st_mtime_ns for s in _ran(tiny_dag)}


@pytest.mark.parametrize(("override", "expected"), DECIDES, ids=[o for o, _ in DECIDES])
def test_an_output_knob_reruns_its_stage_and_dependants(tiny_dag: Path, override: str, expected: set[str]) -> None:
    stage = override.split(".")[0] if not override.startswith("model.long_context") else "long_context"
    assert stage in _stale(tiny_dag, [override])
    if override.startswith("model.long_context"):  # inference-only: the trained model stays
        assert _stale(tiny_dag, [override]) == {"long_context", "export_hf"}
    proc = snakemake(tiny_dag, "--cores", "2", "--dry-run", *tiny_config(override))
    assert proc.returncode == 0, describe(proc)
    assert _planned(proc) == expected & set(_ran(tiny_dag)), describe(proc)
