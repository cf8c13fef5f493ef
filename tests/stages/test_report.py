from __future__ import annotations

from qwen_hpc.utils.io import read_json


def test_report_embeds_the_loss_plot_and_every_stage(small_run) -> None:
    out = small_run.stage("report")
    page = (out / "index.html").read_text()
    assert "data:image/png;base64," in page
    for stage in ("data", "tokenizer", "tokens", "pretrain", "evaluate", "long_context", "sft"):
        assert f"<td>{stage}</td>" in page
    assert "perplexity vs context length" in page and "SFT loss" in page
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert read_json(out / "_SUCCESS.json")["metrics"]["train_points"] == 60
