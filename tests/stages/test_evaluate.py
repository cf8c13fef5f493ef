from __future__ import annotations

import math
import shutil
import subprocess

import pytest

from qwen_hpc.tracking.wandb_records import offline_runs
from qwen_hpc.utils.io import read_json
from tests.conftest import DATA_ROOT, QWEN, child_env, run_qwen

BENCHMARKS = ("mmlu", "ceval", "cmmlu", "gsm8k", "math", "humaneval", "mbpp", "bbh")


def test_evaluate_stage_reports_validation_perplexity(small_run) -> None:
    out = small_run.stage("evaluate")
    scores = read_json(out / "perplexity.json")
    assert math.isfinite(scores["loss"]) and scores["tokens"] > 0
    assert math.isclose(scores["perplexity"], math.exp(scores["loss"]), rel_tol=1e-6)
    vocab = read_json(small_run.run_dir / "tokens" / "blend.json")["n_vocab"]
    assert scores["perplexity"] < vocab, "a trained model must beat the uniform distribution"
    assert scores["iteration"] == 60


def test_evaluate_stage_runs_the_suite_whose_data_exist(small_run) -> None:
    """The tiny experiment: every benchmark with data, 4 samples each (limit), the rest skipped with a reason."""
    out = small_run.stage("evaluate")
    results = read_json(out / "results.json")
    expected = [b for b in BENCHMARKS if b == "humaneval" or (DATA_ROOT / ("bbh" if b == "bbh" else b)).is_dir()]
    assert sorted(results["scores"]) == sorted(expected)
    assert set(results["skipped"]) == set(BENCHMARKS) - set(expected)
    for name in expected:
        task = read_json(out / f"{name}.json")
        assert task["n"] == 4 and 0.0 <= task["score"] <= 1.0 and task["score"] == results["scores"][name]
        for record in task["records"]:
            assert {"prompt", "output", "extracted", "gold", "correct"} <= set(record)
    if "mmlu" in expected:
        assert {r["output"] for r in read_json(out / "mmlu.json")["records"]} <= set("ABCD")
    assert "| benchmark | ours (%) |" in (out / "paper.md").read_text()
    marker = read_json(out / "_SUCCESS.json")["metrics"]
    assert all(f"score/{name}" in marker for name in expected)


def _copy_run(small_run, tmp_path):
    """The small run's upstream stages in a run root of this test's own (so its evaluate folder stays)."""
    small_run.stage("pretrain")
    root = tmp_path / "runs"
    shutil.copytree(small_run.run_dir, root / "small", ignore=shutil.ignore_patterns("evaluate*", "wandb"))
    return root


def _args(small_run, root, *extra: str) -> list[str]:
    return [a for a in small_run.args(*extra) if not a.startswith("run.root=")] + [f"run.root={root}"]


def test_evaluate_command_with_tasks_and_limit(small_run, tmp_path) -> None:
    if not (DATA_ROOT / "mmlu").is_dir():
        pytest.skip(f"benchmark datasets not found at {DATA_ROOT}")
    root = _copy_run(small_run, tmp_path)
    run_qwen(["evaluate", *_args(small_run, root, "evaluate.tasks=[mmlu,gsm8k]", "evaluate.limit=3")])
    results = read_json(root / "small" / "evaluate" / "results.json")
    assert sorted(results["scores"]) == ["gsm8k", "mmlu"] and "perplexity" not in results
    assert read_json(root / "small" / "evaluate" / "mmlu.json")["n"] == 3


