"""The offline W&B reader against files real wandb wrote, whole and cut short as a SIGKILL leaves them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from qwen_hpc.tracking.wandb_records import BLOCK, HEADER, last_written_step, offline_runs, read_offline_run

STEPS = 40


@pytest.fixture(scope="module")
def stage_dir(tmp_path_factory) -> Path:
    """A stage folder with one finished offline run that logged steps 1..STEPS."""
    wandb = pytest.importorskip("wandb")
    stage = tmp_path_factory.mktemp("stage")
    run = wandb.init(project="t", id="abc123def456", mode="offline", dir=stage / "wandb",
                     settings=wandb.Settings(silent=True))
    for step in range(1, STEPS + 1):
        # a wide row so the log spans more than one 32 KiB block and chunks are split across blocks
        run.log({"loss": 1.0 / step, "text": "x" * 2000}, step=step)
    run.finish()
    wandb.teardown()  # finish() may return before W&B's service has written the file's tail: stop the service
    return stage


def _copy_cut(run_dir: Path, dest: Path, keep_bytes: int | None) -> Path:
    """A copy of `run_dir` under `dest` whose log keeps its first `keep_bytes` bytes (None: no log at all)."""
    copy = dest / "wandb" / "wandb" / f"offline-run-29990101_000000-{run_dir.name.rsplit('-', 1)[-1]}"
    copy.mkdir(parents=True)
    if keep_bytes is not None:
        (log,) = run_dir.glob("run-*.wandb")
        (copy / log.name).write_bytes(log.read_bytes()[:keep_bytes])
    return copy


def test_a_whole_run_reads_back_its_id_steps_and_summary(stage_dir: Path) -> None:
    (run,) = offline_runs(stage_dir)
    (log,) = run.path.glob("run-*.wandb")
    assert log.stat().st_size > BLOCK  # the reader crossed a block boundary
    assert run.run_id == "abc123def456"
    assert run.steps == list(range(1, STEPS + 1))
    assert run.history[-1]["loss"] == pytest.approx(1.0 / STEPS)
    assert run.summary["loss"] == pytest.approx(1.0 / STEPS)
    assert last_written_step(stage_dir, "abc123def456") == STEPS
    assert last_written_step(stage_dir, "000000000000") == -1


@pytest.mark.parametrize("cut", ["no_log", "header_only", "half"])
def test_a_run_cut_short_keeps_its_id_and_a_prefix_of_its_steps(stage_dir: Path, tmp_path: Path, cut: str) -> None:
    """SIGKILL before W&B's writer created or flushed its file: the id comes from the directory's name, so a
    resumed job still finds its earlier directories; the steps are whatever whole records were written."""
    (whole,) = offline_runs(stage_dir)
    (log,) = whole.path.glob("run-*.wandb")
    keep = {"no_log": None, "header_only": HEADER.size, "half": log.stat().st_size // 2}[cut]
    cut_run = read_offline_run(_copy_cut(whole.path, tmp_path, keep))
    assert cut_run.run_id == "abc123def456"
    assert cut_run.steps == list(range(1, len(cut_run.steps) + 1))
    if cut == "half":
        assert 0 < len(cut_run.steps) < STEPS
    else:
        assert cut_run.steps == []
    # the whole run and the cut copy side by side: the highest step W&B wrote across both
    shutil.copytree(whole.path, tmp_path / "wandb" / "wandb" / whole.path.name)
    assert last_written_step(tmp_path, "abc123def456") == STEPS


def _tracker(stage: Path):
    from qwen_hpc.tracking.wandb_tracker import WandbTracker

    return WandbTracker(stage_dir=stage, project="t", experiment="e", stage="pretrain", mode="offline",
                        entity=None, tags=None, config={})


@pytest.mark.parametrize("written_before_kill", [0, 3])
def test_a_resumed_job_logs_every_step_once_even_when_wandb_wrote_nothing_before_the_kill(
    tmp_path: Path, written_before_kill: int
) -> None:
    """The killed job logged steps 1..5 to metrics.jsonl (synchronously) and checkpointed at step 2; W&B's
    writer had written `written_before_kill` of them (0: SIGKILL before its first flush, stop 21's CI). The
    resumed job recomputes from step 3: W&B must end with steps 1..8, each once, under one id."""
    wandb = pytest.importorskip("wandb")
    first = _tracker(tmp_path)
    for step in range(1, written_before_kill + 1):
        first.log({"loss": 10.0 - step}, step=step)
    first.close()
    wandb.teardown()  # as the killed job's exit: W&B's service has written all it was going to
    (earlier,) = offline_runs(tmp_path)
    if written_before_kill == 0:  # as SIGKILL leaves it: the log holds W&B's header and nothing else
        (log,) = earlier.path.glob("run-*.wandb")
        log.write_bytes(log.read_bytes()[:HEADER.size])
    (tmp_path / "metrics.jsonl").write_text("".join(
        json.dumps({"stage": "pretrain", "time": 0, "step": s, "loss": 10.0 - s}) + "\n" for s in range(1, 6)))

    resumed = _tracker(tmp_path)
    for step in range(3, 9):  # from the checkpoint at step 2
        resumed.log({"loss": 10.0 - step}, step=step)
    resumed.close()
    wandb.teardown()
    runs = offline_runs(tmp_path)
    assert len(runs) == 2 and {r.run_id for r in runs} == {resumed.run_id}
    assert runs[0].steps + runs[1].steps == list(range(1, 9)), [(r.path.name, r.steps) for r in runs]
    assert runs[1].history[0]["loss"] == 10.0 - (written_before_kill + 1)
