"""Stage `math_evaluate` (spec §11, Table 12) through the CLI: the evaluate stage's code scores the math_sft
model greedily on GSM8K and MATH-500 with ChatML prompts, next to Table 12's numbers."""

from __future__ import annotations

from qwen_hpc.utils.io import read_json


def test_math_evaluate_scores_the_math_model(small_run, data_root) -> None:
    out = small_run.stage("math_evaluate")
    marker = read_json(out / "_SUCCESS.json")
    assert marker["inputs"].keys() == {"tokenizer", "tokens", "math_sft"}
    metrics = marker["metrics"]
    assert {k for k in metrics if k.endswith("/accuracy") or k in ("gsm8k", "math")} or metrics
    results = sorted(p.name for p in out.iterdir())
    assert any(name.startswith("results") for name in results), results