def test_missing_benchmark_fails_before_submission(small_run, tmp_path) -> None:
    root = _copy_run(small_run, tmp_path)
    empty = tmp_path / "no_data"
    empty.mkdir()
    proc = subprocess.run(
        [*QWEN, "evaluate", *_args(small_run, root, "evaluate.tasks=[mmlu,gsm8k]", "evaluate.missing_data=fail")],
        env=child_env(QWEN_HPC_DATA_ROOT=str(empty)), capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    assert str(empty / "mmlu" / "mmlu.jsonl") in proc.stderr and "qwen_gsm8k_prompt.txt" in proc.stderr
    assert "README.md" in proc.stderr
    assert not (root / "small" / "evaluate").exists(), "nothing may start when data are missing"


def test_evaluate_checkpoint_on_an_imported_model(small_run, tmp_path) -> None:
    """`evaluate.checkpoint=<import_hf folder>` (a TP=2 layout, resharded) predicts what the pretrain
    checkpoint it came from predicts."""
    if not (DATA_ROOT / "mmlu").is_dir():
        pytest.skip(f"benchmark datasets not found at {DATA_ROOT}")
    pytest.importorskip("transformers")
    root = _copy_run(small_run, tmp_path)
    args = _args(small_run, root, "evaluate.tasks=[mmlu,gsm8k]", "evaluate.limit=6")
    run_qwen(["export-hf", *args])
    imported = tmp_path / "imported"
    run_qwen(["import-hf", *args, f"hf_path={root / 'small' / 'export_hf' / 'hf'}", f"output={imported}", "tp=2"])
    run_qwen(["evaluate", *args])
    own = root / "small" / "evaluate"
    first = {t: read_json(own / f"{t}.json")["records"] for t in ("mmlu", "gsm8k")}
    run_qwen(["evaluate", *args, f"evaluate.checkpoint={imported}"])
    results = read_json(own / "results.json")
    assert results["checkpoint"] == str(imported)
    for task, records in first.items():
        again = read_json(own / f"{task}.json")["records"]
        assert [r["output"] for r in again] == [r["output"] for r in records]


def test_evaluate_logs_to_its_run_and_into_the_pretrain_runs_summary(small_run) -> None:
    """Offline: the evaluate folder holds its own run and a summary-only directory carrying the pretrain
    run's id, which `wandb sync` merges into the training run."""
    out = small_run.stage("evaluate")
    scores = read_json(out / "perplexity.json")
    own_id = (out / "wandb_run_id").read_text().strip()
    pretrain_id = (small_run.run_dir / "pretrain" / "wandb_run_id").read_text().strip()
    runs = {r.run_id: r for r in offline_runs(out)}
    assert set(runs) == {own_id, pretrain_id}, list(runs)
    assert runs[own_id].summary["val/loss"] == scores["loss"]
    into_pretrain = runs[pretrain_id]
    assert not into_pretrain.steps  # a summary update only: the training run's history is untouched
    assert into_pretrain.summary["evaluate/loss"] == scores["loss"]
    assert into_pretrain.summary["evaluate/perplexity"] == scores["perplexity"]


def test_two_ranks_split_the_batches_and_agree_with_one(small_run, tmp_path) -> None:
    """A 2-task job (launcher=local): each rank runs every other batch into its own log; rank 0 gathers
    the same records one process writes."""
    if not (DATA_ROOT / "mmlu").is_dir():
        pytest.skip(f"benchmark datasets not found at {DATA_ROOT}")
    one, two = _copy_run(small_run, tmp_path / "one"), _copy_run(small_run, tmp_path / "two")
    extra = ("evaluate.tasks=[mmlu,gsm8k]", "evaluate.limit=6", "evaluate.batch_size=2")
    run_qwen(["evaluate", *_args(small_run, one, *extra)])
    local = [a.replace("launcher=debug", "launcher=local") for a in _args(small_run, two, *extra)]
    run_qwen(["evaluate", *local, "evaluate.resources.tasks_per_node=2"])
    for task in ("mmlu", "gsm8k"):
        assert (two / "small" / "evaluate" / f"{task}.batches.rank1.jsonl").is_file()
        alone = read_json(one / "small" / "evaluate" / f"{task}.json")["records"]
        split = read_json(two / "small" / "evaluate" / f"{task}.json")["records"]
        assert [r["id"] for r in split] == [r["id"] for r in alone]
        assert [r["output"] for r in split] == [r["output"] for r in alone]
