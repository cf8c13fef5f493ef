"""Index caches of the GPTDataset blend, built in their own single-process CPU step before training starts.

Megatron-Core's own logic builds the shuffled sample indices on global rank 0 while the other ranks wait at
a barrier and then read the files — which needs a filesystem shared by every node, and with a cold cache
stalls the whole allocation (Megatron-LM #907, #795; anchors §4.4). Here the caches are built *before* the
distributed run by one process that has a world of its own:

- a single-rank job builds them in-process;
- a multi-rank job has global rank 0 build them in a process of its own, started through the `submit`
  function the caller hands in (`parallel.SubmitFn`; the launcher's `launch.array.spawn_apart` spawns a
  fresh Python process: this package starts none), while every rank polls (a small all-reduce every few
  seconds, so no collective times out however long the build takes); then, if some node still cannot see
  the caches (node-local storage), the lowest rank of each such node builds its own copy the same way. No
  two processes ever write the same cache directory.

Training then only reads them (`build_datasets` finds the marker and never writes).
"""

from __future__ import annotations

import socket
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import torch.distributed as dist

from qwen_hpc.model.config import ModelConfig
from qwen_hpc.parallel import SubmitFn, any_rank, world_size
from qwen_hpc.training.config import TrainConfig
from qwen_hpc.training.data import Blend, build_index_caches, dataset_config, marker_path, split_sizes

POLL_S = 2.0


def caches_marker(
    model: ModelConfig, train: TrainConfig, blend: Blend, *, eod_id: int, n_vocab: int, cache_dir: Path
) -> Path:
    config = dataset_config(model, train, blend, eod_id=eod_id, n_vocab=n_vocab, cache_dir=cache_dir)
    return marker_path(config, split_sizes(train))


def build_apart(
    model: ModelConfig, train: TrainConfig, blend: Blend, eod_id: int, n_vocab: int, cache_dir: str
) -> dict[str, Any]:
    """`build_index_caches` as the call a `SubmitFn` runs in its own process (positional arguments)."""
    summary = build_index_caches(model, train, blend, eod_id=eod_id, n_vocab=n_vocab, cache_dir=cache_dir)
    print(f"index caches built: {summary['built_samples']} samples (train, valid, test)", flush=True)
    return summary


def _wait_together(build: Future[Any] | None) -> None:
    """Every rank returns once the build (on whichever rank runs one) has ended; its error is raised there."""
    while any_rank(build is not None and not build.done()):
        time.sleep(POLL_S)
    if build is not None:
        try:
            build.result()
        except Exception as exc:
            raise RuntimeError(f"building the index caches failed: {exc}; see its log above") from exc


def prepare_index_caches(
    model: ModelConfig,
    train: TrainConfig,
    blend: Blend,
    *,
    eod_id: int,
    n_vocab: int,
    cache_dir: str | Path,
    submit: SubmitFn | None = None,
) -> dict[str, Any]:
    """Collective: on return every rank can read the caches of this configuration. Returns what was done.

    `submit` runs a build in a process of its own (`launch.array.spawn_apart`); needed with more than one
    rank, where the building rank must keep answering the others' polls."""
    cache_dir = Path(cache_dir)
    marker = caches_marker(model, train, blend, eod_id=eod_id, n_vocab=n_vocab, cache_dir=cache_dir)
    world = world_size()
    if world == 1:
        if marker.is_file():
            return {"built": "none", "marker": str(marker)}
        build_index_caches(model, train, blend, eod_id=eod_id, n_vocab=n_vocab, cache_dir=cache_dir)
        return {"built": "in-process", "marker": str(marker)}
    if submit is None:
        raise ValueError(f"prepare_index_caches on {world} ranks needs `submit`, which runs the build in a "
                         "process of its own (qwen_hpc.launch.array.spawn_apart)")
    args = (model, train, list(blend), int(eod_id), int(n_vocab), str(cache_dir))
    rank, host = dist.get_rank(), socket.gethostname()
    done = []
    for attempt in ("rank 0", "per node"):
        views: list[Any] = [None] * world
        dist.all_gather_object(views, (host, marker.is_file()))
        missing = [r for r, (_, seen) in enumerate(views) if not seen]
        if not missing:
            break
        if attempt == "rank 0":
            builders = {0} if 0 in missing else set()
        else:  # ranks that still miss them are on nodes that do not share rank 0's filesystem
            builders = {min(r for r in missing if views[r][0] == h) for h in {views[r][0] for r in missing}}
        done.append(f"{attempt}: ranks {sorted(builders)}")
        _wait_together(submit(build_apart, *args) if rank in builders else None)
    if not any_rank(not marker.is_file()):
        return {"built": "; ".join(done) or "none", "marker": str(marker)}
    raise RuntimeError(f"index caches {marker} are still missing on some rank after building them")
