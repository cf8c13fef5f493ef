"""The KV-cache generator: equal to transformers' greedy generate, to no-cache recomputation with Megatron's
own forward, deterministic under a seed; stops, left padding, log-probs and the logits processors."""

from __future__ import annotations

import math

import pytest
import torch

from qwen_hpc.inference.generate import Generator, SamplingConfig, process_logits
from tests.inference.helpers import assert_batched_equals_alone

PROMPTS = [
    "The quick brown fox",
    "通义千问是阿里巴巴开发的大语言模型。我们在中文和英文数据上",
    "def add(a, b):",
]
SAMPLED = SamplingConfig(
    max_new_tokens=12, temperature=0.8, top_k=40, top_p=0.9, repetition_penalty=1.3, seed=11
)


def test_greedy_equals_transformers_generate_token_for_token(models, tokenizer) -> None:
    ours, hf = models
    new = 16
    out = Generator(ours, tokenizer).generate(PROMPTS, SamplingConfig(max_new_tokens=new))
    encoded = [tokenizer.encode(p) for p in PROMPTS]
    width = max(map(len, encoded))
    ids = torch.tensor([[tokenizer.eod_id] * (width - len(e)) + e for e in encoded])
    mask = torch.tensor([[0] * (width - len(e)) + [1] * len(e) for e in encoded])
    ref = hf.generate(
        input_ids=ids,
        attention_mask=mask,
        do_sample=False,
        max_new_tokens=new,
        pad_token_id=tokenizer.eod_id,
        suppress_tokens=list(range(tokenizer.n_vocab, hf.config.vocab_size)),  # embedding padding rows
    )
    for row, gen in enumerate(out):
        assert gen.token_ids == ref[row, width:].tolist()
        assert gen.finish_reason == "length" and len(gen.logprobs) == new


@pytest.mark.parametrize("sampling", [SamplingConfig(max_new_tokens=12), SAMPLED], ids=["greedy", "sampled"])
def test_kv_cache_equals_no_cache_recomputation(models, tokenizer, sampling) -> None:
    gen = Generator(models[0], tokenizer)
    cached, recomputed = gen.generate(PROMPTS, sampling), gen.generate(PROMPTS, sampling, use_cache=False)
    for a, b in zip(cached, recomputed, strict=True):
        assert a.token_ids == b.token_ids and a.text == b.text
        assert max(abs(x - y) for x, y in zip(a.logprobs, b.logprobs, strict=True)) <= 1e-4
        assert all(x <= 0 and math.isfinite(x) for x in a.logprobs)
        assert all(t < tokenizer.n_vocab for t in a.token_ids)  # embedding padding rows are never drawn


def test_seeded_sampling_is_deterministic_and_left_padding_is_invisible(models, tokenizer) -> None:
    gen = Generator(models[0], tokenizer)
    first, again = gen.generate(PROMPTS, SAMPLED), gen.generate(PROMPTS, SAMPLED)
    assert [g.token_ids for g in first] == [g.token_ids for g in again]
    other = gen.generate(PROMPTS, SamplingConfig(**{**SAMPLED.__dict__, "seed": 12}))
    assert [g.token_ids for g in other] != [g.token_ids for g in first]
    assert_batched_equals_alone(
        gen, [tokenizer.encode(p) for p in PROMPTS], SamplingConfig(max_new_tokens=10)
    )


def test_stop_token_ids_and_stop_strings(models, tokenizer) -> None:
    gen = Generator(models[0], tokenizer)
    base = gen.generate(PROMPTS[:1], SamplingConfig(max_new_tokens=12))[0]
    stop = base.token_ids[4]
    first = base.token_ids.index(stop)
    out = gen.generate(PROMPTS[:1], SamplingConfig(max_new_tokens=12, stop_token_ids=(stop,)))[0]
    assert out.finish_reason == "stop_token" and out.token_ids == base.token_ids[: first + 1]
    assert out.text == tokenizer.decode(base.token_ids[:first])  # the stop token is not in the text
    assert len(out.logprobs) == len(out.token_ids)
    text = base.text
    needle = text[len(text) // 2 : len(text) // 2 + 2]
    out = gen.generate(PROMPTS[:1], SamplingConfig(max_new_tokens=12, stop_strings=(needle,)))[0]
    assert out.finish_reason == "stop_string" and needle not in out.text
    assert text.startswith(out.text) and len(out.token_ids) <= len(base.token_ids)


def test_logits_processors_match_transformers() -> None:
    from transformers.generation.logits_process import (
        RepetitionPenaltyLogitsProcessor,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    gen = torch.Generator().manual_seed(0)
    logits, history = torch.randn(3, 50, generator=gen) * 3, torch.randint(0, 50, (3, 7), generator=gen)
    cfg = SamplingConfig(temperature=0.7, top_k=20, top_p=0.8, repetition_penalty=1.5)
    ours = process_logits(logits, history, torch.ones_like(history, dtype=torch.bool), cfg)
    ref = RepetitionPenaltyLogitsProcessor(1.5)(history, logits.clone())
    for warper in (TemperatureLogitsWarper(0.7), TopKLogitsWarper(20), TopPLogitsWarper(0.8)):
        ref = warper(history, ref)
    assert torch.equal(torch.isinf(ours), torch.isinf(ref))
    finite = torch.isfinite(ref)
    assert torch.allclose(ours[finite], ref[finite], atol=1e-6)
