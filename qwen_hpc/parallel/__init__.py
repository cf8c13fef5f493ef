"""Parallel setup in one place: the process group, Megatron's model-parallel state, devices and dtypes.

Every caller that needs torch.distributed or Megatron's TP/PP/DP groups goes through here, so the setup is
written once (the role torchtitan's `ParallelDims` and nanochat's `compute_init` play there):

- `world_of_one()`: a one-process gloo default group when the caller has none (torn down afterwards);
- `model_parallel(tp, pp)`: Megatron's TP/PP/DP groups on the existing default group, created and torn
  down here (or reused when the caller already made the same layout);
- `single_process_megatron()`: both, at TP = PP = 1, with the CPU shims and a seeded RNG tracker — the one
  call for loading, converting or describing a model outside training;
- `compute_device()`, `comm_device()`, `default_backend()`, `resolve_precision()`, `torch_dtype()`: where
  tensors live and in which precision a run trains;
- `rank()`, `world_size()`, `barrier()`, `any_rank()`, `all_ranks()`: agreement across ranks that also works
  in a plain single process with no group at all;
- `Replicas`: data-parallel replicas for loops outside Megatron's training loop (reward model, PPO): each
  rank's share of a batch, gradients summed over the replicas, one writer;
- `MapFn`, `sequential_map`: the map interface domain code takes for independent work items (the
  executors that spread them over processes or a Slurm array are the launcher's, `launch/array.py`);
  `SubmitFn`, `submit_here`: the same for one call run apart (`launch.array.spawn_apart` spawns it).

Reading the job environment (rank, rendezvous address, scheduler variables) to join a multi-process
group is the launcher's job (`qwen_hpc.launch.distributed.ensure_process_group`); this package never reads
it, so domain packages may import it.
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> submodule, imported on first use: `parallel.maps` is imported by data workers, which must not
# pay for importing torch and Megatron (device, groups) to get `sequential_map`
_WHERE = {
    "DTYPES": "device",
    "comm_device": "device",
    "compute_device": "device",
    "default_backend": "device",
    "memory_metrics": "device",
    "params_dtype": "device",
    "resolve_precision": "device",
    "torch_dtype": "device",
    "all_ranks": "groups",
    "any_rank": "groups",
    "barrier": "groups",
    "model_parallel": "groups",
    "rank": "groups",
    "single_process_megatron": "groups",
    "world_of_one": "groups",
    "world_size": "groups",
    "Replicas": "replicas",
    "MapFn": "maps",
    "sequential_map": "maps",
    "SubmitFn": "maps",
    "submit_here": "maps",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value
    return value
