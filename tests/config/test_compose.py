"""Every config composes and validates; bad overrides are rejected, naming the key, before anything runs."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from qwen_hpc.config.compose import ConfigError, config_dir, load
from qwen_hpc.config.schema import QwenConfig
from tests.conftest import run_qwen

CONFIG = config_dir()


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIG / group).glob("*.yaml"))


@pytest.mark.parametrize("experiment", _options("experiment"))
@pytest.mark.parametrize("launcher", _options("launcher"))
@pytest.mark.parametrize("logger", _options("logger"))
def test_every_group_option_composes(experiment: str, launcher: str, logger: str) -> None:
    plain, typed = load([f"experiment={experiment}", f"launcher={launcher}", f"logger={logger}"])
    assert isinstance(typed, QwenConfig)
    assert typed.launcher.kind == launcher
    assert typed.logger.kind == logger
    assert plain["run"]["name"] == typed.run.name


@pytest.mark.parametrize("model", _options("model"))
def test_every_model_composes(model: str) -> None:
    _, typed = load([f"model={model}"])
    assert typed.model.name == model


@pytest.mark.parametrize(
    ("override", "names"),
    [
        ("model.not_a_key=1", "model.not_a_key"),
        ("+pretrain.train.bogus=3", "bogus"),
        ("model.hidden_size=abc", "model.hidden_size"),
        ("pretrain.optimizer.lr=fast", "pretrain.optimizer.lr"),
        ("model.num_attention_heads=3", "num_attention_heads"),
        ("pretrain.optimizer.lr=-1", "lr"),
        ("pretrain.train.global_batch_size=7", "global_batch_size"),
        ("launcher.kind=kubernetes", "launcher.kind"),
        ("launcher=slurm launcher.signal_delay_s=100000", "signal_delay_s"),
        ("tokenizer.vocab_size=100", "tokenizer.vocab_size"),
        ("data.shard_max_docs=0", "shard_max_docs"),
        ("run.name=a/b", "run.name"),
        ("model.long_context.layer_windows=[64,128,256]", "model.long_context.layer_windows"),
        ("model.long_context.window_growth=0.5", "long_context.window_growth"),
        ("long_context.settings=[plain,yarn]", "long_context.settings"),
        ("long_context.lengths=[0,1]", "long_context.lengths"),
        ("long_context.held_out=train", "long_context.held_out"),
    ],
)
def test_bad_override_is_rejected_naming_the_key(override: str, names: str) -> None:
    with pytest.raises(ConfigError, match=names.replace(".", r"\.")):
        load(override.split())


def test_bad_override_on_cli_runs_nothing(tmp_path: Path) -> None:
    proc = run_qwen(["pretrain", f"run.root={tmp_path}", "launcher=slurm", "model.hidden_size=-4"], check=False)
    assert proc.returncode == 2
    assert "model.hidden_size" in proc.stderr
    assert list(tmp_path.iterdir()) == [], "nothing may be written or submitted for a bad config"


def test_missing_data_source_is_a_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "*.jsonl"
    proc = run_qwen(["data", f"run.root={tmp_path}", f"data.sources=[{{name: web, paths: ['{missing}']}}]"],
                    check=False)
    assert proc.returncode == 2, proc.stderr
    assert str(missing) in proc.stderr
    assert not (tmp_path / "tiny" / "data" / "_SUCCESS.json").exists()


def test_upstream_missing_is_reported_before_submitting(tmp_path: Path) -> None:
    proc = run_qwen(["pretrain", f"run.root={tmp_path}", "launcher=slurm"], check=False)
    assert proc.returncode == 2
    assert "needs tokenizer, tokens first" in proc.stderr


def test_cfg_job_prints_the_composed_config() -> None:
    proc = run_qwen(["pretrain", "--cfg", "job", "model.hidden_size=256"])
    printed = yaml.safe_load(proc.stdout)
    assert printed["model"]["hidden_size"] == 256
    assert set(printed) >= {"run", "model", "data", "tokenizer", "tokens", "pretrain", "evaluate", "report",
                            "launcher", "logger"}


def test_help_lists_every_stage() -> None:
    from qwen_hpc.stages.registry import STAGE_NAMES

    proc = subprocess.run(["qwen-hpc", "--help"], capture_output=True, text=True, check=True)
    lines = proc.stdout.splitlines()
    for stage in STAGE_NAMES:
        assert any(line.strip().startswith(stage + " ") for line in lines), stage


def test_the_typed_config_is_built_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    import copy

    from qwen_hpc.config import compose

    plain, typed = load(["run.name=once", "pretrain.train.train_iters=7"])
    built = []
    monkeypatch.setattr(compose, "to_typed", lambda p: built.append(p) or typed)
    first = compose.typed_config(plain)
    assert compose.typed_config(copy.deepcopy(plain)) is first  # same content: the same object
    assert len(built) == 1 and first.pretrain.train.train_iters == 7
    other = {**plain, "run": {**plain["run"], "name": "twice"}}
    assert compose.typed_config(other, typed) is typed and len(built) == 1  # recorded, not rebuilt


def test_python_dash_m_qwen_hpc_is_the_qwen_hpc_command() -> None:
    import sys

    from tests.conftest import REPO, child_env

    proc = subprocess.run([sys.executable, "-m", "qwen_hpc", "validate", "run.name=viam", "logger=none"],
                          cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert '"experiment": "viam"' in proc.stdout


# --- `qwen-hpc validate` runs every check a stage makes before submitting -------------------------------------


def test_validate_rejects_a_layout_the_stage_would_reject(tmp_path: Path) -> None:
    proc = run_qwen(["validate", f"run.root={tmp_path}", "experiment=qwen_14b",
                     "pretrain.train.tensor_model_parallel_size=3"], check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "model.num_attention_heads=40 must be divisible by train.tensor_model_parallel_size=3" in proc.stderr
    assert '"config": "invalid"' in proc.stdout
    assert list(tmp_path.iterdir()) == []


def test_validate_reports_missing_inputs_and_no_inputs_makes_them_non_fatal(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "*.jsonl"
    args = ["validate", "data", "pretrain", f"run.root={tmp_path}",
            f"data.sources=[{{name: web, paths: ['{missing}']}}]"]
    proc = run_qwen(args, check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert str(missing) in proc.stderr and "pretrain: needs tokens first" in proc.stderr
    relaxed = run_qwen([*args, "--no-inputs"])
    report = json.loads(relaxed.stdout.strip().splitlines()[-1])
    assert report["config"] == "ok" and report["stages"] == ["data", "pretrain"] and not report["problems"]
    assert any(str(missing) in m for m in report["missing_inputs"])
    assert any("needs tokens first" in m for m in report["missing_inputs"])


def test_validate_whole_dag_passes_on_a_fresh_run_and_rejects_launcher_settings(tmp_path: Path) -> None:
    ok = run_qwen(["validate", f"run.root={tmp_path}"])
    assert json.loads(ok.stdout.strip().splitlines()[-1])["stages"][:4] == ["data", "tokenizer", "tokens", "pretrain"]
    proc = run_qwen(["validate", f"run.root={tmp_path}", "launcher.nodes=2"], check=False)
    assert proc.returncode == 2 and "nodes=2 needs launcher=slurm" in proc.stderr, proc.stderr


def test_validate_leaves_out_the_branch_snakemake_leaves_out_for_missing_data(tmp_path: Path) -> None:
    """A fresh clone with no data root: tiny's Math-Qwen branch has no GSM8K, so `rule all` leaves it out
    (`recipe.missing_data=skip`) and `validate` checks the same DAG; `missing_data=fail` makes it an error."""
    from qwen_hpc.stages.plan import planned_stages

    empty = tmp_path / "no_data"
    empty.mkdir()
    args = ["validate", f"run.root={tmp_path / 'runs'}", f"run.data_root={empty}"]
    proc = run_qwen(args)
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["config"] == "ok" and "math_sft" not in report["stages"] and "math_evaluate" not in report["stages"]
    assert {"code_pretrain", "code_sft", "ppo", "report"} <= set(report["stages"])
    (why,) = report["left_out"]["recipe.math_qwen"]
    assert why.startswith("math_sft: ") and str(empty / "gsm8k" / "train.jsonl") in why
    assert "recipe.math_qwen left out" in proc.stderr
    _, cfg = load([f"run.data_root={empty}"])
    assert report["stages"] == planned_stages(cfg)  # the stages `rule all` builds (workflow/rules/common.smk)
    strict = run_qwen([*args, "recipe.missing_data=fail"], check=False)
    assert strict.returncode == 2 and "math_sft: math_sft.sources[name='gsm8k'].paths" in strict.stderr, strict.stderr
    assert not (tmp_path / "runs").exists()


def test_validate_rejects_an_unknown_slurm_partition(tmp_path: Path, require_slurm: None) -> None:
    proc = run_qwen(["validate", "tokenizer", "--no-inputs", f"run.root={tmp_path}", "launcher=slurm",
                     "launcher.partition=no_such_partition"], check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "partition='no_such_partition' is not a Slurm partition here" in proc.stderr
