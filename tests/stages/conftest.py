"""One small experiment, run stage by stage (each `qwen-hpc <stage>` in its own process, as a job would),
shared by the per-stage tests: each test file checks its own stage's outputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_qwen

# the Code-Qwen / Math-Qwen branches: a few steps each (tiny.yaml sets their shapes); also used by the Slurm DAG test
BRANCH_STEPS = [
    "code_pretrain.train.train_iters=6",
    "code_pretrain.train.eval_interval=3",
    "code_pretrain.train.save_interval=3",
    "code_sft.train.train_iters=4",
    "code_sft.train.eval_interval=2",
    "code_sft.embedded.train_conversations=100",
    "code_sft.heldout_eval=2",
    "math_sft.train.train_iters=4",
    "math_sft.train.eval_interval=2",
    "math_sft.sources.0.max_conversations=100",
    "math_evaluate.limit=2",
]

# Small enough for a few seconds per stage on 2 cores, big enough to show learning.
SMALL = [
    "data.embedded_max_docs_per_source=300",
    "data.embedded_max_chars_per_source=400000",
    "tokenizer.vocab_size=768",
    "tokens.workers=2",
    "pretrain.train.train_iters=60",
    "pretrain.train.eval_interval=30",
    "pretrain.train.save_interval=30",
    "pretrain.optimizer.warmup_iters=5",
    "evaluate.eval_iters=4",
    "long_context.lengths=[0.5,1,2,4]",
    "long_context.num_documents=2",
    # sft: the tiny default (2,000 steps; test_sft's tiny_sft scores it), the policy PMP and PPO start from
    "reward_model_pmp.synthetic.train_pairs=1200",
    "reward_model_pmp.epochs=2",
    "reward_model_pmp.lr=5e-4",
    "reward_model_pmp.synthetic.heldout_pairs=100",
    "reward_model_pmp.hh_eval_limit=16",
    "reward_model.synthetic.train_pairs=160",
    "reward_model.synthetic.heldout_pairs=100",
    "reward_model.hh_eval_limit=16",
    *BRANCH_STEPS,
]
ORDER = ("data", "tokenizer", "tokens", "pretrain", "evaluate", "long_context", "sft", "report", "reward_model_pmp",
         "reward_model")
BRANCHES = ("code_pretrain", "code_sft", "math_sft", "math_evaluate")


class SmallRun:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.done: set[str] = set()
        self.outputs: dict[str, str] = {}

    @property
    def run_dir(self) -> Path:
        return self.root / "small"

    def args(self, *extra: str) -> list[str]:
        return [f"run.root={self.root}", "run.name=small", "launcher=debug", *SMALL, *extra]

    def stage(self, name: str) -> Path:
        if name in BRANCHES:  # a branch: its upstream closure only
            from qwen_hpc.stages.registry import get_stage

            def closure(stage: str) -> set[str]:
                return {stage}.union(*(closure(up) for up in get_stage(stage).UPSTREAM))

            needed = closure(name)
            todo = [s for s in (*ORDER, *BRANCHES) if s in needed]
        else:
            todo = list(ORDER[: ORDER.index(name) + 1])
        for upstream in todo:
            if upstream not in self.done:
                proc = run_qwen([upstream, *self.args()])
                self.outputs[upstream] = proc.stdout + proc.stderr
                self.done.add(upstream)
        return self.run_dir / name


@pytest.fixture(scope="session")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> SmallRun:
    return SmallRun(tmp_path_factory.mktemp("runs"))
