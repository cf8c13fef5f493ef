"""Stage `math_sft` (Math-Qwen-Chat, spec §11) through the CLI: GSM8K worked solutions (from run.data_root),
sft's code under the `math_sft` section, from the base model, at the branch's sequence length; the paper
experiments pass preflight with the spec's numbers."""

from __future__ import annotations

import pytest

from qwen_hpc.config.compose import load
from qwen_hpc.stages.preflight import preflight
from qwen_hpc.utils.io import read_json


def test_math_sft_trains_on_gsm8k_from_the_base_model(small_run, data_root) -> None:
    out = small_run.stage("math_sft")
    marker = read_json(out / "_SUCCESS.json")
    metrics = marker["metrics"]
    assert marker["inputs"].keys() == {"tokenizer", "pretrain"}
    assert metrics["iteration"] == 4 and metrics["init_checkpoint"].endswith("pretrain/checkpoints")
    assert metrics["masking"] == "paper"
    stats = read_json(out / "data_stats.json")
    assert stats["sources"]["gsm8k"]["conversations"] == 100 and stats["malformed"] == 0
    assert (out / "checkpoints" / "latest").read_text().strip() == "iter_0000004"


@pytest.mark.parametrize("experiment", ["math_qwen_7b", "math_qwen_14b"])
def test_math_qwen_experiments_pass_preflight(experiment: str, data_root) -> None:
    _, cfg = load([f"experiment={experiment}", "launcher=slurm"])
    for stage in ("math_sft", "math_evaluate"):
        preflight(stage, cfg)
    m = cfg.math_sft
    assert (m.seq_length, m.optimizer.lr, m.train.train_iters, m.masking) == (1024, 2e-5, 50000, "paper")
    assert (m.train.global_batch_size, m.optimizer.weight_decay, m.dropout, m.optimizer.clip_grad) == (128, 0.1, 0.1, 1.0)
    assert [s.format for s in m.sources] == ["gsm8k"]
    assert cfg.math_evaluate.tasks == ["gsm8k", "math"] and cfg.math_evaluate.math_split == "math500"
    assert cfg.math_evaluate.chat and cfg.recipe.math_qwen
