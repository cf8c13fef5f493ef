"""Build a Megatron-Core `GPTModel` with the Qwen architecture (Qwen report §2.3; spec §3.1–3.3).

Qwen is LLaMA-style: untied input embedding and output projection; RoPE over the full head dimension with
its inverse frequencies in FP32 (Megatron computes `inv_freq` in float32); no biases except on the QKV
projection; pre-norm RMSNorm with eps 1e-6; SwiGLU MLP whose inner size is about 8/3 of the hidden size.
Initialisation follows the released code: every weight ~ N(0, 0.02), and the two residual-output projections
(attention out-projection and MLP down-projection) ~ N(0, 0.02/√(2L)) — Megatron's
`output_layer_init_method` is exactly that scaled normal, and `init_method` is used for embeddings and the
LM head.

Process groups and DDP/optimizer wrapping are not done here (they belong to `launch/` and `training/`); the
builder only reads the already-initialised Megatron `parallel_state` through Megatron's own layers.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from megatron.core.models.gpt import GPTModel
from megatron.core.transformer.transformer_block import TransformerBlockSubmodules, get_num_layers_to_build
from megatron.core.transformer.transformer_config import TransformerConfig

from qwen_hpc.model.config import ModelConfig
from qwen_hpc.model.spec import final_norm_module, local_norm_module, qwen_layer_spec, resolve_backend

log = logging.getLogger(__name__)


def padded_vocab_size(n_vocab: int, cfg: ModelConfig, tp: int = 1) -> int:
    """Embedding rows: `cfg.padded_vocab_size` when the config fixes it (the released sizes, spec §3.2),
    else `n_vocab` rounded up to a multiple of `make_vocab_size_divisible_by × tp`."""
    if n_vocab <= 0:
        raise ValueError(f"n_vocab={n_vocab} must be positive")
    if cfg.padded_vocab_size is not None:
        if n_vocab > cfg.padded_vocab_size:
            raise ValueError(
                f"the tokenizer has {n_vocab} tokens, more than model.padded_vocab_size={cfg.padded_vocab_size}"
            )
        if cfg.padded_vocab_size % tp:
            raise ValueError(
                f"model.padded_vocab_size={cfg.padded_vocab_size} must be divisible by the tensor-parallel "
                f"size {tp}"
            )
        return cfg.padded_vocab_size
    multiple = cfg.make_vocab_size_divisible_by * tp
    return -(-n_vocab // multiple) * multiple


@dataclass
class KernelChoice:
    """Which implementation each optional fused kernel uses, and why (logged at the start of training)."""

    backend: str
    gradient_accumulation_fusion: bool = False
    bias_activation_fusion: bool = False
    bias_dropout_fusion: bool = False
    masked_softmax_fusion: bool = False
    apply_rope_fusion: bool = False
    reasons: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        flags = (
            "gradient_accumulation_fusion",
            "bias_activation_fusion",
            "bias_dropout_fusion",
            "masked_softmax_fusion",
            "apply_rope_fusion",
        )
        parts = [
            f"backend={self.backend} ({self.reasons.get('backend', '')})",
            f"rmsnorm={self.reasons.get('rmsnorm', '')}",
        ]
        parts += [f"{name}={getattr(self, name)} ({self.reasons.get(name, '')})" for name in flags]
        return "; ".join(parts)


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def select_kernels(backend: str = "auto") -> KernelChoice:
    """Fused kernels only on CUDA and only when their extension imports; everything off on the CPU."""
    chosen, why = resolve_backend(backend)
    choice = KernelChoice(backend=chosen, reasons={"backend": why})
    choice.reasons["rmsnorm"] = "Transformer Engine" if chosen == "te" else local_norm_module()[1]
    if not torch.cuda.is_available():
        for name in ("gradient_accumulation_fusion", "bias_activation_fusion", "bias_dropout_fusion"):
            choice.reasons[name] = "no CUDA device"
        choice.reasons["masked_softmax_fusion"] = "no CUDA device"
        choice.reasons["apply_rope_fusion"] = "no CUDA device"
        return choice
    te = chosen == "te"
    apex_wgrad = _importable("fused_weight_gradient_mlp_cuda")
    choice.gradient_accumulation_fusion = te or apex_wgrad
    choice.reasons["gradient_accumulation_fusion"] = (
        "Transformer Engine"
        if te
        else ("Apex fused_weight_gradient_mlp_cuda" if apex_wgrad else "no extension")
    )
    choice.bias_activation_fusion = True
    choice.reasons["bias_activation_fusion"] = "CUDA (torch.jit SwiGLU)"
    choice.bias_dropout_fusion = True
    choice.reasons["bias_dropout_fusion"] = "CUDA (torch.jit)"
    softmax_kernel = _importable("scaled_upper_triang_masked_softmax_cuda")
    choice.masked_softmax_fusion = not te and softmax_kernel
    choice.reasons["masked_softmax_fusion"] = (
        "TE attention used instead" if te else ("fused kernel importable" if softmax_kernel else "no kernel")
    )
    choice.apply_rope_fusion = te
    choice.reasons["apply_rope_fusion"] = "Transformer Engine" if te else "needs Transformer Engine"
    return choice


def transformer_config(
    cfg: ModelConfig,
    *,
    tp: int = 1,
    pp: int = 1,
    params_dtype: torch.dtype = torch.float32,
    bf16: bool = False,
    kernels: KernelChoice | None = None,
) -> TransformerConfig:
    """Megatron `TransformerConfig` with the Qwen switches (RMSNorm, QKV-only bias, SwiGLU, scaled init)."""
    kernels = kernels or select_kernels()
    on_cpu = not torch.cuda.is_available()
    return TransformerConfig(
        num_layers=cfg.num_layers,
        hidden_size=cfg.hidden_size,
        num_attention_heads=cfg.num_attention_heads,
        kv_channels=cfg.head_dim,
        ffn_hidden_size=cfg.ffn_hidden_size,
        tensor_model_parallel_size=tp,
        pipeline_model_parallel_size=pp,
        pipeline_dtype=params_dtype,
        # Qwen layout
        normalization="RMSNorm",
        layernorm_epsilon=cfg.layernorm_epsilon,
        gated_linear_unit=True,
        activation_func=F.silu,
        add_bias_linear=False,
        add_qkv_bias=True,
        hidden_dropout=cfg.hidden_dropout,
        attention_dropout=cfg.attention_dropout,
        init_method_std=cfg.init_method_std,  # -> init_method N(0, std), output_layer N(0, std/sqrt(2L))
        attention_softmax_in_fp32=True,
        # precision
        params_dtype=params_dtype,
        bf16=bf16,
        # CPU: Megatron's GPU initialisation path allocates on CUDA
        use_cpu_initialization=on_cpu,
        # kernels (all False on CPU)
        gradient_accumulation_fusion=kernels.gradient_accumulation_fusion,
        bias_activation_fusion=kernels.bias_activation_fusion,
        bias_dropout_fusion=kernels.bias_dropout_fusion,
        masked_softmax_fusion=kernels.masked_softmax_fusion,
        apply_rope_fusion=kernels.apply_rope_fusion,
        persist_layer_norm=False,
    )


def build_model(
    cfg: ModelConfig,
    vocab_size: int,
    *,
    pre_process: bool = True,
    post_process: bool = True,
    tp: int = 1,
    pp: int = 1,
    params_dtype: torch.dtype = torch.float32,
    bf16: bool = False,
    backend: str = "auto",
    config: TransformerConfig | None = None,
) -> GPTModel:
    """A `GPTModel` with the Qwen layout for this pipeline stage.

    `vocab_size` is the padded number of embedding rows (see `padded_vocab_size`). Megatron's
    `parallel_state` must be initialised (TP/PP groups) and the RNG seeded (`model_parallel_seed`) first.
    """
    kernels = select_kernels(backend)
    config = config or transformer_config(
        cfg, tp=tp, pp=pp, params_dtype=params_dtype, bf16=bf16, kernels=kernels
    )
    block = TransformerBlockSubmodules(
        layer_specs=[qwen_layer_spec(kernels.backend)] * get_num_layers_to_build(config),
        layer_norm=final_norm_module(kernels.backend),
    )
    model = GPTModel(
        config=config,
        transformer_layer_spec=block,
        vocab_size=vocab_size,
        max_sequence_length=cfg.seq_length,
        pre_process=pre_process,
        post_process=post_process,
        parallel_output=True,
        share_embeddings_and_output_weights=False,  # untied (Qwen report §2.3)
        position_embedding_type="rope",
        rotary_percent=1.0,  # RoPE over the full head dimension
        rotary_base=cfg.rotary_base,
    )
    if torch.cuda.is_available():
        model.cuda(torch.cuda.current_device())
    return model
