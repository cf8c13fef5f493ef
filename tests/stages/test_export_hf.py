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


def test_import_then_export_a_random_qwen2_on_their_own(tmp_path) -> None:
    """Issue 12 item 2, CLI only: a Qwen2 of other dimensions than `tiny` → import-hf → export-hf gives back
    the same logits; export-hf reads dimensions and tokenizer from the imported folder, not from any stage."""
    from qwen_hpc.interop.hf_tokenizer import tokenizer_files
    from tests.inference.helpers import hf_model, tiny_tokenizer

    original = hf_model(seed=3)
    assert original.config.hidden_size != 128  # not the `tiny` model the run's config describes
    hf_dir = tmp_path / "hf_in"
    original.save_pretrained(hf_dir)
    for name, text in tokenizer_files(tiny_tokenizer(), model_max_length=128).items():
        (hf_dir / name).write_text(text, encoding="utf-8")
    run = [f"run.root={tmp_path / 'runs'}", "run.name=alone", "launcher=debug", "logger=none"]
    imported, exported = tmp_path / "imported", tmp_path / "hf_out"
    run_qwen(["import-hf", *run, f"hf_path={hf_dir}", f"output={imported}"])
    run_qwen(["export-hf", *run, f"checkpoint={imported}", f"output={exported}"])
    assert not (tmp_path / "runs" / "alone" / "pretrain").exists()
    back = transformers.AutoModelForCausalLM.from_pretrained(exported, dtype=torch.float32).eval()
    ids = torch.tensor([[5, 17, 300, 42, 7, 801, 99, 3, 250, 64, 12, 600]])
    with torch.no_grad():
        assert (back(ids).logits - original(ids).logits).abs().max().item() <= 1e-4
    tok = transformers.AutoTokenizer.from_pretrained(exported)
    text = "def main():\n    return 1 + 2\n"
    assert tok.encode(text, add_special_tokens=False) == tiny_tokenizer().encode(text)
    # an iter_* folder names the same checkpoint folder; an explicit tokenizer= wins over the folder's
    again = tmp_path / "hf_again"
    run_qwen(["export-hf", *run, f"checkpoint={imported / 'checkpoints' / 'iter_0000000'}", f"output={again}",
              f"tokenizer={hf_dir}"])
    assert (again / "model.safetensors").read_bytes() == (exported / "model.safetensors").read_bytes()


def test_export_hf_names_what_is_missing(tmp_path) -> None:
    (tmp_path / "bare").mkdir()
    proc = run_qwen(["export-hf", f"run.root={tmp_path}", "launcher=debug", "logger=none",
                     f"checkpoint={tmp_path / 'bare'}"], check=False)
    assert proc.returncode != 0 and "model_config.json" in proc.stderr
