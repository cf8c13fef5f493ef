"""Stage `long_context`: the Table-3-shaped perplexity table, its outputs, resumption cell by cell, and the
same numbers from the model exported to Hugging Face format."""

from __future__ import annotations

import json
import math

import pytest

from qwen_hpc.model.long_context import SETTINGS
from qwen_hpc.tracking.wandb_records import offline_runs
from qwen_hpc.utils.io import read_json
from tests.conftest import run_qwen

LENGTHS = [64, 128, 256, 512]  # [0.5, 1, 2, 4] x the small run's seq_length 128


def _beside(small_run, root, upstream=("data", "tokenizer", "tokens", "pretrain"), drop=()) -> list[str]:
    """Arguments for a second run in another root whose upstream folders are the small run's (so trying
    other settings never supersedes the small run's own folders); `drop` removes overrides by key."""
    run_dir = root / "small"
    run_dir.mkdir(parents=True)
    for stage in upstream:
        (run_dir / stage).symlink_to(small_run.run_dir / stage)
    kept = [a for a in small_run.args()[1:] if a.split("=", 1)[0] not in drop]
    return [f"run.root={root}", *kept]


@pytest.fixture(scope="module")
def table(small_run) -> dict:
    out = small_run.stage("long_context")
    return read_json(out / "perplexity.json")


def test_long_context_stage_writes_the_table_plot_and_wandb_table(small_run, table) -> None:
    out = small_run.run_dir / "long_context"
    assert table["train_length"] == 128 and table["lengths"] == LENGTHS
    assert table["settings"] == list(SETTINGS) and table["documents"] == 2
    assert table["layer_windows"] == [128, 256]  # tiny: one layer per step, doubling from L
    for setting in SETTINGS:
        row = table["perplexity"][setting]
        assert all(math.isfinite(row[str(n)]) and row[str(n)] > 1 for n in LENGTHS)
        # within the training length every option is inactive: the plain model's numbers, exactly
        for n in (64, 128):
            assert row[str(n)] == table["perplexity"]["plain"][str(n)]
        assert table["relative_to_train_length"][setting]["128"] == pytest.approx(1.0)
    assert table["tokens_per_length"] == {str(n): 2 * n for n in LENGTHS}
    md = (out / "table.md").read_text()
    assert md.count("\n") == 2 + len(SETTINGS) and "| dynamic_ntk+logn+window |" in md
    assert (out / "perplexity.png").read_bytes()[:4] == b"\x89PNG"
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    tables = [r for r in records if r.get("table") == "long_context/perplexity"]
    assert (
        tables and tables[-1]["columns"] == ["setting", *map(str, LENGTHS)] and len(tables[-1]["rows"]) == 4
    )
    assert list((out / "wandb").glob("**/*.wandb")), "the offline W&B run holds the table"
    marker = read_json(out / "_SUCCESS.json")
    assert marker["metrics"]["ppl/plain/512"] == pytest.approx(table["perplexity"]["plain"]["512"], rel=1e-4)
    # the table's numbers also land in the pretrain run's W&B summary (written in this stage's folder)
    pretrain_id = (small_run.run_dir / "pretrain" / "wandb_run_id").read_text().strip()
    (summary,) = [r.summary for r in offline_runs(out) if r.run_id == pretrain_id]
    assert summary["long_context/ppl/plain/512"] == marker["metrics"]["ppl/plain/512"]
    assert summary["long_context/ppl/dynamic_ntk+logn+window/512"] == marker["metrics"][
        "ppl/dynamic_ntk+logn+window/512"]


def test_long_context_resumes_at_the_next_cell(small_run, table) -> None:
    """A run stopped after some cells (as on preemption) scores only the missing ones when started again."""
    out = small_run.run_dir / "long_context"
    cells = (out / "cells.jsonl").read_text().splitlines()
    assert len(cells) == len(SETTINGS) * len(LENGTHS)
    (out / "_SUCCESS.json").unlink()
    (out / "cells.jsonl").write_text("\n".join(cells[:-3]) + "\n")
    proc = run_qwen(["long_context", *small_run.args()])
    log = proc.stdout + proc.stderr
    assert log.count(": perplexity ") == 3, log[-3000:]
    again = read_json(out / "perplexity.json")
    assert again["perplexity"] == table["perplexity"]
    assert len((out / "cells.jsonl").read_text().splitlines()) == len(cells)


def test_long_context_on_the_hf_exported_model_gives_the_same_table(small_run, table, tmp_path) -> None:
    hf_dir = small_run.run_dir / "export_hf" / "hf"
    if not hf_dir.is_dir():
        run_qwen(["export-hf", *small_run.args()])
    config = json.loads((hf_dir / "config.json").read_text())
    assert config["qwen_hpc"]["long_context"]["window_layers_per_step"] == 1  # settings travel with the model
    run_qwen(["long_context", *_beside(small_run, tmp_path), f"long_context.checkpoint={hf_dir}"])
    exported = read_json(tmp_path / "small" / "long_context" / "perplexity.json")
    assert exported["checkpoint"] == str(hf_dir)
    for setting in SETTINGS:
        for n in LENGTHS:
            assert exported["perplexity"][setting][str(n)] == pytest.approx(
                table["perplexity"][setting][str(n)], rel=1e-5
            )


