"""Our Megatron-Core Qwen ↔ Hugging Face `Qwen2ForCausalLM`, as plain state dicts and config dicts.

Qwen v1 (report §2.3; spec §3.3) maps onto HF's Qwen2 architecture exactly: untied embeddings, RoPE over the
full head dimension (rotate-half), bias on Q/K/V only, pre-RMSNorm, SwiGLU. Three layouts differ:

- QKV. Megatron's `linear_qkv` holds, per query group g, the rows [q heads of g; k_g; v_g] one after another
  (`[ng, (np/ng + 2)·d, h]`); Qwen v1's `c_attn` is [Q; K; V] whole; HF Qwen2 has separate q/k/v projections.
- MLP. Megatron's fused `linear_fc1` is [gate; up] (the first half goes through SiLU). Qwen v1 names the
  gate `w2` and the up projection `w1` (spec §3.3), HF Qwen2 names them `gate_proj` / `up_proj`.
- Names: `decoder.layers.i.self_attention.linear_proj` = `model.layers.i.self_attn.o_proj`, etc.

Everything here works on unsharded (TP=1, PP=1) tensors; `qwen_hpc.interop.hf_checkpoint` reshards a
checkpoint of any layout into that form through `dist_checkpointing`. No copies are made beyond the
concatenations the layouts need, and the two directions are exact inverses (bit-identical round trip).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

import torch

from qwen_hpc.model.config import ModelConfig
from qwen_hpc.model.long_context import LongContextConfig

HF_ARCHITECTURE = "Qwen2ForCausalLM"
HF_MODEL_TYPE = "qwen2"

_LAYER_NORMS = {
    "input_layernorm.weight": "input_layernorm.weight",
    "pre_mlp_layernorm.weight": "post_attention_layernorm.weight",
}


def _check_heads(cfg: ModelConfig) -> None:
    if cfg.head_dim * cfg.num_attention_heads != cfg.hidden_size:
        raise ValueError(
            f"HF Qwen2 needs head_dim × heads = hidden_size; model.kv_channels={cfg.head_dim} × "
            f"{cfg.num_attention_heads} != {cfg.hidden_size}"
        )


def split_qkv(weight: torch.Tensor, n_heads: int, n_groups: int, head_dim: int) -> tuple[torch.Tensor, ...]:
    """Megatron's interleaved `linear_qkv` rows (weight or bias) → (q, k, v) in head order."""
    per = n_heads // n_groups
    grouped = weight.reshape(n_groups, (per + 2) * head_dim, *weight.shape[1:])
    q, k, v = torch.split(grouped, [per * head_dim, head_dim, head_dim], dim=1)
    rest = weight.shape[1:]
    return q.reshape(-1, *rest), k.reshape(-1, *rest), v.reshape(-1, *rest)


def merge_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, n_heads: int, n_groups: int) -> torch.Tensor:
    """(q, k, v) in head order → Megatron's per-group interleaved `linear_qkv` rows."""
    head_dim = k.shape[0] // n_groups
    rest = q.shape[1:]
    per = n_heads // n_groups
    groups = torch.cat(
        [
            q.reshape(n_groups, per * head_dim, *rest),
            k.reshape(n_groups, head_dim, *rest),
            v.reshape(n_groups, head_dim, *rest),
        ],
        dim=1,
    )
    return groups.reshape(-1, *rest).contiguous()


