"""A tiny random `transformers` Qwen2ForCausalLM and a tiny trained tokenizer, shared by the HF tests."""

from __future__ import annotations

from functools import cache

import torch

from qwen_hpc.tokenizer import QwenTokenizer, train_bpe
from tests.tokenizer.helpers import corpus_texts

VOCAB_ROWS = 896  # 808 ids of the tiny tokenizer, padded to a multiple of 128
MULTILINGUAL = (
    "The quick brown fox jumps over the lazy dog. 通义千问是阿里巴巴开发的大语言模型。 Привет мир, "
    "مرحبا بالعالم, שלום עולם, สวัสดี, 안녕하세요, こんにちは. café naïve Ångström 🙂🚀 12345 and 2023年\n"
    "def f(x):\n\treturn x ** 2  # comment\r\n"
)


@cache
def tiny_tokenizer() -> QwenTokenizer:
    return QwenTokenizer(train_bpe(corpus_texts(), 600), name="tiny")


def hf_model(seed: int = 0, init: float = 0.1):
    """Random-init HF Qwen2 with tiny dims; biases and norm weights perturbed so that every tensor matters."""
    from transformers import Qwen2ForCausalLM

    from qwen_hpc.model.config import ModelConfig
    from qwen_hpc.model.hf_convert import qwen2_config

    torch.manual_seed(seed)
    shape = ModelConfig(num_layers=2, hidden_size=64, num_attention_heads=4, ffn_hidden_size=176, seq_length=128)
    config = qwen2_config(shape, VOCAB_ROWS, initializer_range=init)
    model = Qwen2ForCausalLM(config).eval()
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or "norm" in name:
                p.add_(0.1 * torch.randn(p.shape, generator=gen))
    return model


def assert_batched_equals_alone(generator, prompts: list, sampling) -> list:
    """Left padding is invisible: each prompt generated in the batch gives the tokens (and log-probs to
    1e-4) it gives alone. Returns the batched generations."""
    together = generator.generate_ids(prompts, sampling)
    for prompt, batched in zip(prompts, together, strict=True):
        alone = generator.generate_ids([prompt], sampling)[0]
        assert alone.token_ids == batched.token_ids
        assert max(abs(x - y) for x, y in zip(alone.logprobs, batched.logprobs, strict=True)) <= 1e-4
    return together
