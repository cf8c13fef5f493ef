"""Index caches of the GPTDataset blend, built in their own single-process CPU step before training starts.

Megatron-Core's own logic builds the shuffled sample indices on global rank 0 while the other ranks wait at
a barrier and then read the files — which needs a filesystem shared by every node, and with a cold cache
stalls the whole allocation (Megatron-LM #907, #795; anchors §4.4). Here the caches are built *before* the
distributed run by one process that has a world of its own:

- a single-rank job builds them in-process;
- a multi-rank job starts `python -m qwen_hpc.training.index_cache SPEC` on global rank 0 while every rank
  polls (a small all-reduce every few seconds, so no collective times out however long the build takes);
  then, if some node still cannot see the caches (node-local storage), the lowest rank of each such node
  builds its own copy the same way. No two processes ever write the same cache directory.

Training then only reads them (`build_datasets` finds the marker and never writes).
"""

from __future__ import annotations

import dataclasses
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch.distributed as dist

from qwen_hpc.model.config import ModelConfig
from qwen_hpc.parallel import any_rank, world_size
from qwen_hpc.training.config import TrainConfig
from qwen_hpc.training.data import Blend, build_index_caches, dataset_config, marker_path, split_sizes

POLL_S = 2.0


def caches_marker(
    model: ModelConfig, train: TrainConfig, blend: Blend, *, eod_id: int, n_vocab: int, cache_dir: Path
) -> Path:
    config = dataset_config(model, train, blend, eod_id=eod_id, n_vocab=n_vocab, cache_dir=cache_dir)
    return marker_path(config, split_sizes(train))


def _spec(
    model: ModelConfig, train: TrainConfig, blend: Blend, eod_id: int, n_vocab: int, cache: Path
) -> dict:
    return {
        "model": dataclasses.asdict(model),
        "train": dataclasses.asdict(train),
        "blend": [[str(p), float(w)] for p, w in blend],
        "eod_id": int(eod_id),
        "n_vocab": int(n_vocab),
        "cache_dir": str(cache),
    }


def _start_builder(spec: dict) -> subprocess.Popen:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(spec, f)
    return subprocess.Popen([sys.executable, "-m", "qwen_hpc.training.index_cache", f.name])


def _wait_together(proc: subprocess.Popen | None) -> None:
    """Every rank returns once the builder process (on whichever rank runs one) has exited."""
    while any_rank(proc is not None and proc.poll() is None):
        time.sleep(POLL_S)
    if proc is not None and proc.returncode != 0:
        raise RuntimeError(
            f"building the index caches failed (exit code {proc.returncode}); see its log above"
        )


def prepare_index_caches(
    model: ModelConfig,
    train: TrainConfig,
    blend: Blend,
    *,
    eod_id: int,
    n_vocab: int,
    cache_dir: str | Path,
) -> dict[str, Any]:
    """Collective: on return every rank can read the caches of this configuration. Returns what was done."""
    cache_dir = Path(cache_dir)
    marker = caches_marker(model, train, blend, eod_id=eod_id, n_vocab=n_vocab, cache_dir=cache_dir)
    world = world_size()
    if world == 1:
        if marker.is_file():
            return {"built": "none", "marker": str(marker)}
        build_index_caches(model, train, blend, eod_id=eod_id, n_vocab=n_vocab, cache_dir=cache_dir)
        return {"built": "in-process", "marker": str(marker)}
    spec = _spec(model, train, blend, eod_id, n_vocab, cache_dir)
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
        _wait_together(_start_builder(spec) if rank in builders else None)
    if not any_rank(not marker.is_file()):
        return {"built": "; ".join(done) or "none", "marker": str(marker)}
    raise RuntimeError(f"index caches {marker} are still missing on some rank after building them")


def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    Path(spec_path).unlink(missing_ok=True)
    summary = build_index_caches(
        ModelConfig(**spec["model"]),
        TrainConfig(**spec["train"]),
        [(p, w) for p, w in spec["blend"]],
        eod_id=spec["eod_id"],
        n_vocab=spec["n_vocab"],
        cache_dir=spec["cache_dir"],
    )
    print(f"index caches built: {summary['built_samples']} samples (train, valid, test)", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
