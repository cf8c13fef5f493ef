from __future__ import annotations

import json

from qwen_hpc.utils.io import read_json
from tests.conftest import run_qwen


def test_data_counts_every_document_and_writes_manifest(small_run) -> None:
    out = small_run.stage("data")
    stats = read_json(out / "stats.json")
    assert stats["read"] == stats["kept"] + sum(stats["dropped"].values())
    assert stats["kept"] > 100
    manifest = read_json(out / "manifest.json")
    assert {s["name"] for s in manifest["sources"]} >= {"prose", "code"}
    kept = 0
    for source in manifest["sources"]:
        for shard in source["shards"]:
            lines = (out / shard).read_text().splitlines()
            kept += len(lines)
            assert all(json.loads(line)[manifest["text_key"]] for line in lines)
    assert kept == sum(s["documents"] for s in manifest["sources"])
    marker = read_json(out / "_SUCCESS.json")
    assert marker["metrics"]["documents_read"] == stats["read"]
    assert marker["metrics"]["docs_per_s"] > 0
    # every step of Qwen §2.1 ran: the funnel, the dedup, quality-model and decontamination records
    assert [row["step"] for row in stats["funnel"]][:2] == ["read", "readable"]
    assert stats["funnel"][-1]["remaining"] == stats["kept"]
    assert (out / "funnel.png").read_bytes().startswith(b"\x89PNG")
    assert stats["filters"]["dedup"]["num_perm"] == 128 and stats["filters"]["language"]["seen"] > 0
    quality = stats["quality_model"]  # issue 12.6: positives held apart, a probability threshold, recorded
    assert quality["threshold"] == 0.5 and quality["positives"] == {"embedded_prose_slice": 0.2}
    assert marker["metrics"]["quality_model/heldout_roc_auc"] == quality["heldout_roc_auc"]
    assert stats["dropped"].get("quality_model", 0) <= 0.05 * stats["read"]  # clean documentation stays
    assert stats["decontamination"]["n"] == 13 and "humaneval" in stats["decontamination"]["benchmarks"]
    assert stats["kept"] >= 0.8 * stats["read"]  # the defaults keep the embedded corpus mostly intact
    assert {s["name"]: s["kind"] for s in manifest["sources"]} == {"prose": "text", "code": "code"}
    assert marker["lineage"] and marker["config_hash"] and "torch" in marker["versions"]


def test_rerun_with_same_config_does_nothing(small_run) -> None:
    out = small_run.stage("data")
    before = (out / "_SUCCESS.json").stat().st_mtime_ns
    proc = run_qwen(["data", *small_run.args()])
    assert "up to date" in proc.stderr
    assert (out / "_SUCCESS.json").stat().st_mtime_ns == before


def test_changed_config_moves_old_output_aside(tmp_path) -> None:
    args = [f"run.root={tmp_path}", "run.name=x", "launcher=debug", "logger=none",
            "data.embedded_max_docs_per_source=20", "data.embedded_max_chars_per_source=50000"]
    run_qwen(["data", *args])
    first = read_json(tmp_path / "x" / "data" / "_SUCCESS.json")
    run_qwen(["data", *args, "data.min_chars=200"])
    second = read_json(tmp_path / "x" / "data" / "_SUCCESS.json")
    assert first["lineage"] != second["lineage"]
    aside = [p for p in (tmp_path / "x").iterdir() if p.name.startswith("data.superseded-")]
    assert len(aside) == 1 and (aside[0] / "_SUCCESS.json").exists()
    assert second["metrics"]["documents_kept"] <= first["metrics"]["documents_kept"]


def test_report_shows_the_curation_funnel(small_run) -> None:
    page = (small_run.stage("report") / "index.html").read_text()
    assert "data curation funnel" in page
