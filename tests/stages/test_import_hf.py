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


def test_pretrain_starts_from_an_imported_model(small_run, tmp_path) -> None:
    """`pretrain.init_checkpoint=<import_hf folder>`: weights only, fresh optimizer and schedule. The loss of
    the first step (taken before its update) is the imported HF model's loss on that same batch."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from qwen_hpc.config.compose import load
    from qwen_hpc.interop.hf_checkpoint import single_process_megatron
    from qwen_hpc.model.builder import padded_vocab_size
    from qwen_hpc.model.config import ModelConfig
    from qwen_hpc.outputs import read_blend
    from qwen_hpc.training.data import MicroBatchIterator, build_datasets

    small_run.stage("tokens")
    tokens = read_blend(small_run.run_dir / "tokens")
    blend, eod_id, n_vocab = tokens.pairs, tokens.eod_id, tokens.n_vocab
    tiny = ModelConfig()
    torch.manual_seed(0)
    hf = Qwen2ForCausalLM(Qwen2Config(
        vocab_size=padded_vocab_size(n_vocab, tiny), hidden_size=tiny.hidden_size,
        intermediate_size=tiny.ffn_hidden_size, num_hidden_layers=tiny.num_layers,
        num_attention_heads=tiny.num_attention_heads, num_key_value_heads=tiny.num_attention_heads,
        max_position_embeddings=tiny.seq_length, rms_norm_eps=tiny.layernorm_epsilon, tie_word_embeddings=False,
        initializer_range=0.2,  # far from a fresh init (std 0.02): only the imported weights give this loss
    )).eval()
    hf.save_pretrained(tmp_path / "hf")
    run_root = tmp_path / "runs"
    (run_root / "init").mkdir(parents=True)
    for stage in ("tokenizer", "tokens"):  # this run shares the small run's tokenized data
        (run_root / "init" / stage).symlink_to(small_run.run_dir / stage)
    imported = tmp_path / "imported"
    run_qwen(["import-hf", f"run.root={run_root}", "run.name=init", "launcher=debug", "logger=none",
              f"hf_path={tmp_path / 'hf'}", f"output={imported}"])
    args = [a for a in small_run.args() if not a.startswith(("run.root=", "run.name=", "pretrain."))]
    args += [f"run.root={run_root}", "run.name=init", "logger=none", "pretrain.train.train_iters=2",
             "pretrain.train.eval_interval=0", "pretrain.train.save_interval=0", "pretrain.train.eval_iters=1",
             "pretrain.optimizer.warmup_iters=1", f"pretrain.init_checkpoint={imported}"]
    run_qwen(["pretrain", *args])
    marker = read_json(run_root / "init" / "pretrain" / "_SUCCESS.json")
    assert marker["metrics"]["iteration"] == 2

    _, typed = load(args)
    with single_process_megatron():
        train_ds, _ = build_datasets(typed.model, typed.pretrain.train, blend, eod_id=eod_id, n_vocab=n_vocab,
                                     cache_dir=run_root / "init" / "pretrain" / "index_cache")
        batch = next(MicroBatchIterator(train_ds, micro_batch_size=typed.pretrain.train.global_batch_size))
    with torch.no_grad():
        logits = hf(batch["tokens"], position_ids=batch["position_ids"]).logits
    per_token = torch.nn.functional.cross_entropy(logits.flatten(0, 1), batch["labels"].flatten(), reduction="none")
    mask = batch["loss_mask"].flatten().float()
    expected = (per_token * mask).sum().item() / mask.sum().item()
    assert marker["metrics"]["first_loss"] == pytest.approx(expected, abs=1e-4)
    # the run's folder describes itself (model_config.json + tokenizer/), like the imported one
    assert (run_root / "init" / "pretrain" / "model_config.json").is_file()
    assert list((run_root / "init" / "pretrain" / "tokenizer").glob("*.tiktoken"))


def test_init_checkpoint_of_other_dimensions_is_refused(small_run, tmp_path) -> None:
    from qwen_hpc.interop.hf_tokenizer import tokenizer_files
    from tests.inference.helpers import hf_model, tiny_tokenizer

    small_run.stage("tokens")
    hf_model().save_pretrained(tmp_path / "hf")  # hidden 64, not tiny's 128
    for name, text in tokenizer_files(tiny_tokenizer(), model_max_length=128).items():
        (tmp_path / "hf" / name).write_text(text, encoding="utf-8")
    run_qwen(["import-hf", *small_run.args(), f"hf_path={tmp_path / 'hf'}", f"output={tmp_path / 'imp'}"])
    run_root = tmp_path / "runs"
    (run_root / "other").mkdir(parents=True)
    for stage in ("tokenizer", "tokens"):
        (run_root / "other" / stage).symlink_to(small_run.run_dir / stage)
    args = [a for a in small_run.args() if not a.startswith(("run.root=", "run.name="))]
    proc = run_qwen(["pretrain", *args, f"run.root={run_root}", "run.name=other", "logger=none",
                     f"pretrain.init_checkpoint={tmp_path / 'imp'}"], check=False)
    assert proc.returncode != 0
    assert "hidden_size 64 (checkpoint) != 128 (model)" in proc.stdout + proc.stderr
