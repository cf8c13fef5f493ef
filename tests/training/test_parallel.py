"""Multi-process runs under torchrun (gloo, 2 ranks): tensor parallelism reproduces the single-process losses,
and data parallelism with the distributed optimizer resumes exactly after a preemption."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from qwen_hpc.training.data import build_index_caches
from qwen_hpc.training.loop import pretrain

from .helpers import EOD, N_VOCAB, RecordingTracker, optim_cfg, tiny_model, train_cfg

REPO = Path(__file__).resolve().parents[2]
TRAIN = {"train_iters": 12, "eval_interval": 6, "save_interval": 0}
_DIST_ENV = (
    "MASTER_PORT",
    "MASTER_ADDR",
    "RANK",
    "WORLD_SIZE",
    "LOCAL_RANK",
    "LOCAL_WORLD_SIZE",
    "GROUP_RANK",
)


def _torchrun(tmp: Path, name: str, blend, cache: Path, out_dir: Path, *, stop_at: int = 0, **train) -> dict:
    spec = {
        "out_json": str(tmp / f"{name}.json"),
        "out_dir": str(out_dir),
        "cache_dir": str(cache),
        "blend": blend,
        "stop_at": stop_at,
        "train": {**TRAIN, **train},
    }
    (tmp / f"{name}.spec.json").write_text(json.dumps(spec))
    env = {k: v for k, v in os.environ.items() if k not in _DIST_ENV}  # ours is an in-process gloo group
    env.update(PYTHONPATH=f"{REPO}{os.pathsep}{env.get('PYTHONPATH', '')}", OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    cmd += ["-m", "tests.training.dist_worker", str(tmp / f"{name}.spec.json")]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    result = json.loads(Path(spec["out_json"]).read_text())
    result["losses"] = {int(k): v for k, v in result["losses"].items()}
    return result


@pytest.fixture(scope="module")
def single(blend, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[int, float], float, Path]:
    """The one-process run every layout is compared with; also prebuilds the index caches."""
    root = tmp_path_factory.mktemp("single")
    build_index_caches(
        tiny_model(), train_cfg(**TRAIN), blend, eod_id=EOD, n_vocab=N_VOCAB, cache_dir=root / "cache"
    )
    tracker = RecordingTracker()
    result = pretrain(
        tiny_model(),
        train_cfg(**TRAIN),
        optim_cfg(),
        blend,
        eod_id=EOD,
        n_vocab=N_VOCAB,
        out_dir=root / "run",
        tracker=tracker,
        should_stop=lambda: False,
        index_cache_dir=root / "cache",
    )
    return tracker.series("loss"), result.metrics["val_loss"], root / "cache"


def test_tensor_parallel_2_matches_one_process(blend, single, tmp_path: Path) -> None:
    losses, val_loss, cache = single
    tp2 = _torchrun(tmp_path, "tp2", blend, cache, tmp_path / "run", tensor_model_parallel_size=2)
    assert tp2["status"] == "completed" and sorted(tp2["losses"]) == sorted(losses)
    assert max(abs(tp2["losses"][i] - losses[i]) for i in losses) < 1e-5
    assert tp2["val_loss"] == pytest.approx(val_loss, abs=1e-5)


def test_data_parallel_distributed_optimizer_resumes_exactly(blend, single, tmp_path: Path) -> None:
    losses, val_loss, cache = single
    out = tmp_path / "run"
    first = _torchrun(tmp_path, "a", blend, cache, out, stop_at=5, use_distributed_optimizer=True)
    assert (first["status"], first["iteration"]) == ("preempted", 5)
    second = _torchrun(tmp_path, "b", blend, cache, out, use_distributed_optimizer=True)
    assert (second["status"], second["iteration"], second["resumed_from"]) == ("completed", 12, 5)
    resumed = {**first["losses"], **second["losses"]}
    assert sorted(resumed) == sorted(losses)
    # DP=2 sums the same micro-batches in another order than DP=1: equal to float rounding, no more
    assert max(abs(resumed[i] - losses[i]) for i in losses) < 1e-5
    assert second["val_loss"] == pytest.approx(val_loss, abs=1e-5)