def megatron_to_hf(state: Mapping[str, Any], cfg: ModelConfig) -> dict[str, torch.Tensor]:
    """An unsharded GPTModel state dict (Qwen layout) → HF Qwen2ForCausalLM tensor names and layouts."""
    _check_heads(cfg)
    n, d = cfg.num_attention_heads, cfg.head_dim
    out: dict[str, torch.Tensor] = {
        "model.embed_tokens.weight": state["embedding.word_embeddings.weight"],
        "model.norm.weight": state["decoder.final_layernorm.weight"],
        "lm_head.weight": state["output_layer.weight"],
    }
    for i in range(cfg.num_layers):
        src, dst = f"decoder.layers.{i}.", f"model.layers.{i}."
        for ours, theirs in _LAYER_NORMS.items():
            out[dst + theirs] = state[src + ours]
        for kind in ("weight", "bias"):
            q, k, v = split_qkv(state[f"{src}self_attention.linear_qkv.{kind}"], n, n, d)
            for name, tensor in zip("qkv", (q, k, v), strict=True):
                out[f"{dst}self_attn.{name}_proj.{kind}"] = tensor.contiguous()
        out[dst + "self_attn.o_proj.weight"] = state[src + "self_attention.linear_proj.weight"]
        gate, up = torch.chunk(state[src + "mlp.linear_fc1.weight"], 2, dim=0)
        out[dst + "mlp.gate_proj.weight"] = gate.contiguous()
        out[dst + "mlp.up_proj.weight"] = up.contiguous()
        out[dst + "mlp.down_proj.weight"] = state[src + "mlp.linear_fc2.weight"]
    return out


def hf_to_megatron(state: Mapping[str, torch.Tensor], cfg: ModelConfig) -> dict[str, torch.Tensor]:
    """HF Qwen2ForCausalLM tensors → an unsharded GPTModel state dict (without Megatron's `_extra_state`)."""
    _check_heads(cfg)
    n = cfg.num_attention_heads
    out: dict[str, torch.Tensor] = {
        "embedding.word_embeddings.weight": state["model.embed_tokens.weight"],
        "decoder.final_layernorm.weight": state["model.norm.weight"],
        "output_layer.weight": state["lm_head.weight"],
    }
    for i in range(cfg.num_layers):
        src, dst = f"model.layers.{i}.", f"decoder.layers.{i}."
        for ours, theirs in _LAYER_NORMS.items():
            out[dst + ours] = state[src + theirs]
        for kind in ("weight", "bias"):
            q, k, v = (state[f"{src}self_attn.{name}_proj.{kind}"] for name in "qkv")
            out[f"{dst}self_attention.linear_qkv.{kind}"] = merge_qkv(q, k, v, n, n)
        out[dst + "self_attention.linear_proj.weight"] = state[src + "self_attn.o_proj.weight"]
        out[dst + "mlp.linear_fc1.weight"] = torch.cat(
            [state[src + "mlp.gate_proj.weight"], state[src + "mlp.up_proj.weight"]], dim=0
        )
        out[dst + "mlp.linear_fc2.weight"] = state[src + "mlp.down_proj.weight"]
    return out


def hf_config(
    cfg: ModelConfig, vocab_rows: int, *, eod_id: int, im_end_id: int, dtype: str = "float32"
) -> dict[str, Any]:
    """`config.json` of the exported model (Qwen2 keys; `intermediate_size` is one SwiGLU branch)."""
    _check_heads(cfg)
    return {
        "architectures": [HF_ARCHITECTURE],
        "model_type": HF_MODEL_TYPE,
        "vocab_size": vocab_rows,
        "hidden_size": cfg.hidden_size,
        "intermediate_size": cfg.ffn_hidden_size,
        "num_hidden_layers": cfg.num_layers,
        "num_attention_heads": cfg.num_attention_heads,
        "num_key_value_heads": cfg.num_attention_heads,  # full MHA (spec §3.2)
        "hidden_act": "silu",
        "max_position_embeddings": cfg.seq_length,
        "initializer_range": cfg.init_method_std,
        "rms_norm_eps": cfg.layernorm_epsilon,
        "rope_theta": cfg.rotary_base,
        "rope_parameters": {"rope_type": "default", "rope_theta": cfg.rotary_base},
        "tie_word_embeddings": False,
        "use_cache": True,
        "use_sliding_window": False,
        "sliding_window": None,
        "max_window_layers": cfg.num_layers,
        "attention_dropout": cfg.attention_dropout,
        "bos_token_id": None,
        "eos_token_id": eod_id,
        "pad_token_id": eod_id,
        "torch_dtype": dtype,
        # the Qwen v1 names of the long-context switches, and our full settings (windows) for import
        "use_dynamic_ntk": cfg.long_context.use_dynamic_ntk,
        "use_logn_attn": cfg.long_context.use_logn_attn,
        "qwen_hpc": {
            "model_name": cfg.name,
            "im_end_id": im_end_id,
            "long_context": asdict(cfg.long_context),
        },
    }


