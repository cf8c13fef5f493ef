"""The long-context decoder (Qwen §2.5): off = bit-identical to the plain decoder (Megatron's forward to 1e-5); windows equal a masked
Megatron forward and keep a ring-buffer cache; NTK alpha per row fixed at prefill; LogN only past L."""

from __future__ import annotations

import torch

from qwen_hpc.inference.decoder import KVCacheDecoder
from qwen_hpc.inference.generate import Generator, SamplingConfig
from qwen_hpc.model.long_context import LongContextConfig
from tests.inference.helpers import assert_batched_equals_alone

TRAIN = 128  # the fixture model's seq_length (its HF max_position_embeddings)
ALL_ON = LongContextConfig(
    use_dynamic_ntk=True, use_logn_attn=True, use_window_attn=True, window_layers_per_step=1
)


def _ids(length: int, seed: int = 0, batch: int = 1) -> torch.Tensor:
    return torch.randint(0, 800, (batch, length), generator=torch.Generator().manual_seed(seed))


def _prefill_logits(model, ids: torch.Tensor, lc: LongContextConfig | None = None, chunk: int = 1024):
    b, t = ids.shape
    decoder = KVCacheDecoder(model, b, t, long_context=lc, train_length=TRAIN, attention_chunk=chunk)
    hidden = decoder.hidden(ids, torch.arange(t)[None].expand(b, t), torch.ones(b, t, dtype=torch.bool))
    return decoder.logits(hidden), decoder


def _megatron_logits(model, ids: torch.Tensor, masked: torch.Tensor | None = None) -> torch.Tensor:
    from qwen_hpc.compat.megatron_cpu import cpu_shims

    b, t = ids.shape
    if masked is None:
        masked = ~torch.ones(t, t, dtype=torch.bool).tril()
    with cpu_shims(), torch.inference_mode():
        logits = model(
            ids, torch.arange(t)[None].expand(b, t), masked[None, None], runtime_gather_output=True
        )
    return logits.float()


def test_all_options_off_is_bit_identical_to_the_plain_model(models) -> None:
    model = models[0]
    ids = _ids(100, batch=2)
    plain, _ = _prefill_logits(model, ids, None)
    off, _ = _prefill_logits(model, ids, LongContextConfig())
    assert torch.equal(off, plain)
    # every option on, but within the training length: alpha 1, LogN 1, windows >= the sequence
    on, _ = _prefill_logits(model, ids, ALL_ON)
    assert torch.equal(on, plain)
    # and the plain decoder is Megatron's own forward up to fp32 rounding (SDPA vs. its unfused softmax)
    assert torch.allclose(plain, _megatron_logits(model, ids), atol=1e-5, rtol=0)


def test_window_larger_than_the_sequence_is_full_attention(models) -> None:
    ids = _ids(300, seed=1)
    plain, _ = _prefill_logits(models[0], ids)
    wide, decoder = _prefill_logits(
        models[0], ids, LongContextConfig(use_window_attn=True, layer_windows=[300, 5000])
    )
    assert decoder.windows == [0, 0] and torch.equal(wide, plain)


