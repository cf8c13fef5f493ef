"""The long-context formulas of Qwen §2.5 (spec §5.2) at and around every band edge."""

from __future__ import annotations

import math

import pytest
import torch

from qwen_hpc.model.long_context import LongContextConfig, logn_factors, ntk_alpha, ntk_base, rope_inv_freq


def _band_alpha(length: int, train_length: int) -> int:
    """Alpha by integer arithmetic: the smallest k with train_length·2^k >= length gives 2^(k+1) − 1."""
    if length <= train_length:
        return 1
    k = 0
    while train_length * 2**k < length:
        k += 1
    return 2 ** (k + 1) - 1


@pytest.mark.parametrize("train_length", [128, 2048, 8192, 3])
def test_ntk_alpha_at_and_around_every_band_edge(train_length: int) -> None:
    assert ntk_alpha(1, train_length) == 1
    for k in range(0, 6):
        edge = train_length * 2**k
        for length in (edge - 1, edge, edge + 1):
            if length >= 1:
                assert ntk_alpha(length, train_length) == _band_alpha(length, train_length), length
    # the paper's bands: 1 up to L, 3 up to 2L, 7 up to 4L, 15 up to 8L
    assert [ntk_alpha(n, 2048) for n in (2048, 2049, 4096, 4097, 8192, 8193, 16384)] == [
        1,
        3,
        3,
        7,
        7,
        15,
        15,
    ]


def test_ntk_alpha_rejects_non_positive_lengths() -> None:
    with pytest.raises(ValueError, match="positive"):
        ntk_alpha(0, 128)


def test_ntk_base_and_inverse_frequencies() -> None:
    assert ntk_base(10000.0, 1, 128) == 10000.0
    assert ntk_base(10000.0, 3, 128) == pytest.approx(10000.0 * 3 ** (128 / 126), rel=1e-12)
    inv = rope_inv_freq(ntk_base(10000.0, 7, 64), 64)
    assert inv.dtype == torch.float32 and inv.shape == (32,)
    assert inv[0] == 1.0
    # the lowest frequency is slowed by exactly alpha (the point of the d/(d-2) exponent)
    plain = rope_inv_freq(10000.0, 64)
    assert float(plain[-1] / inv[-1]) == pytest.approx(7.0, rel=1e-5)


def test_logn_factors_at_and_around_the_training_length() -> None:
    train = 128
    positions = torch.arange(0, 600)
    factors = logn_factors(positions, train)
    assert factors.dtype == torch.float32
    for pos in (0, 1, train - 2, train - 1):  # 1-based n <= L: unscaled
        assert factors[pos] == 1.0
    for pos in (train, train + 1, 2 * train - 1, 599):
        n = pos + 1
        assert float(factors[pos]) == pytest.approx(math.log(n) / math.log(train), rel=1e-7)
    windowed = logn_factors(positions, train, window=256)
    assert float(windowed[599]) == pytest.approx(math.log(256) / math.log(train), rel=1e-7)
    assert torch.equal(windowed[:256], factors[:256])


def test_window_rule_and_explicit_windows() -> None:
    rule = LongContextConfig(use_window_attn=True)  # 4 layers per step, doubling from the training length
    assert rule.windows(10, 2048) == [2048] * 4 + [4096] * 4 + [8192] * 2
    assert LongContextConfig().windows(3, 128) == [0, 0, 0]  # off: full attention everywhere
    tiny = LongContextConfig(use_window_attn=True, window_layers_per_step=1, window_scale=0.5)
    assert tiny.windows(3, 128) == [64, 128, 256]
    explicit = LongContextConfig(use_window_attn=True, layer_windows=[16, 0])
    assert explicit.windows(2, 128) == [16, 0]
    with pytest.raises(ValueError, match="2 entries for a model with 3 layers"):
        LongContextConfig(use_window_attn=True, layer_windows=[16, 0]).windows(3, 128)
    with pytest.raises(ValueError, match="layer_windows"):
        LongContextConfig(layer_windows=[-1])
    with pytest.raises(ValueError, match="window_growth"):
        LongContextConfig(window_growth=0.5)
