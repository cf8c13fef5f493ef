from __future__ import annotations

import math

from qwen_hpc.utils.io import read_json


def test_evaluate_stage_reports_validation_perplexity(small_run) -> None:
    out = small_run.stage("evaluate")
    scores = read_json(out / "perplexity.json")
    assert math.isfinite(scores["loss"]) and scores["tokens"] > 0
    assert math.isclose(scores["perplexity"], math.exp(scores["loss"]), rel_tol=1e-6)
    vocab = read_json(small_run.run_dir / "tokens" / "blend.json")["n_vocab"]
    assert scores["perplexity"] < vocab, "a trained model must beat the uniform distribution"
    assert scores["iteration"] == 60