def test_window_attention_equals_a_sliding_window_mask_on_megatron(models) -> None:
    t, window = 96, 20
    ids = _ids(t, seed=2)
    lc = LongContextConfig(use_window_attn=True, layer_windows=[window, window])
    ours, decoder = _prefill_logits(models[0], ids, lc, chunk=16)  # chunks of 16 queries
    assert decoder.capacity == [window, window]  # the cache holds one window per layer, not the sequence
    q, k = torch.arange(t)[:, None], torch.arange(t)[None]
    masked = ~((k <= q) & (k > q - window))
    reference = _megatron_logits(models[0], ids, masked)
    assert torch.allclose(ours, reference, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(ours, _megatron_logits(models[0], ids), atol=1e-3)  # the window matters


def test_ring_buffer_decoding_equals_one_prefill(models) -> None:
    """Prefill 150 tokens, decode 60 more one by one through the ring caches: the logits of each step equal
    those of a single windowed prefill of the whole sequence (alpha is the prefill's in both)."""
    model, total, prompt = models[0], 210, 150
    lc = LongContextConfig(use_logn_attn=True, use_window_attn=True, layer_windows=[40, 0])
    ids = _ids(total, seed=3)
    whole, _ = _prefill_logits(model, ids, lc, chunk=32)
    decoder = KVCacheDecoder(model, 1, total, long_context=lc, train_length=TRAIN, attention_chunk=64)
    valid = torch.ones(1, total, dtype=torch.bool)
    steps = [decoder.step(ids[:, :prompt], torch.arange(prompt)[None], valid[:, :prompt])]
    for pos in range(prompt, total - 1):
        steps.append(decoder.step(ids[:, pos : pos + 1], torch.tensor([[pos]]), valid[:, : pos + 1]))
    assert decoder.keys[0].shape[2] == 40 and decoder.keys[1].shape[2] == total
    expected = whole[0, prompt - 1 : total - 1]
    assert torch.allclose(torch.stack(steps)[:, 0], expected, atol=1e-5, rtol=1e-5)


def test_dynamic_ntk_alpha_is_per_row_and_fixed_at_prefill(models, tokenizer) -> None:
    model = models[0]
    lc = LongContextConfig(use_dynamic_ntk=True)
    b, t = 1, 200  # 128 < 200 <= 256: alpha 3
    decoder = KVCacheDecoder(model, b, 400, long_context=lc, train_length=TRAIN)
    valid = torch.ones(1, 400, dtype=torch.bool)
    decoder.step(_ids(t), torch.arange(t)[None], valid[:, :t])
    assert decoder.rope_keys == [(3,), (3,)]
    for pos in range(t, t + 70):  # past 256 the band would say 7: the prefill's alpha stays
        decoder.step(_ids(1, seed=pos), torch.tensor([[pos]]), valid[:, : pos + 1])
    assert decoder.rope_keys == [(3,), (3,)]
    short = KVCacheDecoder(model, 1, 400, long_context=lc, train_length=TRAIN)
    short.step(_ids(100), torch.arange(100)[None], valid[:, :100])
    assert short.rope_keys == [1, 1]  # within the training length: the model's own table
    # a left-padded batch gives each row the alpha of its own length: batched == alone
    prompts = [_ids(300, seed=5)[0].tolist(), _ids(140, seed=6)[0].tolist(), _ids(60, seed=7)[0].tolist()]
    gen = Generator(
        model, tokenizer, long_context=LongContextConfig(use_dynamic_ntk=True, use_logn_attn=True)
    )
    greedy = SamplingConfig(max_new_tokens=6)
    together = assert_batched_equals_alone(gen, prompts, greedy)
    plain = Generator(model, tokenizer).generate_ids(prompts[:1], greedy)[0]
    assert plain.logprobs != together[0].logprobs  # past the training length the options change the model


def test_logn_leaves_positions_up_to_the_training_length_untouched(models) -> None:
    ids = _ids(260, seed=8)
    plain, _ = _prefill_logits(models[0], ids)
    logn, _ = _prefill_logits(models[0], ids, LongContextConfig(use_logn_attn=True))
    assert torch.equal(logn[:, :TRAIN], plain[:, :TRAIN])  # causal: earlier queries are unscaled
    assert not torch.allclose(logn[:, TRAIN:], plain[:, TRAIN:], atol=1e-4)
    ntk, _ = _prefill_logits(models[0], ids, LongContextConfig(use_dynamic_ntk=True))
    assert not torch.allclose(ntk[:, :TRAIN], plain[:, :TRAIN], atol=1e-4)  # alpha 7 rotates every position


def test_long_context_needs_the_cache_path(models, tokenizer) -> None:
    import pytest

    gen = Generator(models[0], tokenizer, long_context=LongContextConfig(use_logn_attn=True))
    with pytest.raises(ValueError, match="use_cache=True"):
        gen.generate_ids([[1, 2, 3]], SamplingConfig(max_new_tokens=2), use_cache=False)


def test_windowed_generation_with_left_padding_equals_each_prompt_alone(models, tokenizer) -> None:
    lc = LongContextConfig(
        use_dynamic_ntk=True, use_logn_attn=True, use_window_attn=True, layer_windows=[50, 0]
    )
    gen = Generator(models[0], tokenizer, long_context=lc)
    prompts = [_ids(300, seed=9)[0].tolist(), _ids(30, seed=10)[0].tolist(), _ids(140, seed=11)[0].tolist()]
    assert_batched_equals_alone(gen, prompts, SamplingConfig(max_new_tokens=8))
