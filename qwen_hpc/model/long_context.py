"""Training-free context extension (Qwen report §2.5; spec §5.2): dynamic NTK-aware RoPE, LogN attention
scaling and layer-wise window attention, as pure functions of the lengths involved.

The formulas follow the released modeling code where it exists (NTK alpha bands, the base change, LogN
factors) so that a model we train behaves as a released Qwen does past its training length. Window attention
is not in any released code; the Qwen maintainers describe it (QwenLM/Qwen#422) as small windows in the
bottom layers growing towards the top, *each layer choosing its NTK alpha for its own window* — that is why
the released code could not host it (its alpha is fixed per forward). Here every quantity that depends on
the context a layer sees (alpha, LogN) is computed from that layer's effective context
`min(length, window)`, so a layer whose window is the training length runs exactly as in training.

Everything here is inference-only: the training forward never reads this config.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import torch


@dataclass
class LongContextConfig:
    """Which extension techniques inference applies past the training length, and the per-layer windows.

    Windows follow a rule unless `layer_windows` lists them: layer i (0-based) attends to the last
    `seq_length · window_scale · window_growth^(i // window_layers_per_step)` tokens (itself included). The
    defaults give the maintainers' illustrative shape: the bottom `window_layers_per_step` layers see the
    training length, the next ones twice it, and so on.
    """

    use_dynamic_ntk: bool = False
    use_logn_attn: bool = False
    use_window_attn: bool = False
    window_scale: float = 1.0
    window_growth: float = 2.0
    window_layers_per_step: int = 4
    # explicit per-layer windows in tokens (0 = full attention); non-empty overrides the rule above
    layer_windows: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.window_scale <= 0:
            raise ValueError(f"long_context.window_scale={self.window_scale} must be positive")
        if self.window_growth < 1:
            raise ValueError(f"long_context.window_growth={self.window_growth} must be >= 1")
        if self.window_layers_per_step < 1:
            raise ValueError(
                f"long_context.window_layers_per_step={self.window_layers_per_step} must be >= 1"
            )
        bad = [w for w in self.layer_windows if not isinstance(w, int) or isinstance(w, bool) or w < 0]
        if bad:
            raise ValueError(f"long_context.layer_windows has {bad}: each must be an integer >= 0 (0 = full)")

    @property
    def enabled(self) -> bool:
        return self.use_dynamic_ntk or self.use_logn_attn or self.use_window_attn

    def windows(self, num_layers: int, train_length: int) -> list[int]:
        """Per-layer window in tokens (0 = full attention); all 0 when window attention is off."""
        if not self.use_window_attn:
            return [0] * num_layers
        if self.layer_windows:
            if len(self.layer_windows) != num_layers:
                raise ValueError(
                    f"long_context.layer_windows has {len(self.layer_windows)} entries for a model with "
                    f"{num_layers} layers"
                )
            return list(self.layer_windows)
        return [
            max(
                1,
                round(
                    train_length
                    * self.window_scale
                    * self.window_growth ** (i // self.window_layers_per_step)
                ),
            )
            for i in range(num_layers)
        ]


# The four rows of the paper's Table 3, in its order.
SETTINGS = ("plain", "dynamic_ntk", "dynamic_ntk+logn", "dynamic_ntk+logn+window")


def setting_config(name: str, windows: LongContextConfig) -> LongContextConfig:
    """The long-context options of one Table-3 row; the window rule comes from `windows`."""
    if name not in SETTINGS:
        raise ValueError(f"unknown long-context setting {name!r}; choose from {', '.join(SETTINGS)}")
    parts = set(name.split("+"))
    return replace(
        windows,
        use_dynamic_ntk="dynamic_ntk" in parts,
        use_logn_attn="logn" in parts,
        use_window_attn="window" in parts,
    )


def ntk_alpha(length: int, train_length: int) -> int:
    """Dynamic-NTK alpha for a context of `length` keys: 1 up to the training length, then 3, 7, 15, …
    (2^ceil(log2(length / train_length) + 1) − 1) for every doubling band (spec §5.2)."""
    if length <= 0 or train_length <= 0:
        raise ValueError(f"length={length} and train_length={train_length} must be positive")
    if length <= train_length:
        return 1
    return max(2 ** math.ceil(math.log2(length / train_length) + 1) - 1, 1)


def ntk_base(base: float, alpha: float, rotary_dim: int) -> float:
    """The stretched RoPE base b·alpha^(d/(d−2)): the lowest frequency is slowed by alpha, the highest kept."""
    if rotary_dim <= 2:
        raise ValueError(f"rotary_dim={rotary_dim} must be > 2")
    return base * alpha ** (rotary_dim / (rotary_dim - 2))


def rope_inv_freq(base: float, rotary_dim: int) -> torch.Tensor:
    """Inverse frequencies in fp32, computed as Megatron-Core's `RotaryEmbedding` does."""
    return 1.0 / (base ** (torch.arange(0, rotary_dim, 2, dtype=torch.float32) / rotary_dim))


def logn_factors(positions: torch.Tensor, train_length: int, window: int = 0) -> torch.Tensor:
    """Query scale log(n)/log(L_train) for 1-based position n = position + 1 past the training length, else 1.

    With a window the count of keys a query sees is min(n, window), and the factor follows that count
    (LogN keeps attention entropy steady as the number of attended keys grows; a window caps it)."""
    n = positions.to(torch.float64) + 1
    if window > 0:
        n = n.clamp(max=window)
    factors = torch.where(n > train_length, torch.log(n) / math.log(train_length), torch.ones_like(n))
    return factors.to(torch.float32)
