"""Run by test_pretrain.py in a subprocess: the reference pretraining run, stopped by a real SIGTERM.

    python -m tests.training.sigterm_worker SPEC_JSON

SPEC_JSON holds out_dir, cache_dir, blend, progress (a JSONL file: one {"step", "loss", "lr"} line per
step), ready (a file created when step `pause_at` has been logged) and result (the TrainResult as JSON).
The launcher's `StopFlag` handles SIGTERM. So that the signal lands at a known step and not whenever the
test happens to look, the worker's tracker holds still after logging step `pause_at` until the signal has
arrived; the loop then sees the flag at its next step boundary, saves and returns "preempted".
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from qwen_hpc.launch.distributed import destroy_process_group, ensure_process_group
from qwen_hpc.launch.preemption import StopFlag
from qwen_hpc.training.loop import pretrain
from tests.training.helpers import EOD, N_VOCAB, optim_cfg, tiny_model, train_cfg


class ProgressTracker:
    def __init__(self, spec: dict, flag: StopFlag) -> None:
        self.spec, self.flag = spec, flag
        self.file = Path(spec["progress"]).open("a", encoding="utf-8")

    def log(self, metrics: dict[str, Any], step: int | None = None) -> None:
        row = {"step": step, **{k: metrics[k] for k in ("loss", "lr", "val_loss") if k in metrics}}
        self.file.write(json.dumps(row) + "\n")
        self.file.flush()
        if step == self.spec["pause_at"]:
            Path(self.spec["ready"]).touch()
            deadline = time.monotonic() + 120
            while not self.flag.requested and time.monotonic() < deadline:
                time.sleep(0.05)

    def close(self) -> None:
        self.file.close()


def main(spec: dict) -> None:
    torch.set_num_threads(1)
    ensure_process_group("gloo")
    flag = StopFlag().install()
    tracker = ProgressTracker(spec, flag)
    result = pretrain(
        tiny_model(),
        train_cfg(**spec["train"]),
        optim_cfg(),
        [tuple(x) for x in spec["blend"]],
        eod_id=EOD,
        n_vocab=N_VOCAB,
        out_dir=Path(spec["out_dir"]),
        tracker=tracker,
        should_stop=flag,
        extra_state=spec["extra_state"],
        index_cache_dir=Path(spec["cache_dir"]),
    )
    tracker.close()
    Path(spec["result"]).write_text(
        json.dumps({"status": result.status, "iteration": result.iteration, "checkpoint": result.checkpoint})
    )
    destroy_process_group()


if __name__ == "__main__":
    main(json.loads(Path(sys.argv[1]).read_text()))
