"""Fixtures for the tokenizer tests: the released Qwen vocabulary and a tokenizer trained on a tiny corpus."""

from __future__ import annotations

from pathlib import Path

import pytest

from qwen_hpc.tokenizer import QwenTokenizer, train_bpe

from .helpers import corpus_texts


@pytest.fixture(scope="session")
def qwen_official(qwen_tiktoken_path: Path) -> QwenTokenizer:
    return QwenTokenizer.from_files(qwen_tiktoken_path)


@pytest.fixture(scope="session")
def trained_ranks() -> dict[bytes, int]:
    return train_bpe(corpus_texts(), 600)


@pytest.fixture(scope="session")
def tiny_tokenizer(trained_ranks: dict[bytes, int]) -> QwenTokenizer:
    return QwenTokenizer(trained_ranks, name="tiny")
