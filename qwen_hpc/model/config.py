"""Model dimensions for the Qwen architecture (Qwen report §2.3, Table 1; spec §3.2).

`ModelConfig` is an OmegaConf-structured-config-compatible dataclass (only int/float/str/bool/Optional
fields), validated in `__post_init__`: a bad value fails before any job starts, with a message that names
the field. The defaults are the `tiny` model of the walking skeleton: small enough to train on two CPU
cores in well under a minute, big enough that its loss visibly falls within ~200 steps. The real sizes
(1.8B/7B/14B/72B) come from YAML; their FFN size is 8/3·h rounded up to a multiple of 128 (spec §3.2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from qwen_hpc.model.long_context import LongContextConfig
from qwen_hpc.utils.config_fields import runtime, scoped


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


@dataclass
class ModelConfig:
    name: str = "tiny"
    num_layers: int = 2
    hidden_size: int = 128
    num_attention_heads: int = 4
    # Head dimension; None = hidden_size / num_attention_heads (128 for every released Qwen size).
    kv_channels: Optional[int] = None  # noqa: UP045 (OmegaConf needs typing.Optional)
    # Inner size of one SwiGLU branch (HF Qwen's intermediate_size / 2); 8/3·128 = 341 → 352.
    ffn_hidden_size: int = 352
    seq_length: int = 128
    rotary_base: float = 10000.0
    layernorm_epsilon: float = 1e-6
    init_method_std: float = 0.02
    hidden_dropout: float = 0.0
    attention_dropout: float = 0.0
    # Embedding rows are padded to a multiple of this × tensor-parallel size (Megatron's convention).
    make_vocab_size_divisible_by: int = 128
    # Fixed number of embedding rows (the released checkpoints' `vocab_size`: 151,936 for 1.8B/7B, 152,064 for
    # 14B/72B, spec §3.2); None = pad the tokenizer's vocabulary by the rule above.
    padded_vocab_size: Optional[int] = None  # noqa: UP045
    # Vocabulary the paper's tokenizer has (151,643 BPE + 208 special tokens); used by `describe` only.
    reference_vocab_size: int = runtime(151851)
    # Inference past seq_length (Qwen §2.5): dynamic NTK, LogN, layer-wise windows. Never used in training,
    # so hashed only by the stages that list `model.long_context` (long_context, export_hf), not by pretrain.
    # The default is the tiny model's (config/model/tiny.yaml): two layers, the window doubling every layer;
    # `LongContextConfig`'s own default (4 layers per step) is the shape for Qwen-size models and HF imports.
    long_context: LongContextConfig = scoped(default_factory=lambda: LongContextConfig(window_layers_per_step=1))

    def __post_init__(self) -> None:
        if isinstance(self.long_context, dict):  # read back from model_config.json
            self.long_context = LongContextConfig(**self.long_context)
        _require(bool(self.name), "model.name must be a non-empty string")
        windows = self.long_context.layer_windows
        _require(
            not windows or len(windows) == self.num_layers,
            f"model.long_context.layer_windows has {len(windows)} entries; the model has {self.num_layers} layers",
        )
        for field in (
            "num_layers",
            "hidden_size",
            "num_attention_heads",
            "ffn_hidden_size",
            "seq_length",
            "make_vocab_size_divisible_by",
            "reference_vocab_size",
        ):
            value = getattr(self, field)
            _require(
                isinstance(value, int) and not isinstance(value, bool) and value > 0,
                f"model.{field}={value!r} must be a positive integer",
            )
        if self.kv_channels is None:
            _require(
                self.hidden_size % self.num_attention_heads == 0,
                f"model.hidden_size={self.hidden_size} must be divisible by "
                f"model.num_attention_heads={self.num_attention_heads}",
            )
        else:
            _require(self.kv_channels > 0, f"model.kv_channels={self.kv_channels} must be positive")
        _require(
            self.head_dim % 2 == 0,
            f"model.kv_channels={self.head_dim} (head dimension) must be even for rotary embeddings",
        )
        _require(self.rotary_base > 0, f"model.rotary_base={self.rotary_base} must be positive")
        _require(
            self.layernorm_epsilon > 0, f"model.layernorm_epsilon={self.layernorm_epsilon} must be positive"
        )
        _require(self.init_method_std > 0, f"model.init_method_std={self.init_method_std} must be positive")
        if self.padded_vocab_size is not None:
            _require(
                self.padded_vocab_size > 0,
                f"model.padded_vocab_size={self.padded_vocab_size} must be positive (or null)",
            )
        for field in ("hidden_dropout", "attention_dropout"):
            value = getattr(self, field)
            _require(0.0 <= value < 1.0, f"model.{field}={value} must be in [0, 1)")

    @property
    def head_dim(self) -> int:
        return (
            self.kv_channels if self.kv_channels is not None else self.hidden_size // self.num_attention_heads
        )

    def num_parameters(self, vocab_size: int) -> int:
        """Parameter count of the Qwen layout with `vocab_size` (padded) embedding rows, untied head."""
        return self.num_non_embedding_parameters() + 2 * vocab_size * self.hidden_size

    def num_non_embedding_parameters(self) -> int:
        """Everything but the input embedding and the (untied) LM head (spec §3.2's "non-embedding")."""
        h, f, a = self.hidden_size, self.ffn_hidden_size, self.num_attention_heads * self.head_dim
        per_layer = (h * 3 * a + 3 * a) + a * h + 3 * h * f + 2 * h  # qkv(+bias), proj, swiglu, 2 norms
        return self.num_layers * per_layer + h  # + final norm

    def flops_per_token(self, vocab_size: int) -> float:
        """Training FLOPs per token (forward + backward): 6 × matmul parameters + causal-free attention term.

        The usual estimate (Kaplan et al. 2020; PaLM appendix B): 6·N for every weight used in a matmul
        (embedding lookup excluded, LM head included) plus 12·L·s·(heads·head_dim) for attention scores.
        """
        embedding = vocab_size * self.hidden_size
        matmul_params = self.num_parameters(vocab_size) - embedding
        attention = 12 * self.num_layers * self.seq_length * self.num_attention_heads * self.head_dim
        return float(6 * matmul_params + attention)
