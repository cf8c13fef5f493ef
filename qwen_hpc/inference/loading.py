"""Open a model for generation: a Hugging Face Qwen2 folder (as exported) or an `import_hf` output folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from qwen_hpc.model.config import ModelConfig
from qwen_hpc.tokenizer.encoding import QwenTokenizer, TokenizerFiles


def open_model(path: str | Path) -> tuple[Any, QwenTokenizer]:
    """(unsharded GPTModel in eval mode, tokenizer). Call inside `single_process_megatron()`.

    `path` is an HF folder (config.json + *.safetensors + tokenizer.json) or a folder written by
    `import_hf` (model_config.json + checkpoints/ + tokenizer/).
    """
    from qwen_hpc.interop.folder import MODEL_CONFIG
    from qwen_hpc.interop.hf_checkpoint import load_model, model_from_state, read_hf_folder
    from qwen_hpc.model.hf_convert import hf_to_megatron

    path = Path(path)
    if (path / "config.json").is_file():
        cfg, tensors, tokenizer = read_hf_folder(path)
        if tokenizer is None:
            raise FileNotFoundError(f"{path}: no tokenizer.json")
        return model_from_state(cfg, hf_to_megatron(tensors, cfg)), tokenizer
    if (path / MODEL_CONFIG).is_file():
        cfg = open_model_config(path)
        tok = path / "tokenizer"
        tokenizer = TokenizerFiles(tok / "tokenizer.tiktoken", tok / "special_tokens.json").load()
        return load_model(path / "checkpoints", cfg), tokenizer
    raise FileNotFoundError(
        f"{path}: neither an HF folder (config.json) nor an import_hf folder ({MODEL_CONFIG})"
    )


def open_model_config(path: str | Path) -> ModelConfig:
    """The `ModelConfig` of a folder `open_model` reads (its dimensions, training length, long-context
    settings), without loading weights."""
    from qwen_hpc.interop.folder import MODEL_CONFIG
    from qwen_hpc.interop.hf_checkpoint import read_hf_config

    path = Path(path)
    if (path / "config.json").is_file():
        return read_hf_config(path)
    if (path / MODEL_CONFIG).is_file():
        return ModelConfig(**json.loads((path / MODEL_CONFIG).read_text()))
    raise FileNotFoundError(
        f"{path}: neither an HF folder (config.json) nor an import_hf folder ({MODEL_CONFIG})"
    )
