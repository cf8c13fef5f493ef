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


# --- parallel layout, checked before anything is submitted --------------------------------------------------

import pytest  # noqa: E402

from qwen_hpc.config.compose import load  # noqa: E402
from qwen_hpc.stages.preflight import (  # noqa: E402
    PreflightError,
    check_training_layout,
    job_world_size,
    preflight,
)
from tests.conftest import run_qwen  # noqa: E402

PAPER = ("qwen_1_8b", "qwen_7b", "qwen_14b", "qwen_72b")


@pytest.mark.parametrize("experiment", PAPER)
def test_paper_experiments_have_the_recipe_and_a_valid_layout(experiment: str) -> None:
    _, cfg = load([f"experiment={experiment}", "launcher=slurm"])
    train, optim = cfg.pretrain.train, cfg.pretrain.optimizer
    assert cfg.model.name == experiment and cfg.model.seq_length == 2048
    assert train.global_batch_size * cfg.model.seq_length == 4 * 2**20  # 4M tokens per step
    assert (optim.lr, optim.min_lr_ratio, optim.warmup_iters, optim.decay_style) == (3e-4, 0.1, 2000, "cosine")
    assert (optim.beta1, optim.beta2, optim.eps, optim.weight_decay, optim.clip_grad) == (0.9, 0.95, 1e-8, 0.1, 1.0)
    world = job_world_size(cfg, "pretrain")
    assert world == cfg.pretrain.resources.nodes * 8 and world % train.model_parallel_size == 0
    check_training_layout("pretrain", cfg)  # the layout only: this machine need not be a Slurm submit host
    check_training_layout("evaluate", cfg)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model.num_attention_heads=4", "pretrain.train.tensor_model_parallel_size=3",
          "launcher.tasks_per_node=3", "pretrain.train.micro_batch_size=8"],
         "model.num_attention_heads=4 must be divisible by train.tensor_model_parallel_size=3"),
        (["pretrain.train.global_batch_size=16", "pretrain.train.micro_batch_size=4",
          "pretrain.resources.tasks_per_node=3"],
         "train.global_batch_size=16 must be divisible by train.micro_batch_size=4 × data-parallel size 3"),
        (["pretrain.train.tensor_model_parallel_size=2", "pretrain.resources.tasks_per_node=3"],
         "world size 3 must be divisible by train.tensor_model_parallel_size=2"),
        (["experiment=qwen_72b", "pretrain.resources.nodes=3"],
         "world size 24 must be divisible by train.tensor_model_parallel_size=8 × "
         "train.pipeline_model_parallel_size=4"),
        (["experiment=qwen_7b", "pretrain.train.micro_batch_size=64"],
         "global_batch_size=2048 must be divisible by train.micro_batch_size=64 × data-parallel size 64"),
    ],
)
def test_impossible_layouts_are_rejected_before_submission(overrides: list[str], message: str) -> None:
    _, cfg = load(["launcher=slurm", *overrides])
    with pytest.raises(PreflightError, match=message.replace(".", r"\.").replace("×", "×")):
        preflight("pretrain", cfg)


def test_cli_rejects_a_bad_layout_and_submits_nothing(tmp_path) -> None:
    proc = run_qwen(
        ["pretrain", f"run.root={tmp_path}", "launcher=slurm", "experiment=qwen_14b",
         "pretrain.train.tensor_model_parallel_size=3"],
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "model.num_attention_heads=40 must be divisible by train.tensor_model_parallel_size=3" in proc.stderr
    assert list(tmp_path.iterdir()) == [], "nothing may be written or submitted"
