"""Parameter counts of a model config, from the built Megatron-Core model (Qwen report Table 1; spec §3.2).

`describe_model` builds the `GPTModel` on PyTorch's meta device (shapes only: no memory, no initialisation,
so the 72B is as quick as the tiny one) and counts its parameters; the closed-form count of
`ModelConfig.num_parameters` is reported next to it and must agree. Spec §3.2's totals — 1.837B / 7.721B /
14.167B / 72.288B — include the untied LM head; "non-embedding" excludes both the input embedding and the
LM head.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as dist
from megatron.core import parallel_state as ps

from qwen_hpc.model.builder import build_model, padded_vocab_size, transformer_config
from qwen_hpc.model.config import ModelConfig

_EMBEDDING_PARAMS = ("embedding.word_embeddings.weight", "output_layer.weight")


@contextlib.contextmanager
def _single_process_parallel_state() -> Iterator[None]:
    """TP = PP = 1 on a world of one, created here only if the caller has none (and torn down after)."""
    own_group = not dist.is_initialized()
    if own_group:
        dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    own_state = not ps.model_parallel_is_initialized()
    if own_state:
        ps.initialize_model_parallel()
    try:
        yield
    finally:
        if own_state:
            ps.destroy_model_parallel()
        if own_group:
            dist.destroy_process_group()


def count_built_parameters(cfg: ModelConfig, vocab_rows: int) -> dict[str, int]:
    """(total, non-embedding) parameters of the GPTModel built on the meta device, TP = PP = 1."""
    with _single_process_parallel_state():
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
