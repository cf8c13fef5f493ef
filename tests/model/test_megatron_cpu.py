"""cpu_shims: CUDA-only calls redirect to the CPU while active, everything is restored afterwards."""

from __future__ import annotations

import pytest
import torch

from qwen_hpc.compat.megatron_cpu import cpu_shims, shims_active

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="the shims are a no-op with CUDA")


def test_shims_redirect_cuda_and_restore() -> None:
    originals = (torch.zeros, torch.cuda.current_device, torch.Tensor.cuda, torch.Tensor.type)
    with cpu_shims():
        assert shims_active()
        assert torch.cuda.current_device() == "cpu"
        torch.cuda.synchronize()
        x = torch.zeros(3, device="cuda")
        y = torch.tensor([1.0], device=torch.device("cuda", 0))
        assert x.device.type == "cpu" and y.device.type == "cpu"
        assert x.cuda() is x
        assert x.type() == "torch.cuda.FloatTensor"
        assert x.type(torch.float64).dtype == torch.float64
        with cpu_shims():  # nested
            assert torch.empty(2, device="cuda").device.type == "cpu"
        assert shims_active()
    assert not shims_active()
    assert (torch.zeros, torch.cuda.current_device, torch.Tensor.cuda, torch.Tensor.type) == originals
    assert torch.zeros(1).type() == "torch.FloatTensor"
