"""The typed readers of stage outputs (`qwen_hpc.outputs`) and the outputs a marker records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qwen_hpc import outputs
from qwen_hpc.stages.base import write_marker


def test_read_blend_makes_prefixes_absolute_and_skips_empty_sources(tmp_path: Path) -> None:
    blend = {
        "sources": [
            {"name": "web", "prefix": "web", "tokens": 30, "documents": 3, "upsample": 1.0, "weight": 0.75},
            {"name": "code", "prefix": "code", "tokens": 10, "documents": 1, "upsample": 1.0, "weight": 0.25},
            {"name": "none", "prefix": "none", "tokens": 0, "documents": 0, "upsample": 1.0, "weight": 0.0},
        ],
        "eod_id": 768,
        "n_vocab": 976,
    }
    (tmp_path / outputs.BLEND).write_text(json.dumps(blend))
    read = outputs.read_blend(tmp_path)
    assert read.pairs == [(str(tmp_path / "web"), 0.75), (str(tmp_path / "code"), 0.25)]
    assert (read.eod_id, read.n_vocab, len(read.sources)) == (768, 976, 3)


def test_missing_outputs_name_the_file_and_the_stage(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"blend\.json does not exist \(run the tokens stage\)"):
        outputs.read_blend(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"manifest\.json does not exist \(run the data stage\)"):
        outputs.read_manifest(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"tok\.tiktoken does not exist \(run the tokenizer stage\)"):
        outputs.tokenizer_files(tmp_path, "tok")
    with pytest.raises(FileNotFoundError, match="has not finished"):
        outputs.read_marker(tmp_path)


def test_marker_records_outputs_relative_to_the_stage_folder(tmp_path: Path) -> None:
    stage = tmp_path / "tokens"
    stage.mkdir()
    elsewhere = tmp_path / "export" / "hf"
    write_marker(
        stage / outputs.MARKER,
        stage="tokens",
        experiment="x",
        cfg_hash="h",
        inputs={},
        metrics={"tokens": 3},
        started_at=0.0,
        outputs={"blend": str(stage / outputs.BLEND), "hf": str(elsewhere)},
    )
    marker = outputs.read_marker(stage)
    assert marker.outputs == {"blend": outputs.BLEND, "hf": str(elsewhere)}
    assert marker.output(stage, "blend") == stage / outputs.BLEND
    assert marker.output(stage, "hf") == elsewhere
    assert marker.metrics == {"tokens": 3} and marker.stage == "tokens"
    with pytest.raises(KeyError, match="recorded no output 'checkpoint'"):
        marker.output(stage, "checkpoint")


def test_read_metrics_skips_a_line_cut_by_a_killed_job(tmp_path: Path) -> None:
    (tmp_path / outputs.METRICS).write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "lo')
    assert outputs.read_metrics(tmp_path) == [{"step": 1, "loss": 2.0}]
    assert outputs.read_metrics(tmp_path / "absent") == []


def test_read_metrics_keeps_the_resumed_jobs_record_of_a_step_logged_twice(tmp_path: Path) -> None:
    """Killed at step 3 after a checkpoint at step 1: the resumed job logs steps 2 and 3 again."""
    lines = [{"step": 1, "loss": 4.0, "time": 1}, {"step": 1, "val_loss": 4.5, "time": 1},
             {"step": 2, "loss": 3.0, "time": 2}, {"step": 3, "loss": 2.5, "time": 3},
             {"table": "t", "rows": []},
             {"step": 2, "loss": 3.0, "time": 9}, {"step": 3, "loss": 2.5, "time": 10}, {"step": 4, "loss": 2.0, "time": 11}]
    (tmp_path / outputs.METRICS).write_text("".join(json.dumps(r) + "\n" for r in lines))
    got = outputs.read_metrics(tmp_path)
    assert [(r.get("step"), r.get("time")) for r in got] == [(1, 1), (1, 1), (None, None), (2, 9), (3, 10), (4, 11)]
    assert got[1] == {"step": 1, "val_loss": 4.5, "time": 1}  # another record of step 1 with other keys stays
    assert len((tmp_path / outputs.METRICS).read_text().splitlines()) == len(lines)  # the file is not rewritten
