"""The Table-3 object the long_context stage writes its outputs from: perplexities from the recorded cells,
ratios to the training length, the markdown/W&B/metric forms, and cells read back for a resumed run."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from qwen_hpc.evaluation.long_context import PerplexityTable, context_lengths, read_cells
from qwen_hpc.utils.io import append_jsonl


def _table(cells: dict) -> PerplexityTable:
    return PerplexityTable(train_length=4, lengths=[2, 4, 8], settings=["plain", "dynamic_ntk"], documents=2,
                           layer_windows=[4, 8], cells=cells, finished=True)


def _cell(setting: str, length: int, nll_per_token: float) -> dict:
    tokens = 2 * length  # two documents
    return {"setting": setting, "length": length, "nll_sum": nll_per_token * tokens, "tokens": tokens}


@pytest.fixture
def table() -> PerplexityTable:
    nll = {("plain", 2): 2.0, ("plain", 4): 1.5, ("plain", 8): 3.0,
           ("dynamic_ntk", 2): 2.0, ("dynamic_ntk", 4): 1.5, ("dynamic_ntk", 8): 1.6}
    return _table({k: _cell(*k, v) for k, v in nll.items()})


def test_perplexities_and_ratios_to_the_training_length(table: PerplexityTable) -> None:
    summary = table.summary()
    assert summary["perplexity"]["plain"]["8"] == pytest.approx(math.exp(3.0))
    assert summary["relative_to_train_length"]["dynamic_ntk"]["8"] == pytest.approx(math.exp(1.6 - 1.5))
    assert summary["relative_to_train_length"]["plain"]["4"] == 1.0
    assert summary["tokens_per_length"] == {"2": 4, "4": 8, "8": 16}
    assert (summary["train_length"], summary["lengths"], summary["documents"]) == (4, [2, 4, 8], 2)
    assert list(summary) == ["train_length", "lengths", "settings", "perplexity", "relative_to_train_length",
                             "documents", "tokens_per_length", "layer_windows"]


def test_markdown_metrics_and_wandb_rows_hold_the_same_numbers(table: PerplexityTable) -> None:
    md = table.markdown().splitlines()
    assert md[0] == "| setting | 2 (0.5L) | 4 (1L) | 8 (2L) |" and len(md) == 4
    assert md[2].startswith("| plain | 7.39 | 4.48 | 20.09")
    assert table.metrics()["ppl/dynamic_ntk/8"] == round(math.exp(1.6), 4)
    columns, rows = table.wandb_table()
    assert columns == ["setting", "2", "4", "8"] and rows[1][0] == "dynamic_ntk"
    assert rows[1][3] == pytest.approx(math.exp(1.6))


def test_cells_are_read_back_by_setting_and_length(tmp_path: Path) -> None:
    path = tmp_path / "cells.jsonl"
    assert read_cells(path) == {}
    append_jsonl(path, _cell("plain", 2, 1.0))
    with open(path, "a") as fh:
        fh.write('{"setting": "plain", "len')  # a line cut short by a killed job
    assert list(read_cells(path)) == [("plain", 2)]


def test_lengths_are_multiples_of_the_training_length() -> None:
    assert context_lengths([0.5, 1, 2, 16, 1.0], 128) == [64, 128, 256, 2048]
    assert context_lengths([0.001], 128) == [2]
