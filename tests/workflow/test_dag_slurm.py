"""The DAG through `snakemake --profile slurm` against the real Slurm that .ci/run starts."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from qwen_hpc.utils.io import read_json
from tests.stages.conftest import BRANCH_STEPS
from tests.workflow.helpers import MATH_STAGES, RECIPE_STAGES, STAGES, describe, snakemake

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

SMALL = " ".join([
    "data.embedded_max_docs_per_source=200",
    "data.embedded_max_chars_per_source=300000",
    "tokenizer.vocab_size=512",
    "pretrain.train.train_iters=40",
    "pretrain.train.eval_interval=20",
    "pretrain.train.save_interval=20",
    "pretrain.optimizer.warmup_iters=4",
    "evaluate.eval_iters=2",
    "launcher.cpus_per_task=1",
    # every later stage a few steps: the point here is Slurm (jobs, resources, overlap, failures), not learning
    "long_context.num_documents=2",
    "sft.train.train_iters=10",
    "sft.train.eval_interval=5",
    "sft.train.save_interval=5",
    "sft.optimizer.warmup_iters=2",
    "sft.embedded.train_conversations=200",
    "sft.heldout_eval=4",
    "reward_model_pmp.synthetic.train_pairs=160",
    "reward_model_pmp.epochs=1",
    "reward_model_pmp.hh_eval_limit=8",
    "reward_model.synthetic.train_pairs=80",
    "reward_model.hh_eval_limit=8",
    "ppo.steps=6",
    "ppo.value_warmup_steps=2",
    "ppo.heldout_prompts=8",
    "agent_eval.tool_cases=2",
    *BRANCH_STEPS,
])


TERMINAL = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL")


def sacct_state(job_id: str, timeout: float = 60) -> str:
    """The job's final state; sacct may lag a few seconds behind the job's own result file."""
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        out = subprocess.run(["sacct", "-j", job_id, "-n", "-X", "-P", "-o", "State"], capture_output=True,
                             text=True, check=True).stdout
        state = out.strip().splitlines()[-1].split()[0] if out.strip() else ""
        if state.startswith(TERMINAL):
            return state
        time.sleep(1)
    return state


@pytest.fixture(scope="module")
def slurm_dag(require_slurm, tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("slurmdag")
    proc = snakemake(workdir, "--profile", "slurm", "--config", f"overrides={SMALL}")
    assert proc.returncode == 0, describe(proc)
    return workdir


def test_dag_on_slurm_completes_with_jobs_in_sacct(slurm_dag: Path) -> None:
    """The whole tiny recipe (every branch the tiny experiment switches on) through `--profile slurm`."""
    for stage in RECIPE_STAGES:
        run = slurm_dag / "runs" / "tiny" / stage
        if stage in MATH_STAGES and not (run / "_SUCCESS.json").exists():
            continue  # planned only where ../shared/datasets/gsm8k exists (recipe.missing_data=skip)
        assert (run / "_SUCCESS.json").exists(), stage
        launch = read_json(run / "launch.json")
        assert launch["launcher"] == "slurm"
        assert sacct_state(launch["job_id"]) == "COMPLETED", stage
    assert read_json(slurm_dag / "runs" / "tiny" / "pretrain" / "_SUCCESS.json")["metrics"]["iteration"] == 40


def _job_span(job_id: str) -> tuple[str, str]:
    out = subprocess.run(["sacct", "-j", job_id, "-n", "-X", "-P", "-o", "Start,End"], capture_output=True,
                         text=True, check=True).stdout.strip().splitlines()[-1]
    start, end = out.split("|")
    return start, end


def test_profile_runs_several_stage_jobs_at_once(slurm_dag: Path) -> None:
    """After pretrain, evaluate / long_context / export_hf / sft / code_pretrain / math_sft are independent:
    with the profile's `cores: 8`, at least three Slurm stage jobs run at the same moment on the 4-CPU CI
    node (with `cores: 2` from the workflow profile no more than two could)."""
    run = slurm_dag / "runs" / "tiny"
    spans = {stage: _job_span(read_json(run / stage / "launch.json")["job_id"])
             for stage in RECIPE_STAGES if (run / stage / "launch.json").exists()}
    assert set(spans) >= set(STAGES), spans
    # the most jobs in flight at once: at each job's start, how many had started and not yet ended
    overlap = max(sum(1 for s, e in spans.values() if s <= start < e) for start, _ in spans.values())
    assert overlap >= 3, spans  # ISO times compare as strings


def test_failing_stage_fails_snakemake_with_the_job_traceback(slurm_dag: Path) -> None:
    run = slurm_dag / "runs" / "tiny"
    # lose the trained checkpoints (a purged scratch filesystem): evaluate must fail loudly on Slurm
    shutil.rmtree(run / "pretrain" / "checkpoints")
    (run / "evaluate" / "_SUCCESS.json").unlink()
    (run / "report" / "_SUCCESS.json").unlink()  # Snakemake skips a missing intermediate under a present target
    proc = snakemake(slurm_dag, "--profile", "slurm", "--config", f"overrides={SMALL}")
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    assert "Traceback" in output, describe(proc)
    assert "checkpoint" in output.lower()
    launch = read_json(run / "evaluate" / "launch.json")
    assert sacct_state(launch["job_id"]) == "FAILED"
    assert not (run / "evaluate" / "_SUCCESS.json").exists()
