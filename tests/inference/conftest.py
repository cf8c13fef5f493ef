"""One tiny model shared by the generation tests: random HF Qwen2 weights in our Megatron model."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.inference.helpers import hf_model, tiny_tokenizer


@pytest.fixture(scope="module")
def models() -> Iterator[tuple[Any, Any]]:
    """(our GPTModel, the transformers model with the same weights)."""
    pytest.importorskip("transformers")
    from qwen_hpc.interop.hf_checkpoint import model_from_state, single_process_megatron
    from qwen_hpc.model.hf_convert import hf_to_megatron, model_config_from_hf

    hf = hf_model(seed=3)
    cfg = model_config_from_hf(hf.config.to_dict())
    with single_process_megatron():
        yield model_from_state(cfg, hf_to_megatron(hf.state_dict(), cfg)), hf


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer()