def test_bad_long_context_settings_are_rejected_with_a_clear_error(small_run, table, tmp_path) -> None:
    proc = run_qwen(["long_context", *small_run.args("long_context.settings=[plain,yarn]")], check=False)
    assert proc.returncode == 2 and "yarn" in proc.stderr
    args = [
        *_beside(small_run, tmp_path),
        "long_context.lengths=[1,1000]",
    ]  # 128,000 tokens: no such document
    proc = run_qwen(["long_context", *args], check=False)
    assert proc.returncode != 0
    assert "no held-out (valid) document" in proc.stdout + proc.stderr


def test_generate_command_takes_the_long_context_switches(small_run, table, tmp_path) -> None:
    hf_dir = small_run.run_dir / "export_hf" / "hf"
    if not hf_dir.is_dir():
        run_qwen(["export-hf", *small_run.args()])
    prompt = tmp_path / "long.txt"
    prompt.write_text("def f(x):\n    return x + 1\n\n" * 40)  # well past the 128-token training length
    logprobs = {}
    for flags in ((), ("dynamic_ntk=true", "logn=true", "window=true")):
        args = [
            "generate",
            f"model={hf_dir}",
            f"prompt=@{prompt}",
            "max_new_tokens=3",
            "logprobs=true",
            *flags,
        ]
        logprobs[flags] = json.loads(run_qwen(args).stdout.strip().splitlines()[-1])["logprobs"]
    assert len(set(map(tuple, logprobs.values()))) == 2, (
        "the switches change the model past its training length"
    )
    bad = run_qwen(["generate", f"model={hf_dir}", "prompt=x", "logn=maybe"], check=False)
    assert bad.returncode == 2 and "logn='maybe' must be true or false" in bad.stderr


def test_table3_shape_on_the_tiny_model_trained_at_128(tmp_path) -> None:
    """Table 3 at toy scale: the 2-layer `tiny` model trained 3,000 steps (about 1.4 epochs) at L = 128 on the
    whole embedded corpus, tokenized with 768 merges so that documents are long and the model must use long
    spans; scored on 8 held-out documents.

    Measured (2 cores, two machines): plain at 8L = 2.4-2.5x its perplexity at L (16L: 2.6x); + NTK + LogN
    1.12x at 8L (16L: 1.40x); + window 1.03x at 8L and 0.95x at 16L. The plain model breaks as the paper's does
    and windows hold it. The bounds keep a margin under the measured numbers: training differs in the last bits
    across machines and thread counts, and an earlier corpus gave 3.8x / 1.9x / 1.36x at 8L.
    """
    args = [
        f"run.root={tmp_path}",
        "launcher=debug",
        "tokenizer.vocab_size=768",
        "pretrain.train.train_iters=3000",
        "pretrain.train.eval_interval=0",
        "pretrain.train.save_interval=0",
        "long_context.num_documents=8",
    ]
    for stage in ("data", "tokenizer", "tokens", "pretrain", "long_context"):
        run_qwen([stage, *args], timeout=1800)
    result = read_json(tmp_path / "tiny" / "long_context" / "perplexity.json")
    assert result["documents"] == 8 and result["lengths"] == [64, 128, 256, 512, 1024, 2048]
    ppl = {s: {int(n): v for n, v in row.items()} for s, row in result["perplexity"].items()}
    at_l = ppl["plain"][128]
    assert all(ppl[s][n] == ppl["plain"][n] for s in SETTINGS for n in (64, 128))
    # the plain model breaks past its training length: >= 2x at 8L and 16L (the paper's shape), worse with length
    assert ppl["plain"][1024] >= 2.0 * at_l and ppl["plain"][2048] >= 2.0 * at_l
    assert at_l < ppl["plain"][256] < ppl["plain"][512] < ppl["plain"][1024]
    # dynamic NTK + LogN removes much of it; + layer-wise windows keeps 16L within 1.3x of L (at 4L the two
    # are within 1 % of each other, so a 2 % margin)
    for n in (512, 1024, 2048):
        assert ppl["dynamic_ntk+logn"][n] < 0.7 * ppl["plain"][n]
        assert ppl["dynamic_ntk+logn+window"][n] <= 1.02 * ppl["dynamic_ntk+logn"][n]
    assert ppl["dynamic_ntk+logn"][1024] <= 2.2 * at_l
    assert ppl["dynamic_ntk+logn+window"][1024] <= 1.5 * at_l
    assert ppl["dynamic_ntk+logn+window"][2048] <= 1.3 * at_l
