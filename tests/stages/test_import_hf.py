from __future__ import annotations

import json

import pytest
import torch

from qwen_hpc.utils.io import read_json
from tests.conftest import run_qwen

transformers = pytest.importorskip("transformers")


def test_import_hf_stage_makes_a_checkpoint_with_the_same_logits(small_run, tmp_path) -> None:
    hf_dir = small_run.run_dir / "export_hf" / "hf"
    if not hf_dir.is_dir():
        small_run.stage("pretrain")
        run_qwen(["export-hf", *small_run.args()])
    out = tmp_path / "imported"
    run_qwen(["import-hf", *small_run.args(), f"hf_path={hf_dir}", f"output={out}", "tp=2"])
    marker = read_json(small_run.run_dir / "import_hf" / "_SUCCESS.json")
    assert marker["metrics"]["tp"] == 2 and marker["metrics"]["vocab_rows"] % 256 == 0  # TP=2 padding
    assert (out / "checkpoints" / "latest").is_file() and (out / "tokenizer" / "tokenizer.tiktoken").is_file()

    from qwen_hpc.interop.hf_checkpoint import load_model, single_process_megatron
    from qwen_hpc.model.config import ModelConfig

    cfg = ModelConfig(**json.loads((out / "model_config.json").read_text()))
    hf = transformers.AutoModelForCausalLM.from_pretrained(hf_dir).eval()
    ids = torch.tensor([[3, 100, 7, 42, 9, 250, 11]])
    with single_process_megatron(), torch.no_grad():
        ours = load_model(out / "checkpoints", cfg)(ids, torch.arange(ids.shape[1])[None], None)
        assert (ours[..., : hf.config.vocab_size] - hf(ids).logits).abs().max().item() <= 1e-4
