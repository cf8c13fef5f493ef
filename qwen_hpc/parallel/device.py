"""Where tensors live and in which precision: the one place that asks whether CUDA is there."""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.distributed as dist

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def default_backend() -> str:
    """NCCL where there is a GPU, gloo on the CPU."""
    return "nccl" if torch.cuda.is_available() else "gloo"


def compute_device() -> torch.device:
    """The device this rank computes on: its current CUDA device, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def comm_device() -> torch.device:
    """Where small tensors for collectives must live: NCCL only reduces CUDA tensors, gloo CPU ones."""
    if dist.is_initialized() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def resolve_precision(precision: str) -> tuple[bool, str]:
    """(bf16?, reason) for a `precision` of `bf16`, `fp32` or `auto`.

    `auto` trains in BF16 with FP32 master weights on CUDA, as the report does, and in FP32 on the CPU
    (which has no fast BF16).
    """
    if precision == "bf16":
        return True, "requested"
    if precision == "fp32":
        return False, "requested"
    if torch.cuda.is_available():
        return True, "auto: CUDA available (BF16 mixed precision with FP32 master weights, Qwen report §2.4)"
    return False, "auto: no CUDA device (CPU BF16 is ~27x slower than FP32)"


def params_dtype(bf16: bool) -> torch.dtype:
    """The dtype parameters are built in for a run whose precision is `bf16` (else FP32)."""
    return torch.bfloat16 if bf16 else torch.float32


def torch_dtype(name: str) -> torch.dtype:
    """`float32` | `bfloat16` | `float16` as a torch dtype; anything else is a ValueError naming it."""
    try:
        return DTYPES[name]
    except KeyError:
        raise ValueError(f"dtype={name!r} must be one of {'|'.join(DTYPES)}") from None


def memory_metrics() -> dict[str, float]:
    """GiB of memory: the GPU's peak allocation by torch on CUDA; this process's resident set on the CPU."""
    if torch.cuda.is_available():
        return {
            "mem_max_allocated_gib": torch.cuda.max_memory_allocated() / 2**30,
            "mem_reserved_gib": torch.cuda.memory_reserved() / 2**30,
        }
    try:  # Linux: current resident set
        rss = int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):  # elsewhere: the peak (ru_maxrss is KiB on Linux/BSD)
        import resource

        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"mem_rss_gib": rss / 2**30}
