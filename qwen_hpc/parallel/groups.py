"""Process groups and Megatron's model-parallel state: created once, reused if present, torn down by
whoever created them; and the rank/agreement helpers that also work with no group at all."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as dist

from qwen_hpc.compat.megatron_cpu import cpu_shims, model_parallel_seed
from qwen_hpc.parallel.device import comm_device


def rank() -> int:
    """This process's global rank (0 without a process group)."""
    return dist.get_rank() if dist.is_initialized() else 0


def world_size() -> int:
    """The number of ranks (1 without a process group)."""
    return dist.get_world_size() if dist.is_initialized() else 1


def barrier() -> None:
    """Wait for every rank (nothing to wait for without a process group)."""
    if dist.is_initialized():
        dist.barrier()


def any_rank(flag: bool, group: Any = None) -> bool:
    """True on every rank (of `group`, default: all) if `flag` is True on any of them (e.g. a stop request
    that reached one node: the ranks of a tensor-parallel group must stop together)."""
    if not dist.is_initialized():
        return flag
    t = torch.tensor([1 if flag else 0], dtype=torch.int64, device=comm_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX, group=group)
    return bool(t.item())


def all_ranks(flag: bool, group: Any = None) -> bool:
    """True on every rank (of `group`) only if `flag` is True on every one of them."""
    return not any_rank(not flag, group)


@contextlib.contextmanager
def world_of_one() -> Iterator[None]:
    """A one-process gloo default group if the caller has none (torn down afterwards); else the caller's.

    Megatron code asks torch.distributed for ranks even in a lone process (dataset caches, parallel state);
    an in-memory store needs no port.
    """
    if dist.is_initialized():
        yield
        return
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()
        # the groups' gloo threads stop only when the groups are freed, and models built in here hold them in
        # reference cycles: collect now, so a long-lived process does not keep them polling
        gc.collect()


@contextlib.contextmanager
def model_parallel(tp: int = 1, pp: int = 1, *, seed: int | None = None) -> Iterator[None]:
    """Megatron's TP/PP/DP groups on the caller's default group, inside `cpu_shims()`.

    Created here and destroyed on exit, unless the caller already initialised the same TP/PP sizes (then
    they are reused and left in place); other sizes are an error. `seed` (if given) seeds Python, NumPy,
    torch and Megatron's RNG tracker once the groups exist.
    """
    from megatron.core import parallel_state as ps

    if not dist.is_initialized():
        raise RuntimeError(
            "model-parallel state needs an initialised torch.distributed default group "
            "(ensure_process_group in a job, world_of_one() in a lone process)"
        )
    with cpu_shims():
        created = not ps.model_parallel_is_initialized()
        if created:
            ps.initialize_model_parallel(tensor_model_parallel_size=tp, pipeline_model_parallel_size=pp)
        else:
            have = (ps.get_tensor_model_parallel_world_size(), ps.get_pipeline_model_parallel_world_size())
            if have != (tp, pp):
                raise RuntimeError(
                    f"Megatron parallel state is already initialised with TP={have[0]}/PP={have[1]}, "
                    f"not TP={tp}/PP={pp}"
                )
        try:
            if seed is not None:
                model_parallel_seed(seed)
            yield
        finally:
            if created:
                ps.destroy_model_parallel()


@contextlib.contextmanager
def single_process_megatron(seed: int = 0) -> Iterator[None]:
    """A world of one (if the caller has no group) with TP = PP = 1 and a seeded RNG: the setup for loading,
    converting or describing a whole (unsharded) model outside training."""
    with world_of_one(), model_parallel(1, 1, seed=seed):
        yield