def model_config_from_hf(config: Mapping[str, Any], name: str = "imported") -> ModelConfig:
    """The `ModelConfig` of an HF Qwen2 `config.json` (full MHA, untied, no sliding window)."""
    heads = int(config["num_attention_heads"])
    if int(config.get("num_key_value_heads") or heads) != heads:
        raise ValueError(
            "grouped-query attention (num_key_value_heads != num_attention_heads) is not Qwen v1"
        )
    if config.get("tie_word_embeddings", False):
        raise ValueError("tied embeddings are not the Qwen layout (report §2.3: untied)")
    if config.get("use_sliding_window", False):
        raise ValueError("sliding-window attention is not supported")
    rope = config.get("rope_parameters") or {}
    theta = rope.get("rope_theta", config.get("rope_theta", 10000.0))
    hidden = int(config["hidden_size"])
    head_dim = config.get("head_dim")
    return ModelConfig(
        name=name,
        num_layers=int(config["num_hidden_layers"]),
        hidden_size=hidden,
        num_attention_heads=heads,
        kv_channels=None if head_dim in (None, hidden // heads) else int(head_dim),
        ffn_hidden_size=int(config["intermediate_size"]),
        seq_length=int(config.get("max_position_embeddings", 2048)),
        rotary_base=float(theta),
        layernorm_epsilon=float(config.get("rms_norm_eps", 1e-6)),
        init_method_std=float(config.get("initializer_range", 0.02)),
        attention_dropout=float(config.get("attention_dropout", 0.0)),
        long_context=_long_context_from_hf(config),
    )


def _long_context_from_hf(config: Mapping[str, Any]) -> LongContextConfig:
    """Our exported settings when present, else the Qwen v1 switches (`use_dynamic_ntk`, `use_logn_attn`)."""
    ours = (config.get("qwen_hpc") or {}).get("long_context")
    if ours:
        return LongContextConfig(**ours)
    return LongContextConfig(
        use_dynamic_ntk=bool(config.get("use_dynamic_ntk", False)),
        use_logn_attn=bool(config.get("use_logn_attn", False)),
    )


def qwen2_config(cfg: ModelConfig, vocab_rows: int, **overrides: Any) -> Any:
    """A `transformers.Qwen2Config` with the shapes of `cfg` (the keys of `hf_config`, no special-token
    ids), `overrides` on top: what tests and benchmarks build random HF models from."""
    from transformers import Qwen2Config

    keys = hf_config(cfg, vocab_rows, eod_id=0, im_end_id=0)
    for key in ("architectures", "model_type", "qwen_hpc", "torch_dtype", "eos_token_id", "pad_token_id"):
        keys.pop(key)
    return Qwen2Config(**{**keys, **overrides})


def generation_config(eod_id: int, im_end_id: int, im_start_id: int, max_new_tokens: int = 512) -> dict:
    """Qwen-Chat's released generation defaults (spec §13): stop on <|im_end|>/<|im_start|>/<|endoftext|>."""
    return {
        "bos_token_id": None,
        "eos_token_id": [im_end_id, im_start_id, eod_id],
        "pad_token_id": eod_id,
        "do_sample": True,
        "top_k": 0,
        "top_p": 0.8,
        "repetition_penalty": 1.0,
        "max_new_tokens": max_new_tokens,
    }
