"""Data-parallel replicas for loops that are not Megatron's training loop (the reward model, PPO).

Every replica holds the whole model, takes its share of each batch, and the gradients are summed over the
replicas before the optimizer step, so every replica makes the same update and the weights stay identical
(the contract Megatron's and torch's DDP keep, written out here because these loops also run the KV-cache
generator and a value head on the same modules, which a DDP wrapper's forward hooks do not fit). One
replica writes: each of its tensor-parallel ranks its shard of a checkpoint, its first rank the other files.
With no process group or a group of one, every call is the plain single-process operation, so the loops
read the same with one process or many.

Under tensor parallelism (Megatron's parallel state) a replica is the TP group: its ranks hold shards of
the same models, run the same batch and get the same results, and `clip_grad_norm` counts a TP-sharded
parameter's gradient on every TP rank and a replicated one (norms, the value head) once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from qwen_hpc.parallel.device import comm_device

T = TypeVar("T")


@dataclass(frozen=True)
class Replicas:
    """This process's place among the data-parallel replicas: `rank` of `size`, collectives on `group`."""

    rank: int = 0
    size: int = 1
    group: Any = None  # None: the default group (or no group at all when size == 1)
    shard: int = 0  # tensor-parallel rank within the replica
    shards: int = 1  # tensor-parallel size
    shard_group: Any = None

    @classmethod
    def from_parallel_state(cls) -> Replicas:
        """Megatron's data-parallel group (call inside `model_parallel`); a lone process is one replica."""
        from megatron.core import parallel_state as ps

        if not dist.is_initialized() or not ps.model_parallel_is_initialized():
            return cls()
        return cls(ps.get_data_parallel_rank(), ps.get_data_parallel_world_size(), ps.get_data_parallel_group(),
                   ps.get_tensor_model_parallel_rank(), ps.get_tensor_model_parallel_world_size(),
                   ps.get_tensor_model_parallel_group())

    @property
    def writer(self) -> bool:
        """The one rank that writes files (logs, reports): the first rank of the first replica."""
        return self.rank == 0 and self.shard == 0

    @property
    def checkpoint_writer(self) -> bool:
        """The ranks that write checkpoints: every tensor-parallel rank (its shard) of the first replica."""
        return self.rank == 0

    def share(self, items: Sequence[T]) -> list[T]:
        """This replica's contiguous share of `items` (len(items) must split evenly: the callers check the
        batch sizes in preflight, so every replica has work and makes the same collectives)."""
        if len(items) % self.size:
            raise ValueError(f"{len(items)} items do not split over {self.size} data-parallel replicas")
        per = len(items) // self.size
        return list(items[self.rank * per : (self.rank + 1) * per])

    def sum_grads(self, params: Iterable[torch.nn.Parameter]) -> None:
        """Sum `.grad` over the replicas, in one flat buffer per dtype (params without a gradient are the
        same on every replica, e.g. an LM head whose output a value model ignores, and are skipped)."""
        if self.size == 1:
            return
        grads = [p.grad for p in params if p.grad is not None]
        by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
        for g in grads:
            by_dtype.setdefault(g.dtype, []).append(g)
        for group in by_dtype.values():
            # through the backend's device: NCCL reduces CUDA tensors only, wherever the model computes
            flat = torch.cat([g.reshape(-1) for g in group]).to(comm_device())
            dist.all_reduce(flat, group=self.group)
            offset = 0
            for g in group:
                g.copy_(flat[offset : offset + g.numel()].view_as(g))  # copy_ moves it back to g's device
                offset += g.numel()

    def sum(self, values: Sequence[float]) -> list[float]:
        """Element-wise sums of `values` over the replicas (float64, so counts stay exact)."""
        if self.size == 1:
            return [float(v) for v in values]
        t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=comm_device())
        dist.all_reduce(t, group=self.group)
        return t.tolist()

    def mean(self, metrics: dict[str, float]) -> dict[str, float]:
        """Each metric averaged over the replicas (every replica has the same keys)."""
        keys = sorted(metrics)
        return dict(zip(keys, (v / self.size for v in self.sum([metrics[k] for k in keys])), strict=True))

    def gather(self, obj: T) -> list[T]:
        """Every replica's `obj`, in replica order (on every replica)."""
        if self.size == 1:
            return [obj]
        out: list[Any] = [None] * self.size
        dist.all_gather_object(out, obj, group=self.group)
        return out

    def any(self, flag: bool) -> bool:
        """True on every rank of the job if it is True on any (a stop request: all ranks stop together, or
        the others would wait forever in the next collective)."""
        if self.size * self.shards == 1:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], dtype=torch.float64, device=comm_device())
        dist.all_reduce(t)
        return bool(t.item())

    def barrier(self) -> None:
        if self.size * self.shards > 1:
            dist.barrier()

    def clip_grad_norm(self, params: Iterable[torch.nn.Parameter], max_norm: float) -> float:
        """Scale the gradients to a total L2 norm of at most `max_norm` and return the norm before, over the
        whole model: a TP-sharded parameter's squared gradient is summed over the TP ranks, a replicated
        one counted once. At TP = 1, torch's own clipping."""
        params = [p for p in params if p.grad is not None]
        if self.shards == 1:
            return float(torch.nn.utils.clip_grad_norm_(params, max_norm))
        own = [p.grad.detach().float().pow(2).sum() for p in params
               if getattr(p, "tensor_model_parallel", False) or self.shard == 0]
        total = torch.stack(own).sum() if own else torch.zeros(())
        total = total.to(comm_device())
        dist.all_reduce(total, group=self.shard_group)
        norm = float(total.sqrt())
        scale = max_norm / (norm + 1e-6)
        if scale < 1.0:
            for p in params:
                p.grad.detach().mul_(scale)
        return norm
