from __future__ import annotations

import math

from qwen_hpc.report.html import read_jsonl
from qwen_hpc.utils.io import read_json


def test_pretrain_stage_trains_checkpoints_and_logs(small_run) -> None:
    out = small_run.stage("pretrain")
    marker = read_json(out / "_SUCCESS.json")
    metrics = marker["metrics"]
    assert metrics["iteration"] == 60
    assert metrics["last_loss"] < metrics["first_loss"]
    latest = (out / "checkpoints" / "latest").read_text().strip()
    assert (out / "checkpoints" / latest).is_dir()
    records = read_jsonl(out / "metrics.jsonl")
    steps = [r["step"] for r in records if "loss" in r]
    assert steps == list(range(1, 61))
    assert all(math.isfinite(r["loss"]) and r["lr"] > 0 for r in records if "loss" in r)
    assert any("val_loss" in r for r in records)
    # one W&B run (offline) whose id is stored for requeues
    run_id = (out / "wandb_run_id").read_text().strip()
    assert any(run_id in p.name for p in (out / "wandb" / "wandb").glob("offline-run-*"))
