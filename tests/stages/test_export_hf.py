from __future__ import annotations

import json

import pytest
import torch

from qwen_hpc.utils.io import read_json
from tests.conftest import run_qwen

transformers = pytest.importorskip("transformers")


def test_export_hf_stage_writes_a_qwen2_folder_with_our_logits(small_run) -> None:
    small_run.stage("pretrain")
    run_qwen(["export-hf", *small_run.args()])
    stage = small_run.run_dir / "export_hf"
    marker = read_json(stage / "_SUCCESS.json")
    hf_dir = stage / "hf"
    assert marker["metrics"]["vocab_rows"] >= marker["metrics"]["n_vocab"]
    for name in ("model.safetensors", "config.json", "generation_config.json", "tokenizer.json"):
        assert (hf_dir / name).is_file(), name
    hf = transformers.AutoModelForCausalLM.from_pretrained(hf_dir).eval()
    tok = transformers.AutoTokenizer.from_pretrained(hf_dir)
    ids = torch.tensor([tok.encode("def main():\n    return 1 + 2\n", add_special_tokens=False)])

    from qwen_hpc.interop.hf_checkpoint import load_model, single_process_megatron
    from qwen_hpc.model.config import ModelConfig

    with single_process_megatron(), torch.no_grad():
        ours = load_model(small_run.run_dir / "pretrain" / "checkpoints", ModelConfig())
        logits = ours(ids, torch.arange(ids.shape[1])[None], None)
        assert (hf(ids).logits - logits).abs().max().item() <= 1e-4
    # a second call with the same config does nothing
    proc = run_qwen(["export-hf", *small_run.args()])
    assert "up to date" in proc.stdout + proc.stderr


def test_generate_command_on_the_exported_model(small_run, tmp_path) -> None:
    hf_dir = small_run.run_dir / "export_hf" / "hf"
    if not hf_dir.is_dir():
        small_run.stage("pretrain")
        run_qwen(["export-hf", *small_run.args()])
    out = run_qwen(
        ["generate", f"model={hf_dir}", "prompt=def main():", "max_new_tokens=6", "logprobs=true"]
    ).stdout.strip()
    record = json.loads(out.splitlines()[-1])
    assert 1 <= len(record["token_ids"]) <= 6 and len(record["logprobs"]) == len(record["token_ids"])
