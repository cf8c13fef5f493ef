"""End-to-end pretraining on the CPU (gloo): the loss falls, preemption + resume reproduce the uninterrupted
run exactly, a corrupt newest checkpoint falls back to the previous one, non-finite losses are skipped and
then stop the run, and validation perplexity agrees with the loss measured during training."""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from qwen_hpc.evaluation.perplexity import validation_perplexity
from qwen_hpc.training import loop as loop_module
from qwen_hpc.training import step as step_module
from qwen_hpc.training.data import build_index_caches
from qwen_hpc.training.loop import TrainResult, pretrain

from .helpers import EOD, N_VOCAB, RecordingTracker, optim_cfg, tiny_model, train_cfg

ITERS, SAVE, EVAL = 48, 16, 16


def _cfg(**overrides):
    return train_cfg(
        train_iters=ITERS, save_interval=SAVE, eval_interval=EVAL, peak_flops_per_device=1e11, **overrides
    )


@dataclass
class Run:
    out: Path
    cache: Path
    result: TrainResult
    tracker: RecordingTracker


def _pretrain(
    blend, out: Path, cache: Path, *, stop_at: int | None = None, **overrides
) -> tuple[TrainResult, RecordingTracker]:
    tracker, calls = RecordingTracker(), [0]

    def should_stop() -> bool:  # called once before every step: call k+1 comes after k finished steps
        calls[0] += 1
        return stop_at is not None and calls[0] == stop_at + 1

    result = pretrain(
        tiny_model(),
        _cfg(**overrides),
        optim_cfg(),
        blend,
        eod_id=EOD,
        n_vocab=N_VOCAB,
        out_dir=out,
        tracker=tracker,
        should_stop=should_stop,
        extra_state={"wandb_run_id": "abc123", "config_hash": "f00"},
        index_cache_dir=cache,
    )
    return result, tracker


