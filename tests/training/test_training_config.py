"""TrainConfig / OptimizerConfig validation: every error names the field it is about."""

from __future__ import annotations

import pytest

from qwen_hpc.training.config import OptimizerConfig, TrainConfig, check_parallel_layout


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"train_iters": 0}, "train.train_iters=0"),
        (
            {"micro_batch_size": 3, "global_batch_size": 8},
            "train.global_batch_size=8 must be divisible by train.micro_batch_size=3",
        ),
        ({"split": "95,5"}, "train.split='95,5'"),
        ({"split": "0,5,0"}, "train.split='0,5,0'"),
        ({"precision": "fp16"}, "train.precision='fp16'"),
        ({"eval_iters": 0, "eval_interval": 10}, "train.eval_iters=0"),
        ({"keep_last_checkpoints": 0}, "train.keep_last_checkpoints=0"),
        ({"peak_flops_per_device": -1.0}, "train.peak_flops_per_device=-1.0"),
        ({"tensor_model_parallel_size": 0}, "train.tensor_model_parallel_size=0"),
    ],
)
def test_train_config_errors_name_the_field(overrides: dict, field: str) -> None:
    with pytest.raises(ValueError) as err:
        TrainConfig(**overrides)
    assert field in str(err.value)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"lr": 0.0}, "optimizer.lr=0.0"),
        ({"decay_style": "exp"}, "optimizer.decay_style='exp'"),
        ({"beta2": 1.0}, "optimizer.beta2=1.0"),
        ({"min_lr_ratio": 1.5}, "optimizer.min_lr_ratio=1.5"),
        ({"warmup_iters": -1}, "optimizer.warmup_iters=-1"),
        ({"decay_iters": 0}, "optimizer.decay_iters=0"),
        ({"clip_grad": -1.0}, "optimizer.clip_grad=-1.0"),
    ],
)
def test_optimizer_config_errors_name_the_field(overrides: dict, field: str) -> None:
    with pytest.raises(ValueError) as err:
        OptimizerConfig(**overrides)
    assert field in str(err.value)


def test_paper_defaults() -> None:
    opt = OptimizerConfig()
    assert (opt.lr, opt.beta1, opt.beta2, opt.eps, opt.weight_decay, opt.clip_grad) == (
        3e-4,
        0.9,
        0.95,
        1e-8,
        0.1,
        1.0,
    )
    assert opt.min_lr == pytest.approx(3e-5) and opt.decay_style == "cosine"
    assert opt.resolved_decay_iters(200) == 200


def test_layout_checks_need_the_world_size() -> None:
    train = TrainConfig(micro_batch_size=4, global_batch_size=8, tensor_model_parallel_size=2)
    check_parallel_layout(train, OptimizerConfig(), world_size=4)  # dp = 2: 8 = 4 x 2 x 1
    with pytest.raises(
        ValueError,
        match=r"train.global_batch_size=8 must be divisible by train.micro_batch_size=4 × data-parallel size 4",
    ):
        check_parallel_layout(train, OptimizerConfig(), world_size=8)
    with pytest.raises(ValueError, match="train.tensor_model_parallel_size=2"):
        check_parallel_layout(train, OptimizerConfig(), world_size=3)
    with pytest.raises(ValueError, match="optimizer.warmup_iters=300"):
        check_parallel_layout(TrainConfig(train_iters=200), OptimizerConfig(warmup_iters=300), world_size=1)


def test_omegaconf_structured_config_roundtrip() -> None:
    omegaconf = pytest.importorskip("omegaconf")
    for cls in (TrainConfig, OptimizerConfig):
        obj = omegaconf.OmegaConf.to_object(omegaconf.OmegaConf.structured(cls))
        assert obj == cls()
