"""A multi-task job: two submitit tasks initialise torch.distributed from the job environment and train
data-parallel (DP=2) to the same step count as one task would."""

from __future__ import annotations

from pathlib import Path

import pytest

from qwen_hpc.report.html import read_jsonl
from qwen_hpc.utils.io import read_json
from tests.conftest import run_qwen

pytestmark = pytest.mark.slow

SMALL = ["logger=none", "data.embedded_max_docs_per_source=100", "data.embedded_max_chars_per_source=150000",
         "tokenizer.vocab_size=512"]


def test_two_tasks_train_data_parallel_through_the_local_executor(tmp_path: Path) -> None:
    common = [f"run.root={tmp_path}", "run.name=dp", *SMALL]
    for stage in ("data", "tokenizer", "tokens"):
        run_qwen([stage, *common, "launcher=debug"])
    run_qwen(["pretrain", *common, "launcher=local", "launcher.tasks_per_node=2",
              "pretrain.train.train_iters=12", "pretrain.train.micro_batch_size=4",
              "pretrain.train.global_batch_size=16", "pretrain.train.eval_interval=0",
              "pretrain.optimizer.warmup_iters=2"])
    stage_dir = tmp_path / "dp" / "pretrain"
    metrics = read_json(stage_dir / "_SUCCESS.json")["metrics"]
    assert metrics["world_size"] == 2 and metrics["data_parallel_size"] == 2
    assert metrics["iteration"] == 12 and metrics["consumed_samples"] == 12 * 16
    # only rank 0 logs: one record per step, not two
    steps = [r["step"] for r in read_jsonl(stage_dir / "metrics.jsonl") if "loss" in r]
    assert steps == list(range(1, 13))
    logs = list((stage_dir / "logs").glob("*/*_1_log.err"))
    assert logs, "the second task must have run as its own process"