@pytest.fixture(scope="module")
def reference(blend, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """One uninterrupted run (checkpoints at 16, 32, 48) that the other tests compare against."""
    root = tmp_path_factory.mktemp("reference")
    build_index_caches(tiny_model(), _cfg(), blend, eod_id=EOD, n_vocab=N_VOCAB, cache_dir=root / "cache")
    result, tracker = _pretrain(blend, root / "run", root / "cache")
    return Run(root / "run", root / "cache", result, tracker)


def test_loss_falls_and_metrics_are_logged(reference: Run) -> None:
    r, losses = reference.result, reference.tracker.series("loss")
    assert (r.status, r.iteration, r.consumed_samples, r.resumed_from) == (
        "completed",
        ITERS,
        ITERS * 8,
        None,
    )
    assert sorted(losses) == list(range(1, ITERS + 1))
    first, last = (
        sum(losses[i] for i in range(1, 5)) / 4,
        sum(losses[i] for i in range(ITERS - 3, ITERS + 1)) / 4,
    )
    assert first == pytest.approx(math.log(N_VOCAB), abs=0.3)
    assert last < first - 1.5, (first, last)
    step = dict(reference.tracker.rows)[ITERS]
    for key in (
        "lr",
        "grad_norm",
        "tokens_per_s",
        "consumed_samples",
        "iteration_time_s",
        "skipped_steps",
        "mfu",
        "mem_rss_gib",
    ):
        assert key in step and math.isfinite(step[key]), key
    assert all(v > 0 for v in reference.tracker.series("lr").values())
    lr = reference.tracker.series("lr")
    assert lr[4] == pytest.approx(3e-3) and lr[ITERS] == pytest.approx(3e-4)  # warmup peak, cosine to 10 %
    assert sorted(reference.tracker.series("val_loss")) == [16, 32, 48]
    assert r.metrics["val_loss"] == reference.tracker.series("val_loss")[ITERS]
    ckpts = reference.out / "checkpoints"
    assert (ckpts / "latest").read_text().strip() == "iter_0000048" and r.checkpoint == str(
        ckpts / "iter_0000048"
    )
    assert sorted(p.name for p in ckpts.iterdir()) == [
        "iter_0000016",
        "iter_0000032",
        "iter_0000048",
        "latest",
    ]


def test_preempt_and_resume_matches_the_uninterrupted_run(blend, reference: Run, tmp_path: Path) -> None:
    out = tmp_path / "run"
    first, t1 = _pretrain(blend, out, reference.cache, stop_at=21)
    assert (first.status, first.iteration, first.consumed_samples) == ("preempted", 21, 21 * 8)
    assert first.checkpoint == str(out / "checkpoints" / "iter_0000021")
    second, t2 = _pretrain(blend, out, reference.cache)
    assert (second.status, second.iteration, second.resumed_from) == ("completed", ITERS, 21)
    assert second.consumed_samples == reference.result.consumed_samples
    resumed = {**t1.series("loss"), **t2.series("loss")}
    assert resumed == reference.tracker.series("loss")  # bit-identical on CPU fp32
    assert {**t1.series("lr"), **t2.series("lr")} == reference.tracker.series("lr")
    assert second.metrics["val_loss"] == reference.result.metrics["val_loss"]
    kept = sorted(p.name for p in (out / "checkpoints").iterdir())  # keep_last_checkpoints=3
    assert kept == ["iter_0000021", "iter_0000032", "iter_0000048", "latest"]
    # a finished run resumed again does no work and reports the final state
    again, t3 = _pretrain(blend, out, reference.cache)
    assert (again.status, again.iteration, again.resumed_from) == (
        "completed",
        ITERS,
        ITERS,
    ) and not t3.series("loss")


def test_corrupt_latest_checkpoint_falls_back_to_the_previous_one(
    blend, reference: Run, tmp_path: Path, caplog
) -> None:
    out = tmp_path / "run"
    shutil.copytree(reference.out, out)
    for shard in (out / "checkpoints" / "iter_0000048").glob("*.distcp"):
        shard.write_bytes(shard.read_bytes()[:100])  # a torn write
    with caplog.at_level(logging.WARNING, logger="qwen_hpc.training.checkpoint"):
        result, tracker = _pretrain(blend, out, reference.cache)
    assert "iter_0000048 failed to load" in caplog.text
    assert (result.status, result.iteration, result.resumed_from) == ("completed", ITERS, 32)
    ref = reference.tracker.series("loss")
    assert tracker.series("loss") == {i: ref[i] for i in range(33, ITERS + 1)}
    assert (out / "checkpoints" / "latest").read_text().strip() == "iter_0000048"


def test_non_finite_losses_are_skipped_then_stop_the_run(
    blend, reference: Run, tmp_path: Path, monkeypatch
) -> None:
    real = step_module._loss_func

    def nan_loss(loss_mask, output_tensor):
        loss, tokens, report = real(loss_mask, output_tensor)
        return loss * float("nan"), tokens, {"lm loss": report["lm loss"] * float("nan")}

    monkeypatch.setattr(step_module, "_loss_func", nan_loss)
    result, tracker = _pretrain(blend, tmp_path / "run", reference.cache, max_consecutive_nonfinite=3)
    assert (result.status, result.iteration) == ("failed", 3)
    assert (
        result.metrics["skipped_steps"] == 3 and "3 consecutive non-finite steps" in result.metrics["error"]
    )
    assert result.first_loss is None and result.checkpoint is None
    assert [m["skipped_steps"] for _, m in tracker.rows] == [1, 2]  # the third stops before logging


class _InfGradient(torch.autograd.Function):
    """Identity forward (the loss stays finite), an infinite gradient backward."""

    @staticmethod
    def forward(ctx, x):  # noqa: ANN001, ANN205
        return x.clone()

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        return grad * float("inf")


def _inf_gradient_at(monkeypatch, steps: set[int]) -> None:
    """From now on, every micro-batch of the listed global steps (1-based) back-propagates an inf gradient."""
    real_loss, real_step, calls = step_module._loss_func, step_module.train_step, [0]

    def loss(loss_mask, output_tensor):
        if calls[0] in steps:
            output_tensor = _InfGradient.apply(output_tensor)
        return real_loss(loss_mask, output_tensor)

    def counting_step(ctx, data_iterator):
        calls[0] += 1
        return real_step(ctx, data_iterator)

    monkeypatch.setattr(step_module, "_loss_func", loss)
    monkeypatch.setattr(loop_module, "train_step", counting_step)


def test_an_inf_gradient_with_a_finite_loss_skips_the_update(
    blend, reference: Run, tmp_path: Path, monkeypatch
) -> None:
    _inf_gradient_at(monkeypatch, {5})
    result, tracker = _pretrain(blend, tmp_path / "run", reference.cache)
    assert result.status == "completed" and result.metrics["skipped_steps"] == 1
    row = dict(tracker.rows)[5]
    assert math.isfinite(row["loss"]) and not math.isfinite(row["grad_norm"])
    assert row["update_skipped"] == 1.0 and row["skipped_steps"] == 1
    # skipped, not applied: the weights stay finite and training goes on learning
    assert all(math.isfinite(loss) for loss in tracker.series("loss").values())
    assert math.isfinite(result.last_loss) and result.last_loss < result.first_loss
    # the LR schedule did not advance on the skipped step: step 6 uses the LR step 5 would have used
    lrs = tracker.series("lr")
    assert lrs[6] == lrs[5] and lrs[5] != lrs[4]
    ref = reference.tracker.series("loss")
    assert tracker.series("loss")[4] == ref[4]


def test_inf_gradients_in_a_row_stop_the_run(blend, reference: Run, tmp_path: Path, monkeypatch) -> None:
    _inf_gradient_at(monkeypatch, {2, 3, 4, 5})
    result, tracker = _pretrain(blend, tmp_path / "run", reference.cache, max_consecutive_nonfinite=3)
    assert (result.status, result.iteration) == ("failed", 4)
    assert result.metrics["skipped_steps"] == 3 and "3 consecutive non-finite" in result.metrics["error"]
    assert [m["update_skipped"] for _, m in tracker.rows] == [0.0, 1.0, 1.0]


def test_validation_perplexity_matches_training_eval(blend, reference: Run) -> None:
    # training evaluates eval_iters=2 global batches of 8 = the first 16 validation samples; so do 4 x 4 here
    scores = validation_perplexity(
        tiny_model(),
        _cfg(),
        blend,
        eod_id=EOD,
        n_vocab=N_VOCAB,
        checkpoint_dir=reference.out / "checkpoints",
        eval_iters=4,
        micro_batch_size=4,
        index_cache_dir=reference.cache,
    )
    assert scores["iteration"] == ITERS
    assert math.isfinite(scores["loss"]) and scores["perplexity"] == pytest.approx(math.exp(scores["loss"]))
    assert scores["tokens"] == 16 * tiny_model().seq_length
    assert scores["loss"] == pytest.approx(reference.result.metrics["val_loss"], abs=1e-5)
    assert torch.distributed.is_initialized()


REPO = Path(__file__).resolve().parents[2]


def _final_weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    from megatron.core import parallel_state as ps

    from qwen_hpc.compat.megatron_cpu import cpu_shims, model_parallel_seed
    from qwen_hpc.model.builder import build_model, padded_vocab_size
    from qwen_hpc.training.checkpoint import load_weights

    with cpu_shims():
        ps.initialize_model_parallel()
        try:
            model_parallel_seed(0)  # any seed: every weight is overwritten by the checkpoint
            model = build_model(tiny_model(), padded_vocab_size(N_VOCAB, tiny_model()))
            load_weights(checkpoint, model)
            return {k: v.detach().clone() for k, v in model.state_dict().items() if torch.is_tensor(v)}
        finally:
            ps.destroy_model_parallel()


@pytest.mark.slow
def test_sigterm_at_an_arbitrary_step_then_resume_is_bit_identical(
    blend, reference: Run, tmp_path: Path
) -> None:
    """A real SIGTERM to a training process (StopFlag, as in a job) at step 27 — between two periodic saves —
    then a resume: loss history and final parameters equal the uninterrupted run's exactly (fp32, CPU)."""
    out = tmp_path / "run"
    spec = {
        "out_dir": str(out),
        "cache_dir": str(reference.cache),
        "blend": blend,
        "train": {
            "train_iters": ITERS,
            "save_interval": SAVE,
            "eval_interval": EVAL,
            "peak_flops_per_device": 1e11,
        },
        "extra_state": {"wandb_run_id": "abc123", "config_hash": "f00"},
        "pause_at": 27,
        "progress": str(tmp_path / "progress.jsonl"),
        "ready": str(tmp_path / "ready"),
        "result": str(tmp_path / "result.json"),
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    env = {
        k: v for k, v in os.environ.items() if k not in ("MASTER_PORT", "MASTER_ADDR", "RANK", "WORLD_SIZE")
    }
    env.update(PYTHONPATH=f"{REPO}{os.pathsep}{env.get('PYTHONPATH', '')}", OMP_NUM_THREADS="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.training.sigterm_worker", str(tmp_path / "spec.json")],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        while not Path(spec["ready"]).exists() and proc.poll() is None:
            time.sleep(0.1)
        assert proc.poll() is None, proc.communicate()[0][-4000:]
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output[-4000:]
    stopped = json.loads(Path(spec["result"]).read_text())
    assert (stopped["status"], stopped["iteration"]) == ("preempted", 27)
    assert stopped["checkpoint"] == str(out / "checkpoints" / "iter_0000027")
    rows = [json.loads(line) for line in Path(spec["progress"]).read_text().splitlines()]
    before = {r["step"]: r["loss"] for r in rows if "loss" in r}
    assert sorted(before) == list(range(1, 28))

    resumed, tracker = _pretrain(blend, out, reference.cache)
    assert (resumed.status, resumed.iteration, resumed.resumed_from) == ("completed", ITERS, 27)
    assert {**before, **tracker.series("loss")} == reference.tracker.series("loss")
    assert resumed.metrics["val_loss"] == reference.result.metrics["val_loss"]
    ours, theirs = _final_weights(Path(resumed.checkpoint)), _final_weights(Path(reference.result.checkpoint))
    assert ours.keys() == theirs.keys() and len(ours) > 10
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
