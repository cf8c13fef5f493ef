"""Run under `torchrun` by test_parallel.py: pretrain the tiny model with a given parallel layout.

    python -m torch.distributed.run --standalone --nproc_per_node N -m tests.training.dist_worker SPEC_JSON

SPEC_JSON holds out_json, out_dir, cache_dir, blend, stop_at, TrainConfig overrides and optionally
init_checkpoint (initial weights) and prepare_caches (build the index caches first, as the stage does). The rank that logs
writes {"losses", "status", "iteration", "resumed_from", "val_loss"} to out_json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from qwen_hpc.launch.array import spawn_apart
from qwen_hpc.launch.distributed import destroy_process_group, ensure_process_group
from qwen_hpc.training.index_cache import prepare_index_caches
from qwen_hpc.training.loop import pretrain
from tests.training.helpers import EOD, N_VOCAB, RecordingTracker, optim_cfg, tiny_model, train_cfg


def main(spec: dict) -> None:
    torch.set_num_threads(1)
    ensure_process_group("gloo")
    tracker, calls = RecordingTracker(), [0]
    blend = [tuple(x) for x in spec["blend"]]

    def should_stop() -> bool:
        calls[0] += 1
        return spec["stop_at"] > 0 and calls[0] == spec["stop_at"] + 1

    cache_dir = Path(spec["cache_dir"])
    if spec.get("prepare_caches"):  # the pretrain stage's own step: build them before training starts
        done = prepare_index_caches(
            tiny_model(), train_cfg(**spec["train"]), blend, eod_id=EOD, n_vocab=N_VOCAB, cache_dir=cache_dir,
            submit=spawn_apart,
        )
        if torch.distributed.get_rank() == 0:
            Path(spec["out_json"] + ".caches").write_text(json.dumps(done))
    result = pretrain(
        tiny_model(),
        train_cfg(**spec["train"]),
        optim_cfg(),
        blend,
        eod_id=EOD,
        n_vocab=N_VOCAB,
        out_dir=Path(spec["out_dir"]),
        tracker=tracker,
        should_stop=should_stop,
        index_cache_dir=cache_dir,
        init_checkpoint=spec.get("init_checkpoint"),
    )
    if tracker.rows:
        payload = {
            "losses": {str(k): v for k, v in tracker.series("loss").items()},
            "status": result.status,
            "iteration": result.iteration,
            "resumed_from": result.resumed_from,
            "val_loss": result.metrics.get("val_loss"),
        }
        Path(spec["out_json"]).write_text(json.dumps(payload))
    destroy_process_group()


if __name__ == "__main__":
    main(json.loads(Path(sys.argv[1]).read_text()))
