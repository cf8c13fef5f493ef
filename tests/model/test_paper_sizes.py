"""The five model configs: the paper's sizes have exactly spec §3.2's parameter counts, counted on the built
Megatron model (meta device) and by formula, and `qwen-hpc describe` prints them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from megatron.core import parallel_state as ps
from omegaconf import OmegaConf

from qwen_hpc.compat.megatron_cpu import model_parallel_seed
from qwen_hpc.launch.distributed import ensure_process_group
from qwen_hpc.model.builder import build_model, padded_vocab_size
from qwen_hpc.model.config import ModelConfig
from qwen_hpc.model.describe import count_built_parameters, describe_model
from tests.conftest import run_qwen

CONFIG = Path(__file__).resolve().parents[2] / "config" / "model"

# spec §3.2: (layers, hidden, heads, ffn branch, embedding rows, rope base, total, non-embedding)
SPEC = {
    "qwen_1_8b": (24, 2048, 16, 5504, 151936, 1e4, "1.837B", "1.214B"),
    "qwen_7b": (32, 4096, 32, 11008, 151936, 1e4, "7.721B", "6.477B"),
    "qwen_14b": (40, 5120, 40, 13696, 152064, 1e4, "14.167B", "12.610B"),
    "qwen_72b": (80, 8192, 64, 24576, 152064, 1e6, "72.288B", "69.797B"),
}


def model_config(name: str) -> ModelConfig:
    return ModelConfig(**OmegaConf.to_container(OmegaConf.load(CONFIG / f"{name}.yaml")))


def test_every_config_is_listed() -> None:
    assert sorted(p.stem for p in CONFIG.glob("*.yaml")) == sorted(["tiny", *SPEC])


@pytest.mark.parametrize("name", sorted(SPEC))
def test_paper_sizes_match_the_spec(name: str) -> None:
    layers, hidden, heads, ffn, rows, base, total, non_embedding = SPEC[name]
    cfg = model_config(name)
    assert (cfg.num_layers, cfg.hidden_size, cfg.num_attention_heads, cfg.ffn_hidden_size) == (
        layers,
        hidden,
        heads,
        ffn,
    )
    assert (cfg.head_dim, cfg.layernorm_epsilon, cfg.rotary_base, cfg.seq_length) == (128, 1e-6, base, 2048)
    described = describe_model(cfg)  # raises if the built model and the formula disagree
    assert described["embedding_rows"] == rows == padded_vocab_size(151851, cfg)
    assert (described["total"], described["non_embedding"]) == (total, non_embedding)
    assert described["total_parameters"] - described["non_embedding_parameters"] == 2 * rows * hidden


def test_tiny_meta_count_equals_a_really_built_model() -> None:
    """The meta-device count is the count of a materialised, initialised model (on the CPU)."""
    cfg = model_config("tiny")
    rows = padded_vocab_size(1000, cfg)
    ensure_process_group("gloo")
    ps.initialize_model_parallel(1, 1)
    try:
        model_parallel_seed(1)
        real = build_model(cfg, rows)
        assert all(p.device.type == "cpu" for p in real.parameters())
        n_real = sum(p.numel() for p in real.parameters())
    finally:
        ps.destroy_model_parallel()
    assert count_built_parameters(cfg, rows)["total"] == n_real == cfg.num_parameters(rows)


def test_fixed_embedding_rows() -> None:
    cfg = model_config("qwen_14b")
    assert padded_vocab_size(1000, cfg, tp=8) == 152064  # the config fixes the rows, whatever the tokenizer
    with pytest.raises(ValueError, match="more than model.padded_vocab_size=152064"):
        padded_vocab_size(152065, cfg)
    with pytest.raises(ValueError, match="divisible by the tensor-parallel size 5"):
        padded_vocab_size(1000, cfg, tp=5)
    with pytest.raises(ValueError, match="model.padded_vocab_size"):
        ModelConfig(padded_vocab_size=0)


def test_dropout_is_optional_and_reaches_megatron() -> None:
    from qwen_hpc.model.builder import transformer_config

    config = transformer_config(ModelConfig(hidden_dropout=0.1, attention_dropout=0.1))
    assert (config.hidden_dropout, config.attention_dropout) == (0.1, 0.1)
    assert transformer_config(model_config("qwen_7b")).hidden_dropout == 0.0


def test_describe_cli_prints_json() -> None:
    proc = run_qwen(["describe", "model=qwen_1_8b"])
    described = json.loads(proc.stdout)
    assert described["name"] == "qwen_1_8b"
    assert described["total_parameters"] == 1_836_828_672 and described["total"] == "1.837B"
    assert described["non_embedding_parameters"] == 1_214_498_816  # total - 2 x 151,936 x 2048
