"""HF Qwen2 ↔ our Megatron-Core Qwen: logits parity both ways, bit-identical round trips, TP=2 checkpoints."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from qwen_hpc.interop.hf_checkpoint import (
    export_checkpoint,
    import_hf,
    load_model,
    single_process_megatron,
    weights,
)
from qwen_hpc.interop.hf_tokenizer import tokenizer_files
from qwen_hpc.model.config import ModelConfig
from qwen_hpc.model.hf_convert import (
    hf_to_megatron,
    megatron_to_hf,
    merge_qkv,
    model_config_from_hf,
    split_qkv,
)
from tests.inference.helpers import hf_model, tiny_tokenizer

transformers = pytest.importorskip("transformers")
BOUND = 1e-4
IDS = torch.tensor(
    [[5, 17, 300, 42, 7, 801, 99, 3, 250, 64, 12, 600], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]]
)


def _ours(model) -> torch.Tensor:
    positions = torch.arange(IDS.shape[1]).expand_as(IDS)
    with torch.no_grad():
        return model(IDS, positions, None).float()


def _hf_logits(path_or_model) -> torch.Tensor:
    model = path_or_model
    if isinstance(path_or_model, Path):
        model = transformers.AutoModelForCausalLM.from_pretrained(path_or_model, dtype=torch.float32).eval()
    with torch.no_grad():
        return model(IDS).logits.float()


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("hf") / "tiny"
    hf_model().save_pretrained(path)
    for name, text in tokenizer_files(tiny_tokenizer(), model_max_length=128).items():
        (path / name).write_text(text, encoding="utf-8")
    return path


def test_qkv_layout_helpers_are_inverse() -> None:
    q, k, v = torch.randn(32, 5), torch.randn(16, 5), torch.randn(16, 5)  # 4 heads, 2 groups, d=8
    assert all(
        torch.equal(a, b)
        for a, b in zip(split_qkv(merge_qkv(q, k, v, 4, 2), 4, 2, 8), (q, k, v), strict=True)
    )


def test_import_matches_transformers_logits(hf_folder: Path, tmp_path: Path) -> None:
    import_hf(hf_folder, tmp_path / "imported")
    cfg = ModelConfig(**json.loads((tmp_path / "imported" / "model_config.json").read_text()))
    with single_process_megatron():
        ours = _ours(load_model(tmp_path / "imported" / "checkpoints", cfg))
    assert (ours - _hf_logits(hf_folder)).abs().max().item() <= BOUND


def test_export_matches_our_logits_and_round_trip_is_bit_identical(hf_folder: Path, tmp_path: Path) -> None:
    import_hf(hf_folder, tmp_path / "a")
    cfg = ModelConfig(**json.loads((tmp_path / "a" / "model_config.json").read_text()))
    with single_process_megatron():
        model = load_model(tmp_path / "a" / "checkpoints", cfg)
        ours, state = _ours(model), weights(model)
    export_checkpoint(tmp_path / "a" / "checkpoints", tmp_path / "hf", cfg, tiny_tokenizer())
    assert (_hf_logits(tmp_path / "hf") - ours).abs().max().item() <= BOUND
    import_hf(tmp_path / "hf", tmp_path / "b")
    with single_process_megatron():
        again = weights(load_model(tmp_path / "b" / "checkpoints", cfg))
    assert state.keys() == again.keys()
    assert all(torch.equal(state[k], again[k]) for k in state)
    # and the HF tensors themselves survive HF -> ours -> HF unchanged
    original = hf_model().state_dict()
    back = megatron_to_hf(hf_to_megatron(original, cfg), cfg)
    assert all(torch.equal(original[k], back[k]) for k in original)


def test_exported_folder_is_plain_qwen2(hf_folder: Path, tmp_path: Path) -> None:
    import_hf(hf_folder, tmp_path / "a")
    cfg = ModelConfig(**json.loads((tmp_path / "a" / "model_config.json").read_text()))
    export_checkpoint(tmp_path / "a" / "checkpoints", tmp_path / "hf", cfg, tiny_tokenizer())
    config = transformers.AutoConfig.from_pretrained(tmp_path / "hf")
    assert type(config).__name__ == "Qwen2Config" and not config.tie_word_embeddings
    gen = transformers.GenerationConfig.from_pretrained(tmp_path / "hf")
    tok = tiny_tokenizer()
    assert tok.im_end_id in gen.eos_token_id and gen.pad_token_id == tok.eod_id
    assert sorted(p.name for p in (tmp_path / "hf").glob("*.safetensors")) == ["model.safetensors"]
    assert model_config_from_hf(config.to_dict()).hidden_size == cfg.hidden_size


# ---------------------------------------------------------------------------------------------- TP = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tp2_worker(rank: int, out_dir: str, port: int) -> None:
    import torch.distributed as dist
    from megatron.core import parallel_state as ps

    from qwen_hpc.compat.megatron_cpu import cpu_shims, model_parallel_seed
    from qwen_hpc.model.builder import build_model, padded_vocab_size
    from qwen_hpc.training.checkpoint import TrainingState, save_checkpoint

    class _NoSchedule:
        def state_dict(self) -> dict:
            return {}

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    with cpu_shims():
        ps.initialize_model_parallel(2, 1)
        model_parallel_seed(1234)
        model = build_model(TP_CFG, padded_vocab_size(tiny_tokenizer().n_vocab, TP_CFG, tp=2), tp=2)
        gen = torch.Generator().manual_seed(7)  # same on both ranks: replicated norms stay equal
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.endswith("bias") or "norm" in name:
                    p.add_(0.1 * torch.randn(p.shape, generator=gen))
            logits = model(IDS, torch.arange(IDS.shape[1]).expand_as(IDS), None, runtime_gather_output=True)
        save_checkpoint(
            Path(out_dir) / "ckpt",
            TrainingState(iteration=3),
            model=model,
            optimizer=None,
            scheduler=_NoSchedule(),
        )
        if rank == 0:
            torch.save(logits.float(), Path(out_dir) / "logits.pt")
        ps.destroy_model_parallel()
    dist.destroy_process_group()


TP_CFG = ModelConfig(name="tp2", num_layers=2, hidden_size=64, num_attention_heads=4, ffn_hidden_size=176)


def test_tp2_checkpoint_exports_with_parity_and_round_trips(tmp_path: Path) -> None:
    mp.spawn(_tp2_worker, args=(str(tmp_path), _free_port()), nprocs=2, join=True)
    reference = torch.load(tmp_path / "logits.pt")
    info = export_checkpoint(tmp_path / "ckpt", tmp_path / "hf", TP_CFG, tiny_tokenizer())
    assert info["vocab_rows"] == 1024  # padded for TP=2: a multiple of 128 x 2
    assert (_hf_logits(tmp_path / "hf") - reference).abs().max().item() <= BOUND
    import_hf(tmp_path / "hf", tmp_path / "imported", tp=2)
    export_checkpoint(tmp_path / "imported" / "checkpoints", tmp_path / "hf2", TP_CFG, tiny_tokenizer())
    from safetensors.torch import load_file

    first, second = (
        load_file(tmp_path / "hf" / "model.safetensors"),
        load_file(tmp_path / "hf2" / "model.safetensors"),
    )
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)
