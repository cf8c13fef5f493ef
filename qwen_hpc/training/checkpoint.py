"""Resumable training checkpoints with Megatron-Core `dist_checkpointing` (torch_dist format).

A checkpoint holds everything that decides the next step (architecture doc, "Checkpoint"): the model and
optimizer shards, the LR scheduler, the RNG states of every rank (python, numpy, torch, CUDA and Megatron's
tracker), the iteration, the number of consumed samples (the data cursor) and an `extra` dict where the
caller keeps the W&B run id and the config hash. Resuming from it reproduces the uninterrupted run.

Layout under `<ckpt_root>`:

    iter_0000100/     one checkpoint; written as .iter_0000100.tmp/ and renamed when every rank is done
    iter_0000200/
    latest            text file "iter_0000200", replaced atomically and only after the rename

Only the newest `keep_last` checkpoints are kept. `find_latest_valid` starts from `latest` and walks back
through older checkpoints when one fails to load (a warning names it), so a corrupt newest checkpoint costs
one save interval, not the run.
"""

from __future__ import annotations

import logging
import os
import random
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from megatron.core import dist_checkpointing
from megatron.core import parallel_state as ps
from megatron.core.dist_checkpointing.mapping import ShardedObject
from torch.distributed.checkpoint.api import CheckpointException

from qwen_hpc.compat.megatron_cpu import cpu_shims
from qwen_hpc.parallel import all_ranks, barrier, rank
from qwen_hpc.utils import io

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
LATEST = "latest"
_ITER_RE = re.compile(r"^iter_(\d{7,})$")
T = TypeVar("T")


def iter_name(iteration: int) -> str:
    return f"iter_{iteration:07d}"


@dataclass
class TrainingState:
    """The scalar part of a checkpoint."""

    iteration: int = 0
    consumed_samples: int = 0
    skipped_steps: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------------
# parallel layout of this rank


def _layout() -> dict[str, int]:
    return {
        "tp": ps.get_tensor_model_parallel_world_size(),
        "pp": ps.get_pipeline_model_parallel_world_size(),
        "dp": ps.get_data_parallel_world_size(),
    }


def _coords() -> tuple[int, int, int]:
    return (
        ps.get_pipeline_model_parallel_rank(),
        ps.get_tensor_model_parallel_rank(),
        ps.get_data_parallel_rank(),
    )


# ---------------------------------------------------------------------------------------------------------
# RNG states (stored as plain tensors and tuples so that torch.load(weights_only=True) accepts them)


def get_rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": (np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        from megatron.core.tensor_parallel.random import get_cuda_rng_tracker

        state["cuda"] = torch.cuda.get_rng_state()
        state["tracker"] = get_cuda_rng_tracker().get_states()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if torch.cuda.is_available() and "cuda" in state:
        from megatron.core.tensor_parallel.random import get_cuda_rng_tracker

        torch.cuda.set_rng_state(state["cuda"])
        get_cuda_rng_tracker().set_states(state["tracker"])


def _rng_sharded(data: Any) -> ShardedObject:
    layout = _layout()
    return ShardedObject(
        "rng_state",
        data,
        (layout["pp"], layout["tp"], layout["dp"]),
        _coords(),
        replica_id=0,
    )


# ---------------------------------------------------------------------------------------------------------
# listing


def list_checkpoints(ckpt_root: str | Path) -> list[Path]:
    """Complete checkpoints (renamed into place), newest first."""
    root = Path(ckpt_root)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _ITER_RE.match(p.name))]
    return [p for _, p in sorted(found, reverse=True)]


def candidates(ckpt_root: str | Path) -> list[Path]:
    """Checkpoints to try, in order: the one `latest` names, then every other one, newest first."""
    root = Path(ckpt_root)
    ordered = list_checkpoints(root)
    pointer = root / LATEST
    if pointer.is_file():
        named = root / pointer.read_text(encoding="utf-8").strip()
        if named in ordered:
            ordered.remove(named)
            ordered.insert(0, named)
        else:
            log.warning(
                "%s names %s, which does not exist; using the newest complete checkpoint", pointer, named
            )
    return ordered


def find_latest_valid(ckpt_root: str | Path, load: Callable[[Path], T]) -> tuple[Path, T] | None:
    """Call `load` on the newest checkpoint; on failure warn and try the previous one.

    Collective when torch.distributed is initialised: every rank must call it, and a checkpoint counts as
    valid only if it loaded on every rank. Returns None when no checkpoint loads.
    """
    for path in candidates(ckpt_root):
        result: T | None = None
        error: BaseException | None = None
        try:
            result = load(path)
        # Any failure means this checkpoint is unusable; torch DCP's CheckpointException is a BaseException.
        except (Exception, CheckpointException) as exc:
            error = exc
        if all_ranks(error is None):
            return path, result  # type: ignore[return-value]
        log.warning(
            "checkpoint %s failed to load%s; falling back to the previous one",
            path,
            f" ({type(error).__name__}: {error})" if error is not None else " on another rank",
            exc_info=error,
        )
    return None


