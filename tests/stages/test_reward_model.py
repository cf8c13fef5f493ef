"""Stage `reward_model` through the CLI: the fine-tuning job starts from the PMP job's last checkpoint (weights
and head handed over), trains on its own smaller set and stays accurate on held-out verifiable pairs."""

from __future__ import annotations

from qwen_hpc.rlhf import state as rstate
from qwen_hpc.utils.io import read_json


def test_fine_tuning_starts_from_the_end_of_pmp(small_run) -> None:
    pmp_out = small_run.stage("reward_model_pmp")
    out = small_run.stage("reward_model")
    metrics = read_json(out / "_SUCCESS.json")["metrics"]
    pmp_last = rstate.latest(pmp_out / "checkpoints")
    assert metrics["init_checkpoint"] == str(pmp_last) and metrics["resumed_from"] is None
    assert metrics["step"] == 160 // 16
    assert read_json(out / "eval.json")["heldout"]["pairs"] == 100
    pmp, ft = rstate.load(pmp_last), rstate.load(rstate.latest(out / "checkpoints"))
    assert set(ft["lm"]) == set(pmp["lm"]) and set(ft["head"]) == set(pmp["head"])
    # fine-tuning moved the handed-over weights a little, it did not start from scratch
    drift = max((ft["lm"][k] - pmp["lm"][k]).abs().max().item() for k in pmp["lm"])
    assert 0 < drift < 0.1
