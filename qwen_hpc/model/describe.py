"""Parameter counts of a model config, from the built Megatron-Core model (Qwen report Table 1; spec §3.2).

`describe_model` builds the `GPTModel` on PyTorch's meta device (shapes only: no memory, no initialisation,
so the 72B is as quick as the tiny one) and counts its parameters; the closed-form count of
`ModelConfig.num_parameters` is reported next to it and must agree. Spec §3.2's totals — 1.837B / 7.721B /
14.167B / 72.288B — include the untied LM head; "non-embedding" excludes both the input embedding and the
LM head.
"""

from __future__ import annotations

from typing import Any

import torch

from qwen_hpc.model.builder import build_model, padded_vocab_size, transformer_config
from qwen_hpc.model.config import ModelConfig
from qwen_hpc.parallel import model_parallel, world_of_one

_EMBEDDING_PARAMS = ("embedding.word_embeddings.weight", "output_layer.weight")


def count_built_parameters(cfg: ModelConfig, vocab_rows: int) -> dict[str, int]:
    """(total, non-embedding) parameters of the GPTModel built on the meta device, TP = PP = 1."""
    with world_of_one(), model_parallel(1, 1):
        config = transformer_config(cfg)
        config.perform_initialization = False  # meta tensors hold no values to initialise
        with torch.device("meta"):
            model = build_model(cfg, vocab_rows, backend="local", config=config)
        named = dict(model.named_parameters())
    total = sum(p.numel() for p in named.values())
    embedding = sum(named[name].numel() for name in _EMBEDDING_PARAMS)
    return {"total": total, "non_embedding": total - embedding}


def _billions(n: int) -> str:
    return f"{n / 1e9:.3f}B"


def describe_model(cfg: ModelConfig, n_vocab: int | None = None) -> dict[str, Any]:
    """JSON-ready description: dimensions, embedding rows and parameter counts (built and by formula)."""
    n_vocab = n_vocab or cfg.reference_vocab_size
    rows = padded_vocab_size(n_vocab, cfg)
    built = count_built_parameters(cfg, rows)
    formula = {"total": cfg.num_parameters(rows), "non_embedding": cfg.num_non_embedding_parameters()}
    if built != formula:
        raise RuntimeError(f"built model has {built} parameters but the formula gives {formula}")
    return {
        "name": cfg.name,
        "num_layers": cfg.num_layers,
        "hidden_size": cfg.hidden_size,
        "num_attention_heads": cfg.num_attention_heads,
        "head_dim": cfg.head_dim,
        "ffn_hidden_size": cfg.ffn_hidden_size,
        "seq_length": cfg.seq_length,
        "rotary_base": cfg.rotary_base,
        "vocab_size": n_vocab,
        "embedding_rows": rows,
        "total_parameters": built["total"],
        "non_embedding_parameters": built["non_embedding"],
        "total": _billions(built["total"]),
        "non_embedding": _billions(built["non_embedding"]),
        "counted_on": "meta-device GPTModel (TP=PP=1), equal to the closed-form count",
    }