# ---------------------------------------------------------------------------------------------------------
# save / load


def _sharded_state(model: Any, optimizer: Any | None, *, is_loading: bool) -> dict[str, Any]:
    model_sd = model.sharded_state_dict()
    state: dict[str, Any] = {"model": model_sd}
    if optimizer is not None:
        # Distributed optimizer: 'dp_reshardable' (Megatron-LM's default); the other formats fail without
        # Apex/TE (flattened_range / missing 'step'). Ignored by the non-distributed optimizers.
        metadata = {"distrib_optim_sharding_type": "dp_reshardable"}
        state["optimizer"] = optimizer.sharded_state_dict(model_sd, is_loading=is_loading, metadata=metadata)
    return state


def _distributed_optimizers(optimizer: Any) -> list[Any]:
    from megatron.core.optimizer.distrib_optimizer import DistributedOptimizer

    return [
        o
        for o in getattr(optimizer, "chained_optimizers", [optimizer])
        if isinstance(o, DistributedOptimizer)
    ]


def _prime_distributed_optimizer(optimizer: Any) -> None:
    """Without Apex/TE, a fresh DistributedOptimizer's state_dict() needs a per-parameter 'step' to exist."""
    from megatron.core.optimizer.distrib_optimizer import HAVE_APEX_OR_TE

    if HAVE_APEX_OR_TE:
        return
    for opt in _distributed_optimizers(optimizer):
        inner = opt.optimizer
        for group in inner.param_groups:
            for p in group["params"]:
                if not inner.state[p]:
                    inner.state[p].update(
                        step=torch.tensor(0.0), exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p)
                    )


def _restore_steps(optimizer: Any) -> None:
    """Without Apex/TE, DistributedOptimizer.load_state_dict leaves every parameter's Adam 'step' at the value
    of the template it loaded into (0 for a fresh optimizer); the true step is in the loaded param_groups.
    Give each parameter its own tensor: torch's foreach AdamW increments each one in place."""
    from megatron.core.optimizer.distrib_optimizer import HAVE_APEX_OR_TE

    if HAVE_APEX_OR_TE:
        return
    for opt in _distributed_optimizers(optimizer):
        inner = opt.optimizer
        for group in inner.param_groups:
            if "step" not in group:
                continue
            for p in group["params"]:
                if "step" in inner.state[p]:
                    inner.state[p]["step"] = torch.tensor(float(group["step"]))


def _drop_extra(common: dict[str, Any]) -> dict[str, Any]:
    # `extra` is taken from rank 0 (which writes the common state); other ranks may not have it.
    return {k: v for k, v in common.items() if k != "extra"}


def save_checkpoint(
    ckpt_root: str | Path,
    state: TrainingState,
    *,
    model: Any,
    optimizer: Any,
    scheduler: Any,
    keep_last: int = 2,
) -> Path:
    """Save on every rank (collective); returns the final checkpoint directory.

    `model` is the unwrapped Megatron module (GPTModel), not its DDP/Float16 wrappers.
    """
    root = Path(ckpt_root)
    name = iter_name(state.iteration)
    final, tmp = root / name, root / f".{name}.tmp"
    if rank() == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    barrier()
    sharded = _sharded_state(model, optimizer, is_loading=False)
    sharded.update(
        format_version=FORMAT_VERSION,
        iteration=state.iteration,
        consumed_samples=state.consumed_samples,
        skipped_steps=state.skipped_steps,
        extra=dict(state.extra),
        scheduler=scheduler.state_dict(),
        layout=_layout(),
        rng_state=_rng_sharded(get_rng_state()),
    )
    with cpu_shims():
        dist_checkpointing.save(
            sharded,
            str(tmp),
            sharded_strategy=("torch_dist", 1),
            preprocess_common_before_consistancy_check=_drop_extra,
        )
    barrier()
    if rank() == 0:
        _publish(root, tmp, final)
        _prune(root, keep_last)
    barrier()
    log.info("saved checkpoint %s", final)
    return final


def _publish(root: Path, tmp: Path, final: Path) -> None:
    if final.exists():  # re-saving the same iteration (e.g. preempted right after a periodic save)
        old = root / f".{final.name}.old"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)
    io.write_text(root / LATEST, final.name + "\n")


def _prune(root: Path, keep_last: int) -> None:
    """Keep the newest `keep_last` checkpoints; drop leftovers of saves that crashed before their rename."""
    for old in list_checkpoints(root)[keep_last:]:
        shutil.rmtree(old, ignore_errors=True)
    for leftover in [*root.glob(".iter_*.tmp"), *root.glob(".iter_*.old")]:
        shutil.rmtree(leftover, ignore_errors=True)


