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


def test_device_contexts_still_work_after_shims_were_active_under_one() -> None:
    """A model built on the meta device inside the shims (as `count_built_parameters` does) must not leave
    torch's device context blind to the real factories afterwards: transformers' `from_pretrained` builds on
    `torch.device("meta")` and then left the rotary `inv_freq` buffer as uninitialised memory."""
    from torch.utils._device import _device_constructors

    _device_constructors.cache_clear()  # as in a fresh process whose first device context is inside the shims
    with cpu_shims(), torch.device("meta"):
        assert torch.zeros(2).device.type == "meta"
    with torch.device("meta"):
        assert torch.empty(1).device.type == "meta" and torch.nn.Linear(2, 2).weight.device.type == "meta"
