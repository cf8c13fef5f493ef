"""Fixtures of the benchmark-suite tests: the data root (skip without ../shared) and Qwen's tokenizer."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import DATA_ROOT, SHARED


@pytest.fixture(scope="session")
def bench_root() -> Path:
    if not (DATA_ROOT / "mmlu").is_dir():
        pytest.skip(f"benchmark datasets not found at {DATA_ROOT} (set QWEN_HPC_DATA_ROOT)")
    return DATA_ROOT


@pytest.fixture(scope="session")
def qwen_tokenizer():
    """The official Qwen vocabulary (choice ids " A" = 362 … as spec §6.1 states)."""
    path = SHARED / "tokenizers" / "qwen.tiktoken"
    if not path.is_file():
        pytest.skip(f"{path} not found (the shared folder holds qwen.tiktoken)")
    from qwen_hpc.tokenizer.encoding import QwenTokenizer

    return QwenTokenizer.from_files(path)