def load_checkpoint(
    ckpt_root: str | Path,
    *,
    model: Any,
    optimizer: Any | None = None,
    scheduler: Any | None = None,
    restore_rng: bool = True,
) -> tuple[Path, TrainingState] | None:
    """Load the newest valid checkpoint into `model` (and optimizer, scheduler, RNG when given).

    Returns (path, state), or None when there is no checkpoint; raises when checkpoints exist but none loads.
    Collective.
    """

    def load(path: Path) -> TrainingState:
        return _load_one(path, model=model, optimizer=optimizer, scheduler=scheduler, restore_rng=restore_rng)

    found = find_latest_valid(ckpt_root, load)
    if found is None and candidates(ckpt_root):
        # Never restart from scratch over existing checkpoints: a person should look first.
        raise RuntimeError(f"no checkpoint under {ckpt_root} could be loaded (see the warnings above)")
    return found


def resolve_checkpoint(path: str | Path) -> Path:
    """One checkpoint directory from any of: an `iter_*` folder, a checkpoints root (the one its `latest`
    names, else the newest), or a folder holding `checkpoints/` (what `import_hf` and `pretrain` write)."""
    path = Path(path)
    if (path / "metadata.json").is_file():
        return path
    root = path / "checkpoints" if (path / "checkpoints").is_dir() else path
    found = candidates(root)
    if not found:
        raise FileNotFoundError(f"no checkpoint under {path} (expected iter_* folders or checkpoints/)")
    return found[0]


def checkpoint_vocab_rows(checkpoint: str | Path) -> int:
    """Embedding rows of one checkpoint, read from its tensor metadata (the TP layout decided the padding)."""
    with cpu_shims():
        meta = dist_checkpointing.load_tensors_metadata(str(checkpoint))
    for key in ("embedding.word_embeddings.weight", "model.embedding.word_embeddings.weight"):
        if key in meta:
            return int(meta[key].global_shape[0])
    raise KeyError(f"{checkpoint}: no embedding.word_embeddings.weight in the checkpoint")


def load_weights(checkpoint_dir: str | Path, model: Any) -> tuple[Path, int]:
    """Only the model weights, into an already built `model` of any TP/PP layout: the library call behind
    `pretrain.init_checkpoint` (continued pretraining, SFT) — fresh optimizer and schedule are the caller's.

    `checkpoint_dir` is one checkpoint directory, a checkpoints root (the newest valid one is used) or a
    folder holding `checkpoints/` (`import_hf`'s output, a `pretrain` stage folder).
    Returns (checkpoint path, its iteration). Collective.
    """
    checkpoint_dir = Path(checkpoint_dir)
    if not (checkpoint_dir / "metadata.json").is_file() and (checkpoint_dir / "checkpoints").is_dir():
        checkpoint_dir = checkpoint_dir / "checkpoints"

    def load(path: Path) -> TrainingState:
        return _load_one(path, model=model, optimizer=None, scheduler=None, restore_rng=False)

    if (checkpoint_dir / "metadata.json").is_file():
        return checkpoint_dir, load(checkpoint_dir).iteration
    found = find_latest_valid(checkpoint_dir, load)
    if found is None:
        raise FileNotFoundError(f"no loadable checkpoint under {checkpoint_dir}")
    return found[0], found[1].iteration


def _load_one(
    path: Path, *, model: Any, optimizer: Any | None, scheduler: Any | None, restore_rng: bool
) -> TrainingState:
    with cpu_shims():
        common = dist_checkpointing.load_common_state_dict(str(path))
        if common.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"unknown checkpoint format_version {common.get('format_version')!r}")
        if optimizer is not None:
            _prime_distributed_optimizer(optimizer)
        sharded = _sharded_state(model, optimizer, is_loading=True)
        same_layout = common.get("layout") == _layout()
        if restore_rng and same_layout:
            sharded["rng_state"] = _rng_sharded(None)
        elif restore_rng:
            log.warning(
                "parallel layout changed (%s -> %s): RNG states not restored", common.get("layout"), _layout()
            )
        with torch.no_grad():  # the distributed optimizer copies into views of leaf parameters
            loaded = dist_checkpointing.load(sharded, str(path))
            model.load_state_dict(loaded["model"], strict=True)
            if optimizer is not None:
                optimizer.load_state_dict(loaded["optimizer"])
                _restore_steps(optimizer)
    if scheduler is not None:
        scheduler.num_steps = (
            0  # load_state_dict adds the saved count (and an earlier failed try may have run)
        )
        scheduler.load_state_dict(common["scheduler"])
    if "rng_state" in sharded:
        set_rng_state(loaded["rng_state"])
    return TrainingState(
        iteration=int(common["iteration"]),
        consumed_samples=int(common["consumed_samples"]),
        skipped_steps=int(common.get("skipped_steps", 0)),
        extra=dict(common.get("extra", {})),
    )
