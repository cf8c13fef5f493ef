"""Checkpoints of the RLHF loops: one `state.pt` per `iter_<step>` folder, written to a temporary folder and
renamed (a checkpoint is either whole or absent), plus `latest`. Everything a bit-exact resume needs lives in
the payload: weights, optimizer states, the data cursor, normalizer state and the RNG states.

Under tensor parallelism (Megatron's parallel state, TP > 1) a checkpoint is one file per TP rank, each with
that rank's shards of the weights and optimizer states (`state.pt` for TP rank 0, `state_tp<r>.pt` for the
others), written by the ranks of one replica into the same temporary folder and renamed once all are
there; it loads only at the TP size that wrote it (the error says so)."""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Any

import torch

STATE = "state.pt"


def iter_name(step: int) -> str:
    return f"iter_{step:07d}"


def rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])


def _tensor_parallel() -> tuple[int, int, Any]:
    """(TP rank, TP size, TP group) of this process; (0, 1, None) outside Megatron's parallel state."""
    from megatron.core import parallel_state as ps

    if not ps.model_parallel_is_initialized() or ps.get_tensor_model_parallel_world_size() == 1:
        return 0, 1, None
    return (ps.get_tensor_model_parallel_rank(), ps.get_tensor_model_parallel_world_size(),
            ps.get_tensor_model_parallel_group())


def shard_file(shard: int) -> str:
    return STATE if shard == 0 else f"state_tp{shard}.pt"


def save(root: Path, step: int, payload: dict[str, Any], *, keep_last: int = 2) -> Path:
    """Write the checkpoint of `step` (called by every TP rank of the writing replica at TP > 1)."""
    import torch.distributed as dist

    shard, shards, group = _tensor_parallel()
    root.mkdir(parents=True, exist_ok=True)
    final = root / iter_name(step)
    tmp = root / (f".tmp_{iter_name(step)}_{os.getpid()}" if shards == 1 else f".tmp_{iter_name(step)}_tp")
    if shard == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
    if shards > 1:
        dist.barrier(group=group)
    torch.save({**payload, "step": step, "tensor_model_parallel_size": shards}, tmp / shard_file(shard))
    if shards > 1:
        dist.barrier(group=group)  # every shard in the folder before it is renamed
        if shard != 0:
            dist.barrier(group=group)
            return final
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    latest_tmp = root / f".latest_{os.getpid()}"
    latest_tmp.write_text(final.name + "\n")
    os.replace(latest_tmp, root / "latest")
    for old in sorted(p for p in root.glob("iter_*") if p.is_dir())[:-keep_last] if keep_last > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    if shards > 1:
        dist.barrier(group=group)
    return final


def latest(root: Path) -> Path | None:
    """The newest whole checkpoint under `root` (or `root` itself when it is one)."""
    root = Path(root)
    if (root / STATE).is_file():
        return root
    named = root / "latest"
    if named.is_file() and (root / named.read_text().strip() / STATE).is_file():
        return root / named.read_text().strip()
    found = sorted(p for p in root.glob("iter_*") if (p / STATE).is_file())
    return found[-1] if found else None


def load(path: Path) -> dict[str, Any]:
    """This rank's payload: its TP shard's file at TP > 1 (the checkpoint must have been written at this
    TP size), `state.pt` otherwise."""
    shard, shards, _ = _tensor_parallel()
    file = Path(path) / shard_file(shard)
    if not file.is_file():
        raise ValueError(f"{path} has no shard for tensor-parallel rank {shard} ({file.name}): it was written at a "
                         f"smaller tensor_model_parallel_size than this job's {shards}; an RLHF checkpoint loads at the "
                         "TP size that wrote it")
    payload = torch.load(file, map_location="cpu", weights_only=False)
    wrote = payload.get("tensor_model_parallel_size", 1)
    if wrote != shards:
        raise ValueError(
            f"{path} was written at tensor_model_parallel_size={wrote}; this job runs at {shards}: an RLHF "
            "checkpoint loads at the TP size that wrote it (set the stage's tensor_model_parallel_size to match)"
        )
    return payload
