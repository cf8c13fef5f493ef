"""The LR schedules the recipe needs (cosine to 10 %, constant after warmup) and the model × layout checks."""

from __future__ import annotations

import pytest
import torch

from qwen_hpc.model.config import ModelConfig
from qwen_hpc.training.config import OptimizerConfig, TrainConfig, check_model_parallel, check_parallel_layout
from qwen_hpc.training.loop import build_scheduler


def _lrs(optim: OptimizerConfig, iters: int) -> list[float]:
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=optim.lr)
    scheduler = build_scheduler(opt, TrainConfig(train_iters=iters), optim)
    lrs = []
    for _ in range(iters):
        scheduler.step(increment=1)
        lrs.append(opt.param_groups[0]["lr"])
    return lrs


def test_cosine_to_ten_percent_after_warmup() -> None:
    lrs = _lrs(OptimizerConfig(lr=3e-4, warmup_iters=20), 200)
    assert lrs[0] == pytest.approx(3e-4 / 20) and lrs[19] == pytest.approx(3e-4)
    assert lrs[-1] == pytest.approx(3e-5) and all(a >= b for a, b in zip(lrs[19:], lrs[20:], strict=False))


def test_constant_after_warmup_is_expressible() -> None:
    lrs = _lrs(OptimizerConfig(lr=1e-4, warmup_iters=10, decay_style="constant"), 100)
    assert lrs[4] == pytest.approx(5e-5)
    assert lrs[9:] == [pytest.approx(1e-4)] * 91


def test_model_must_split_over_tensor_and_pipeline_ranks() -> None:
    model = ModelConfig(num_layers=6, num_attention_heads=4, hidden_size=128, ffn_hidden_size=352)
    check_model_parallel(model, TrainConfig(tensor_model_parallel_size=4, pipeline_model_parallel_size=3))
    with pytest.raises(ValueError, match="model.num_attention_heads=4 must be divisible by .*=8"):
        check_model_parallel(model, TrainConfig(tensor_model_parallel_size=8))
    with pytest.raises(
        ValueError, match="model.num_layers=6 must be divisible by .*pipeline_model_parallel_size=4"
    ):
        check_model_parallel(model, TrainConfig(pipeline_model_parallel_size=4))
    with pytest.raises(ValueError, match="model.ffn_hidden_size=352 must be divisible"):
        check_model_parallel(
            ModelConfig(num_attention_heads=6, hidden_size=192, ffn_hidden_size=352),
            TrainConfig(tensor_model_parallel_size=3),
        )
    with pytest.raises(ValueError, match="num_attention_heads"):
        check_parallel_layout(
            TrainConfig(tensor_model_parallel_size=8, global_batch_size=64),
            OptimizerConfig(),
            64,
            model=model,
        )
