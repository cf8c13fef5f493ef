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
  in a plain single process with no group at all.

Reading the job environment (rank, rendezvous address, scheduler variables) to join a multi-process
group is the launcher's job (`qwen_hpc.launch.distributed.ensure_process_group`); this package never reads
it, so domain packages may import it.
"""

from qwen_hpc.parallel.device import (
    DTYPES,
    comm_device,
    compute_device,
    default_backend,
    memory_metrics,
    params_dtype,
    resolve_precision,
    torch_dtype,
)
from qwen_hpc.parallel.groups import (
    all_ranks,
    any_rank,
    barrier,
    model_parallel,
    rank,
    single_process_megatron,
    world_of_one,
    world_size,
)

__all__ = [
    "DTYPES",
    "all_ranks",
    "any_rank",
    "barrier",
    "comm_device",
    "compute_device",
    "default_backend",
    "memory_metrics",
    "model_parallel",
    "params_dtype",
    "rank",
    "resolve_precision",
    "single_process_megatron",
    "torch_dtype",
    "world_of_one",
    "world_size",
]
