"""MMLU predictions of an exported tiny model agree with lm-evaluation-harness on the same weights and the
same prompts (a local lm-eval task over our rendered prompts)."""

from __future__ import annotations

import pytest

from qwen_hpc.evaluation import harness
from qwen_hpc.evaluation.multiple_choice import Mmlu
from tests.inference.helpers import hf_model, tiny_tokenizer

QUESTIONS = 120


def test_mmlu_predictions_agree_with_lm_eval(bench_root, tmp_path) -> None:
    pytest.importorskip("lm_eval", reason="lm-eval not installed (pip install -e '.[test]')")
    from qwen_hpc.interop.hf_checkpoint import model_from_state, single_process_megatron, write_hf_folder
    from qwen_hpc.model.hf_convert import hf_to_megatron, model_config_from_hf

    tokenizer = tiny_tokenizer()
    hf = hf_model(seed=5, init=0.2)
    cfg = model_config_from_hf(hf.config.to_dict())
    task = Mmlu(limit=QUESTIONS, max_length=cfg.seq_length)
    samples = task.samples(bench_root, tokenizer)
    letters = [c.strip() for c in task.choices]
    with single_process_megatron():
        state = hf_to_megatron(hf.state_dict(), cfg)
        write_hf_folder(tmp_path / "hf", cfg, state, tokenizer)
        model = model_from_state(cfg, state)
        ours, _ = harness.our_predictions(model, tokenizer, samples, task.choices, batch_size=8,
                                          max_length=cfg.seq_length)
    harness.write_task(tmp_path / "task", samples, task.choices, "qwen_hpc_mmlu_test")
    theirs, _ = harness.lm_eval_predictions(tmp_path / "hf", tmp_path / "task", "qwen_hpc_mmlu_test", letters,
                                            batch_size=8, max_length=cfg.seq_length - 1)
    result = harness.agreement(ours, theirs, [s.gold for s in samples])
    assert result["identical"] >= 0.99, result
    assert abs(result["accuracy_ours"] - result["accuracy_lm_eval"]) <= 1 / QUESTIONS, result
    assert len(set(ours)) > 1, "a random model that always says the same letter tests nothing"
