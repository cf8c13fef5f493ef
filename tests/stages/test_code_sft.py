"""Stage `code_sft` (Code-Qwen-Chat, spec §10) through the CLI: the sft stage's code under its own section and
run folder, starting from the code_pretrain model with a constant LR after warmup."""

from __future__ import annotations

from qwen_hpc.report.html import read_jsonl
from qwen_hpc.utils.io import read_json


def test_code_sft_fine_tunes_the_code_model(small_run) -> None:
    out = small_run.stage("code_sft")
    marker = read_json(out / "_SUCCESS.json")
    metrics = marker["metrics"]
    assert marker["stage"] == "code_sft" and marker["inputs"].keys() == {"tokenizer", "code_pretrain"}
    assert metrics["iteration"] == 4 and metrics["init_checkpoint"].endswith("code_pretrain/checkpoints")
    stats = read_json(out / "data_stats.json")
    assert stats["sources"]["embedded"]["conversations"] == 100
    lrs = [r["lr"] for r in read_jsonl(out / "metrics.jsonl") if "lr" in r]
    assert len(lrs) == 4 and lrs[1] == lrs[2] == lrs[3]  # tiny: 1 warmup step, then constant
    assert (out / "checkpoints" / "latest").read_text().strip() == "iter_0000004"
    # its own folder describes the Code-Qwen-Chat model (export-hf and chat read it alone): the branch's context
    described = read_json(out / "model_config.json")
    assert described["seq_length"] == read_json(small_run.run_dir / "code_pretrain" / "model_config.json")["seq_length"]
