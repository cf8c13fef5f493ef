"""Make Megatron-Core 0.16 run without CUDA: one context manager, active only while Megatron runs.

Megatron-Core hard-codes CUDA in a handful of places that a CPU (gloo) run still reaches; see
docs/megatron-core-on-cpu.md. Every one of them is one of four patterns, so four small patches cover them
all instead of one patch per call site:

| pattern in Megatron                                    | call sites it covers                        |
|--------------------------------------------------------|---------------------------------------------|
| ``device=torch.cuda.current_device()``                 | RotaryEmbedding.get_emb (inv_freq),          |
|                                                        | GlobalMemoryBuffer.get_tensor, P2P buffers,  |
|                                                        | DDP grad buffers, TP gathers, dist_ckpt load |
| ``device="cuda"`` literal in a tensor factory          | schedules' token counter, clip_grad norms,   |
|                                                        | optimizer found_inf/scale, dist_ckpt verify  |
| ``torch.cuda.synchronize()`` / ``tensor.cuda()``       | dist_checkpointing save/load, P2P, optimizer |
| ``param.type() == "torch.cuda.FloatTensor"`` checks    | get_megatron_optimizer, distributed          |
|                                                        | optimizer, clip_grad_by_total_norm_fp32      |

While `cpu_shims()` is active: `torch.cuda.current_device()` returns ``"cpu"``, `torch.cuda.synchronize()`
does nothing, the tensor factories below map a CUDA ``device`` to the CPU, `Tensor.cuda()` returns the
tensor itself, and `Tensor.type()` (no argument) reports a CPU tensor under its ``torch.cuda.*`` name.
On a CPU-only machine each of these calls would otherwise raise, so no working call changes meaning.
With CUDA present the context manager does nothing at all.

The patches are process-global (Python has no other way to reach module attributes Megatron looks up at
call time), so they are reference-counted: nested or repeated `with cpu_shims():` blocks are fine, and the
originals come back when the outermost block exits.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import random
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

log = logging.getLogger(__name__)

# Tensor factories Megatron calls with a CUDA device (literal "cuda" or current_device()).
_FACTORIES = (
    "tensor",
    "as_tensor",
    "zeros",
    "ones",
    "empty",
    "full",
    "arange",
    "zeros_like",
    "ones_like",
    "empty_like",
    "full_like",
)

_lock = threading.RLock()
_depth = 0
_saved: list[tuple[Any, str, Any]] = []


def _is_cuda_device(device: Any) -> bool:
    if isinstance(device, str):
        return device.startswith("cuda")
    if isinstance(device, torch.device):
        return device.type == "cuda"
    # A bare int is a CUDA ordinal for torch's factories.
    return isinstance(device, int) and not isinstance(device, bool)


def _cpu_factory(fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> torch.Tensor:
        if _is_cuda_device(kwargs.get("device")):
            kwargs["device"] = "cpu"
        return fn(*args, **kwargs)

    return wrapper


def _tensor_cuda(self: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    # `x.cuda()` on a CUDA tensor returns `x`; here every tensor is "on the device" already.
    return self


def _tensor_type(orig: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(orig)
    def type_(self: torch.Tensor, dtype: Any = None, non_blocking: bool = False, **kwargs: Any) -> Any:
        if dtype is None and not kwargs:
            name = orig(self)
            # "torch.FloatTensor" -> "torch.cuda.FloatTensor", the string Megatron's checks expect.
            if self.device.type == "cpu" and name.startswith("torch.") and ".cuda." not in name:
                return "torch.cuda." + name[len("torch.") :]
            return name
        return orig(self, dtype, non_blocking, **kwargs)

    return type_


def _install() -> None:
    # torch's `with torch.device(...)` context recognises tensor factories by identity, in a set it builds on
    # first use and caches for the life of the process (torch.utils._device._device_constructors). Built
    # while our wrappers stand in for torch.zeros & co., the set would hold the wrappers, and once the
    # originals come back every later `with torch.device("meta")` would silently allocate on the CPU
    # instead (transformers' from_pretrained then leaves its rotary inv_freq uninitialised). Build it first.
    from torch.utils._device import _device_constructors

    _device_constructors()

    def patch(owner: Any, name: str, new: Any) -> None:
        _saved.append((owner, name, getattr(owner, name)))
        setattr(owner, name, new)

    patch(torch.cuda, "current_device", lambda: "cpu")
    patch(torch.cuda, "synchronize", lambda device=None: None)
    for name in _FACTORIES:
        patch(torch, name, _cpu_factory(getattr(torch, name)))
    patch(torch.Tensor, "cuda", _tensor_cuda)
    patch(torch.Tensor, "type", _tensor_type(torch.Tensor.type))


def _uninstall() -> None:
    while _saved:
        owner, name, orig = _saved.pop()
        setattr(owner, name, orig)


@contextlib.contextmanager
def cpu_shims() -> Iterator[None]:
    """Let Megatron-Core calls inside this block run on the CPU; a no-op where CUDA is available."""
    global _depth
    if torch.cuda.is_available():
        yield
        return
    with _lock:
        if _depth == 0:
            _install()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                _uninstall()


def shims_active() -> bool:
    return _depth > 0


def model_parallel_seed(seed: int) -> None:
    """Seed python, numpy and torch, then Megatron's model-parallel RNG tracker.

    On GPU this is Megatron's `model_parallel_cuda_manual_seed(seed)`. On CPU the regular tracker would call
    `torch.cuda.get_rng_state()`; the "inference" tracker avoids that (its `fork()` is a no-op, so dropout
    inside tensor-parallel regions draws from the CPU generator seeded here). Callers pass the seed they
    want per pipeline stage (Megatron's convention is `seed + 100 * pp_rank`). `force_reset_rng` lets a
    process build several models one after the other (tests, evaluation after training).
    """
    from megatron.core.tensor_parallel.random import model_parallel_cuda_manual_seed

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        model_parallel_cuda_manual_seed(seed, force_reset_rng=True)
    else:
        model_parallel_cuda_manual_seed(seed, inference_rng_tracker=True, force_reset_rng=True)
