"""The BF16 path runs on the CPU (issue 12 item 7): `precision=bf16` forced trains the tiny model a handful of
steps with BF16 weights and FP32 master weights in Megatron-Core's mixed-precision optimizer, tracks the FP32
run, and a BF16 checkpoint resumes bit-exact. CI has no GPU; this is where the GPU recipe's precision runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from qwen_hpc.training import loop
from qwen_hpc.training.data import build_index_caches
from qwen_hpc.training.loop import pretrain

from .helpers import EOD, N_VOCAB, RecordingTracker, optim_cfg, tiny_model, train_cfg

ITERS = 6
# BF16 keeps 8 mantissa bits, so the same steps give slightly different losses: measured ≤ 3e-4 over these six
# steps (loss ~6.2). 5e-3 bounds that with 15x room while staying far below what one lost or doubled update moves.
LOSS_TOLERANCE = 5e-3


def _cfg(precision: str):
    return train_cfg(train_iters=ITERS, save_interval=0, eval_interval=0, eval_iters=1, precision=precision)


def _run(blend, out: Path, cache: Path, precision: str, *, stop_at: int | None = None):
    tracker, calls = RecordingTracker(), [0]

    def should_stop() -> bool:
        calls[0] += 1
        return stop_at is not None and calls[0] == stop_at + 1

    result = pretrain(
        tiny_model(),
        _cfg(precision),
        optim_cfg(),
        blend,
        eod_id=EOD,
        n_vocab=N_VOCAB,
        out_dir=out,
        tracker=tracker,
        should_stop=should_stop,
        index_cache_dir=cache,
    )
    return result, tracker.series("loss")


@pytest.fixture(scope="module")
def runs(blend, tmp_path_factory: pytest.TempPathFactory):
    """An FP32 and a BF16 run of the same steps from the same seed; the BF16 run's optimizer is kept."""
    root = tmp_path_factory.mktemp("bf16")
    build_index_caches(tiny_model(), _cfg("fp32"), blend, eod_id=EOD, n_vocab=N_VOCAB, cache_dir=root / "cache")
    fp32 = _run(blend, root / "fp32", root / "cache", "fp32")
    built: list = []
    real = loop._build_optimizer

    def keep(*args, **kwargs):
        built.append(real(*args, **kwargs))
        return built[-1]

    loop._build_optimizer = keep
    try:
        bf16 = _run(blend, root / "bf16", root / "cache", "bf16")
    finally:
        loop._build_optimizer = real
    return {"root": root, "fp32": fp32, "bf16": bf16, "optimizer": built[0][0]}


def test_bf16_weights_with_fp32_master_params(runs) -> None:
    parts = getattr(runs["optimizer"], "chained_optimizers", [runs["optimizer"]])
    assert parts and {type(o).__name__ for o in parts} == {"Float16OptimizerWithFloat16Params"}
    for optimizer in parts:
        model_params = [p for group in optimizer.float16_groups for p in group]
        main_params = [p for group in optimizer.fp32_from_float16_groups for p in group]
        assert model_params and len(main_params) == len(model_params)
        assert all(p.dtype == torch.bfloat16 for p in model_params)
        assert all(p.dtype == torch.float32 for p in main_params)
        # the Adam state lives on the FP32 copies, and the BF16 weights are those copies rounded
        inner = optimizer.optimizer
        assert all(inner.state[p]["exp_avg"].dtype == torch.float32 for p in main_params)
        assert all(torch.equal(m.to(torch.bfloat16), p) for m, p in zip(main_params, model_params, strict=True))


def test_bf16_loss_tracks_fp32(runs) -> None:
    fp32, bf16 = runs["fp32"], runs["bf16"]
    assert fp32[0].status == bf16[0].status == "completed"
    assert sorted(bf16[1]) == sorted(fp32[1]) == list(range(1, ITERS + 1))
    gaps = [abs(bf16[1][i] - fp32[1][i]) for i in fp32[1]]
    assert max(gaps) < LOSS_TOLERANCE, gaps
    assert bf16[1][ITERS] < bf16[1][1] - 0.1  # and it learns


def test_bf16_checkpoint_resumes_bit_exact(blend, runs, tmp_path: Path) -> None:
    cache = runs["root"] / "cache"
    first, losses_a = _run(blend, tmp_path / "run", cache, "bf16", stop_at=3)
    assert (first.status, first.iteration) == ("preempted", 3)
    second, losses_b = _run(blend, tmp_path / "run", cache, "bf16")
    assert (second.status, second.iteration, second.resumed_from) == ("completed", ITERS, 3)
    assert {**losses_a, **losses_b} == runs["bf16"][1]  # bit-identical to the uninterrupted BF16 run
    assert second.metrics["val_loss"] == runs["bf16"][0].metrics["val_loss"]


def test_gpu_mfu_benchmark_smoke_runs_on_the_cpu() -> None:
    """`benchmarks/gpu_mfu.py` is the GPU claim's one command; `--smoke` runs its whole path (BF16 forced)
    on the CPU so that it cannot break unseen where CI has no GPU."""
    import json
    import os
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if k not in ("MASTER_PORT", "MASTER_ADDR", "RANK", "WORLD_SIZE")}
    env["PYTHONPATH"] = f"{repo}{os.pathsep}{env.get('PYTHONPATH', '')}"
    proc = subprocess.run([sys.executable, "benchmarks/gpu_mfu.py", "--smoke"], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout[proc.stdout.index("{"):])
    assert report["precision"] == "bf16 + fp32 master weights" and report["model"] == "tiny"
    assert report["tokens_per_s"] > 0 and 5.0 < report["first_loss"] < 7.5  # ~ln(512 + padding)
