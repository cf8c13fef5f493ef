"""ModelConfig: defaults are the tiny model, bad values fail naming the field, OmegaConf can structure it."""

from __future__ import annotations

import pytest

from qwen_hpc.model.config import ModelConfig


def test_defaults_are_the_tiny_model() -> None:
    cfg = ModelConfig()
    assert (cfg.name, cfg.num_layers, cfg.hidden_size, cfg.num_attention_heads) == ("tiny", 2, 128, 4)
    assert cfg.head_dim == 32 and cfg.layernorm_epsilon == 1e-6 and cfg.rotary_base == 10000.0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"hidden_size": 100, "num_attention_heads": 3},
            "model.hidden_size=100 must be divisible by model.num_attention_heads=3",
        ),
        ({"num_layers": 0}, "model.num_layers=0"),
        ({"ffn_hidden_size": -4}, "model.ffn_hidden_size=-4"),
        ({"kv_channels": 0}, "model.kv_channels=0"),
        ({"kv_channels": 33}, "model.kv_channels=33"),
        ({"layernorm_epsilon": 0.0}, "model.layernorm_epsilon=0.0"),
        ({"hidden_dropout": 1.0}, "model.hidden_dropout=1.0"),
        ({"rotary_base": -1.0}, "model.rotary_base=-1.0"),
        ({"name": ""}, "model.name"),
    ],
)
def test_invalid_values_name_the_field(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace(".", r"\.").replace("(", r"\(")):
        ModelConfig(**overrides)


def test_explicit_head_dim_lifts_the_divisibility_rule() -> None:
    cfg = ModelConfig(hidden_size=96, num_attention_heads=4, kv_channels=32)
    assert cfg.head_dim == 32


def test_parameter_count_of_qwen_7b_matches_the_spec() -> None:
    # spec §3.2: Qwen-7B has 7.721B parameters with 151936 embedding rows
    cfg = ModelConfig(
        name="7b",
        num_layers=32,
        hidden_size=4096,
        num_attention_heads=32,
        ffn_hidden_size=11008,
        seq_length=2048,
    )
    assert round(cfg.num_parameters(151936) / 1e9, 3) == 7.721


def test_omegaconf_structured_config_roundtrip() -> None:
    omegaconf = pytest.importorskip("omegaconf")
    schema = omegaconf.OmegaConf.structured(ModelConfig)
    merged = omegaconf.OmegaConf.merge(schema, {"num_layers": 3, "kv_channels": 32})
    cfg = omegaconf.OmegaConf.to_object(merged)
    assert isinstance(cfg, ModelConfig) and cfg.num_layers == 3 and cfg.kv_channels == 32
    with pytest.raises(ValueError, match="model.num_attention_heads"):
        omegaconf.OmegaConf.to_object(omegaconf.OmegaConf.merge(schema, {"num_attention_heads": 5}))
