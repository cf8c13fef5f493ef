"""Stage `agent_eval` through the CLI: the SFT model on the tool-use and code-interpreter sets, scored with
the paper's metrics and tabled beside Tables 6-8."""

from __future__ import annotations

from qwen_hpc.utils.io import read_json
from tests.conftest import run_qwen


def test_agent_eval_command_scores_the_chat_model(small_run) -> None:
    small_run.stage("sft")
    run_qwen(["agent_eval", *small_run.args("agent_eval.tool_cases=4", "agent_eval.code_cases=1",
                                            "agent_eval.max_new_tokens=16", "agent_eval.max_steps=1",
                                            "logger=none")])
    out = small_run.run_dir / "agent_eval"
    marker = read_json(out / "_SUCCESS.json")
    tool = read_json(out / "tool_use.json")
    assert tool["scores"]["positives"] == 4 and tool["scores"]["negatives"] == 1
    assert len(tool["records"]) == 5 and all("output" in r for r in tool["records"])
    code = read_json(out / "code_interpreter.json")
    categories = {r["category"] for r in code["records"]}
    assert {"vis_easy", "vis_hard", "analysis"} <= categories
    assert 0.0 <= code["scores"]["correct_analysis"] <= 100.0
    results = read_json(out / "results.json")
    assert results["scores"] == marker["metrics"]
    assert results["checkpoint"].endswith("sft/checkpoints")
    table = (out / "table.md").read_text()
    assert "| **ours** |" in table and "| Qwen-7B-Chat | 98 | 0.91 | 7.3 |" in table
