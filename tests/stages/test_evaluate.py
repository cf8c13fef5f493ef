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
    # the same folder from a fresh run folder where no stage ran: it carries its model and tokenizer
    fresh = tmp_path / "fresh"
    alone = [a for a in args if not a.startswith("run.root=")]
    run_qwen(["evaluate", f"run.root={fresh}", *alone, f"evaluate.checkpoint={imported}"])
    out = fresh / "small" / "evaluate"
    assert read_json(out / "_SUCCESS.json")["inputs"].keys() == {"checkpoint"}
    assert not (fresh / "small" / "pretrain").exists()
    for task, records in first.items():
        assert [r["output"] for r in read_json(out / f"{task}.json")["records"]] == [r["output"] for r in records]


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


def test_two_ranks_data_tensor_or_pipeline_parallel_agree_with_one(small_run, tmp_path) -> None:
    """2-task jobs (launcher=local) against one process on the same checkpoint. Data parallel: each rank
    runs every other batch into its own log; rank 0 gathers the same records. Tensor parallel
    (`evaluate.tensor_model_parallel_size=2`) and pipeline parallel (`..pipeline_model_parallel_size=2`):
    the two ranks hold halves of the model (the checkpoint resharded on load) and give the same
    multiple-choice predictions, the same greedy generations and the same perplexity to float rounding;
    only rank 0 writes."""
    if not (DATA_ROOT / "mmlu").is_dir():
        pytest.skip(f"benchmark datasets not found at {DATA_ROOT}")
    one, two, tp, pp = (_copy_run(small_run, tmp_path / name) for name in ("one", "two", "tp", "pp"))
    extra = ("evaluate.limit=6", "evaluate.batch_size=2")
    run_qwen(["evaluate", *_args(small_run, one, "evaluate.tasks=[perplexity,mmlu,gsm8k]", *extra)])

    def local(root, *more: str) -> list[str]:
        return [a.replace("launcher=debug", "launcher=local") for a in _args(small_run, root, *extra, *more)]

    run_qwen(["evaluate", *local(two, "evaluate.tasks=[mmlu,gsm8k]"), "evaluate.resources.tasks_per_node=2"])
    for root, key in ((tp, "tensor_model_parallel_size"), (pp, "pipeline_model_parallel_size")):
        run_qwen(["evaluate", *local(root, "evaluate.tasks=[perplexity,mmlu,gsm8k]"),
                  "evaluate.resources.tasks_per_node=2", f"evaluate.{key}=2"])
    for task in ("mmlu", "gsm8k"):
        assert (two / "small" / "evaluate" / f"{task}.batches.rank1.jsonl").is_file()
        for root in (tp, pp):  # one model replica: one log
            assert not list((root / "small" / "evaluate").glob(f"{task}.batches.rank*.jsonl"))
        alone = read_json(one / "small" / "evaluate" / f"{task}.json")["records"]
        for root in (two, tp, pp):
            split = read_json(root / "small" / "evaluate" / f"{task}.json")["records"]
            assert [r["id"] for r in split] == [r["id"] for r in alone]
            assert [r["output"] for r in split] == [r["output"] for r in alone], (root.parent.name, task)
    assert any(r["output"] for r in read_json(tp / "small" / "evaluate" / "gsm8k.json")["records"])
    alone = read_json(one / "small" / "evaluate" / "perplexity.json")
    for root in (tp, pp):
        sharded = read_json(root / "small" / "evaluate" / "perplexity.json")
        assert alone["tokens"] == sharded["tokens"]
        assert math.isclose(sharded["perplexity"], alone["perplexity"], rel_tol=1e-5), (root.parent.name, sharded, alone)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("evaluate.tensor_model_parallel_size=3",), "evaluate.tensor_model_parallel_size=3 must divide model's"),
        (("evaluate.tensor_model_parallel_size=2", "evaluate.resources.tasks_per_node=3"),
         "world size 3 must be divisible by evaluate.tensor_model_parallel_size=2"),
        (("evaluate.pipeline_model_parallel_size=3", "evaluate.resources.tasks_per_node=3"),
         "evaluate.pipeline_model_parallel_size=3 must divide model's num_layers=2"),
    ],
)
def test_bad_evaluate_layout_fails_before_submission(tmp_path, overrides, message) -> None:
    """An impossible TP/PP layout stops `qwen-hpc evaluate` before anything starts, naming the key."""
    from tests.stages.conftest import SmallRun

    run = SmallRun(tmp_path / "runs")
    args = [a.replace("launcher=debug", "launcher=local") for a in run.args(*overrides)]
    proc = subprocess.run([*QWEN, "evaluate", *args], env=child_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr, proc.stderr
    assert not (run.run_dir / "evaluate").exists()


@pytest.mark.parametrize(("experiment", "tp", "gpus"), [("qwen_1_8b", 1, 1), ("qwen_7b", 2, 2), ("qwen_14b", 4, 4),
                                                        ("qwen_72b", 8, 32), ("math_qwen_14b", 4, 4)])
def test_paper_experiments_evaluate_in_a_layout_that_fits(experiment, tp, gpus) -> None:
    """The paper-size experiment files give evaluate a TP layout their model and job split into (72B: one
    node per replica); pretraining's TP 8 x PP 4 would fit the 72B job too."""
    import dataclasses

    from qwen_hpc.config.compose import load
    from qwen_hpc.stages.preflight import PreflightError, check_training_layout, job_world_size

    _, cfg = load([f"experiment={experiment}", "launcher=slurm"])
    stage = "math_evaluate" if experiment.startswith("math") else "evaluate"
    section = getattr(cfg, stage)
    assert section.layout(cfg.pretrain.train) == (tp, 1) and job_world_size(cfg, stage) == gpus
    check_training_layout(stage, cfg)
    if experiment == "qwen_72b":
        inherit = dataclasses.replace(cfg, evaluate=dataclasses.replace(cfg.evaluate, pipeline_model_parallel_size=None))
        assert inherit.evaluate.layout(cfg.pretrain.train) == (8, 4)
        check_training_layout("evaluate", inherit)
        odd = dataclasses.replace(cfg, evaluate=dataclasses.replace(cfg.evaluate, pipeline_model_parallel_size=5))
        with pytest.raises(PreflightError, match=r"world size 32 must be divisible by evaluate.tensor_model_parallel_"
                                                 r"size=8 × evaluate.pipeline_model_parallel_size=5"):
            check_training_layout("evaluate", odd)


def test_an_hf_folder_is_read_whole_so_a_sharded_layout_asks_for_import_hf(tmp_path) -> None:
    pytest.importorskip("transformers")
    from qwen_hpc.config.compose import load
    from qwen_hpc.model.config import ModelConfig
    from qwen_hpc.model.hf_convert import qwen2_config
    from qwen_hpc.stages.preflight import PreflightError, check_training_layout

    hf = tmp_path / "hf"
    hf.mkdir()
    qwen2_config(ModelConfig(), 1024).to_json_file(hf / "config.json")
    _, cfg = load([f"evaluate.checkpoint={hf}", "evaluate.tasks=[mmlu]", "launcher=local",
                   "evaluate.resources.tasks_per_node=2", "evaluate.tensor_model_parallel_size=2"])
    with pytest.raises(PreflightError, match=r"is a Hugging Face folder, read unsharded: with evaluate.tensor_model_"
                                             r"parallel_size=2 convert it first \(`qwen-hpc import-hf"):
        check_training_layout("evaluate", cfg)
