"""Run Snakemake on the project's workflow in a scratch working directory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, child_env
from tests.stages.conftest import BRANCH_STEPS

SNAKEFILE = REPO / "workflow" / "Snakefile"
STAGES = ("data", "tokenizer", "tokens", "pretrain", "sft", "evaluate", "report")
MATH_STAGES = ("math_sft", "math_evaluate")  # planned only where ../shared/datasets/gsm8k exists
# every stage `rule all` plans for the tiny experiment
RECIPE_STAGES = (*STAGES, "long_context", "export_hf", "agent_eval", "reward_model_pmp", "reward_model", "ppo",
                 "code_pretrain", "code_sft", *MATH_STAGES)


# The tiny DAG the tests build: the tiny experiment with short chat stages. Here only the orchestration is under
# test; what the stages learn is measured where they run alone (tests/stages: the SFT's default 2,000 steps, the
# reward models' pairs, PPO's steps) and the branches take the Slurm DAG's few steps.
TINY_DAG_OVERRIDES = (
    "sft.train.train_iters=100", "sft.heldout_eval=64",
    "reward_model_pmp.synthetic.train_pairs=480", "reward_model.synthetic.train_pairs=160",
    "ppo.steps=12", "ppo.value_warmup_steps=3", "ppo.heldout_prompts=16",
    *BRANCH_STEPS,
)


def tiny_config(*overrides: str) -> list[str]:
    """`--config overrides=...` for a Snakemake call on the tiny DAG: its own overrides, then `overrides`."""
    return ["--config", f"overrides={' '.join((*TINY_DAG_OVERRIDES, *overrides))}"]


def snakemake(workdir: Path, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    """Snakemake from the project root (where profiles are looked up), working in `workdir`."""
    cmd = [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "--directory", str(workdir), *args]
    return subprocess.run(cmd, cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=timeout)


def describe(proc: subprocess.CompletedProcess[str]) -> str:
    return f"exit {proc.returncode}\n--- stdout\n{proc.stdout[-6000:]}\n--- stderr\n{proc.stderr[-12000:]}"
