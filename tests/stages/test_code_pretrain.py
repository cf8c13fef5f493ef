"""Stage `code_pretrain` (Code-Qwen, spec §10) through the CLI: continued pretraining starts from the base
model's weights (its step-1 loss is the base model's loss on the same batch), reads only the code source,
at the branch's context; the paper experiments pass preflight."""

from __future__ import annotations

import math

import pytest
import torch

from qwen_hpc.config.compose import load
from qwen_hpc.stages.base import StageContext
from qwen_hpc.stages.preflight import preflight
from qwen_hpc.utils.io import read_json


def _base_loss_on_first_batch(small_run, out) -> float:
    """The pretrain stage's model, loaded afresh, on code_pretrain's first global batch."""
    from qwen_hpc.interop.hf_checkpoint import load_model
    from qwen_hpc.parallel import single_process_megatron
    from qwen_hpc.stages import code_pretrain
    from qwen_hpc.training.data import build_datasets
    from qwen_hpc.training.step import causal_mask

    _, cfg = load(small_run.args())
    ctx = StageContext(name="code_pretrain", stage_dir=out, run_dir=small_run.run_dir)
    model_cfg, train = code_pretrain.branch_model(cfg), cfg.code_pretrain.train
    blend, eod_id, n_vocab = code_pretrain.branch_blend(cfg, ctx)
    with single_process_megatron(seed=0):
        train_ds, _ = build_datasets(
            model_cfg, train, blend, eod_id=eod_id, n_vocab=n_vocab, cache_dir=out / "index_cache"
        )
        samples = [train_ds[i] for i in range(train.global_batch_size)]
        batch = {k: torch.stack([s[k] for s in samples]) for k in ("tokens", "labels", "loss_mask", "position_ids")}
        model = load_model(small_run.run_dir / "pretrain" / "checkpoints", model_cfg)
        with torch.no_grad():
            losses = model(batch["tokens"], batch["position_ids"], causal_mask(model_cfg.seq_length),
                           labels=batch["labels"])
    mask = batch["loss_mask"].float()
    return float((losses.float() * mask).sum() / mask.sum())


def test_code_pretrain_continues_from_the_base_weights(small_run) -> None:
    out = small_run.stage("code_pretrain")
    marker = read_json(out / "_SUCCESS.json")
    metrics = marker["metrics"]
    assert metrics["iteration"] == 6 and metrics["seq_length"] == 256
    assert metrics["init_checkpoint"].endswith("pretrain/checkpoints")
    base = _base_loss_on_first_batch(small_run, out)
    # step 1's loss is computed before the first update: with the base weights it equals the base model's
    assert math.isclose(metrics["first_loss"], base, rel_tol=1e-4), (metrics["first_loss"], base)
    # ... and is far below a fresh model's (about ln(vocab) = ln 768 = 6.6)
    assert base < math.log(768) - 1.0
    assert (out / "checkpoints" / "latest").read_text().strip() == "iter_0000006"
    # the blend is the code source only; index caches of the 256-token windows live in this stage's folder
    assert any((out / "index_cache").rglob("*.npy"))
    assert marker["inputs"].keys() == {"tokenizer", "tokens", "pretrain"}


@pytest.mark.parametrize("experiment", ["code_qwen_7b", "code_qwen_14b"])
def test_code_qwen_experiments_pass_preflight(experiment: str) -> None:
    _, cfg = load([f"experiment={experiment}", "launcher=slurm"])
    preflight("code_pretrain", cfg)
    preflight("code_sft", cfg)
    assert cfg.code_pretrain.seq_length == 8192 and cfg.code_pretrain.optimizer.decay_style == "constant"
    warmup = cfg.code_pretrain.optimizer.warmup_iters / cfg.code_pretrain.train.train_iters
    assert abs(warmup - 0.03) < 0.001
    lr = {"code_qwen_7b": (3e-5, 1e-5), "code_qwen_14b": (6e-5, 2e-6)}[experiment]
    assert (cfg.code_pretrain.optimizer.lr, cfg.code_sft.optimizer.lr) == lr
    assert cfg.code_sft.optimizer.decay_style == "constant"
    assert abs(cfg.code_sft.optimizer.warmup_iters / cfg.code_sft.train.train_iters - 0.03) < 0.001
