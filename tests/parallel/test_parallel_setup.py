"""The one parallel-setup module: a world of one, Megatron's model-parallel state, devices, agreement."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
from megatron.core import parallel_state as ps

from qwen_hpc.parallel import (
    all_ranks,
    any_rank,
    comm_device,
    compute_device,
    default_backend,
    model_parallel,
    params_dtype,
    rank,
    resolve_precision,
    single_process_megatron,
    torch_dtype,
    world_of_one,
    world_size,
)


def test_world_of_one_leaves_the_callers_state_as_it_found_it() -> None:
    before = dist.is_initialized()
    with world_of_one():
        assert dist.is_initialized()
        assert (rank(), world_size()) == (0, 1)
        with world_of_one():  # nested: reuses the group, does not tear it down
            assert dist.is_initialized()
        assert dist.is_initialized()
    assert dist.is_initialized() == before


def test_model_parallel_creates_reuses_and_tears_down() -> None:
    with world_of_one():
        outer_existed = ps.model_parallel_is_initialized()
        with model_parallel(1, 1, seed=3):
            assert ps.model_parallel_is_initialized()
            assert ps.get_tensor_model_parallel_world_size() == 1
            first = torch.rand(4)
            with model_parallel(1, 1):  # same layout: reused, left in place
                assert ps.model_parallel_is_initialized()
            assert ps.model_parallel_is_initialized()
        assert ps.model_parallel_is_initialized() == outer_existed
        with model_parallel(1, 1, seed=3):  # the seed reseeds torch: same draws
            assert torch.equal(torch.rand(4), first)


def test_model_parallel_refuses_another_layout_and_a_missing_group() -> None:
    with world_of_one(), model_parallel(1, 1):
        with pytest.raises(RuntimeError, match="already initialised with TP=1/PP=1, not TP=2/PP=1"):
            with model_parallel(2, 1):
                pass
    if not dist.is_initialized():
        with pytest.raises(RuntimeError, match="world_of_one"):
            with model_parallel(1, 1):
                pass


def test_single_process_megatron_builds_a_model() -> None:
    from qwen_hpc.model.builder import build_model, padded_vocab_size
    from qwen_hpc.model.config import ModelConfig

    cfg = ModelConfig(num_layers=1, hidden_size=64, num_attention_heads=4, ffn_hidden_size=128, seq_length=16)
    with single_process_megatron(seed=0):
        model = build_model(cfg, padded_vocab_size(100, cfg), backend="local")
        assert sum(p.numel() for p in model.parameters()) == cfg.num_parameters(padded_vocab_size(100, cfg))


def test_agreement_without_and_with_a_group() -> None:
    assert any_rank(True) and not any_rank(False)
    assert all_ranks(True) and not all_ranks(False)
    with world_of_one():
        assert any_rank(True) and not any_rank(False)
        assert all_ranks(True) and not all_ranks(False)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CPU choices")
def test_device_and_precision_choices_on_the_cpu() -> None:
    assert default_backend() == "gloo"
    assert compute_device() == torch.device("cpu") == comm_device()
    assert resolve_precision("auto")[0] is False
    assert resolve_precision("bf16") == (True, "requested")
    assert resolve_precision("fp32") == (False, "requested")
    assert params_dtype(True) is torch.bfloat16 and params_dtype(False) is torch.float32


def test_torch_dtype_names_the_bad_value() -> None:
    assert torch_dtype("bfloat16") is torch.bfloat16
    with pytest.raises(ValueError, match="dtype='fp8' must be one of float32|bfloat16|float16"):
        torch_dtype("fp8")
