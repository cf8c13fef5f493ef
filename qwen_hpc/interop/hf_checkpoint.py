"""Megatron-Core checkpoints (any TP/PP layout) ↔ Hugging Face Qwen2 folders (safetensors + config + tokenizer).

A `dist_checkpointing` checkpoint stores each tensor once, by its global shape, whatever the TP/PP layout
that wrote it; loading it into a TP=1, PP=1 model in one process reshards it. So export is: load into one
unsharded `GPTModel` → `hf_convert.megatron_to_hf` → safetensors. Import is the reverse, saved with the same
`save_checkpoint` training uses; a later run with any TP/PP loads it the same way (`tp` only decides the
embedding padding, `padded_vocab_size(n_vocab, cfg, tp)`, that such a run expects).

Every output folder is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import torch

from qwen_hpc.interop.folder import (
    MODEL_CONFIG,  # noqa: F401 - re-exported: callers read it here
    load_tokenizer,
    open_checkpoint_folder,
    write_folder_description,
)
from qwen_hpc.interop.hf_tokenizer import tokenizer_files, tokenizer_from_hf
from qwen_hpc.model.builder import build_model, padded_vocab_size
from qwen_hpc.model.config import ModelConfig
from qwen_hpc.model.hf_convert import (
    generation_config,
    hf_config,
    hf_to_megatron,
    megatron_to_hf,
    model_config_from_hf,
)
from qwen_hpc.parallel import single_process_megatron, torch_dtype
from qwen_hpc.tokenizer.encoding import QwenTokenizer
from qwen_hpc.training.checkpoint import (
    TrainingState,
    checkpoint_vocab_rows,
    load_weights,
    resolve_checkpoint,
    save_checkpoint,
)
from qwen_hpc.utils.io import atomic_dir

log = logging.getLogger(__name__)

WEIGHTS = "model.safetensors"


def load_model(checkpoint: str | Path, cfg: ModelConfig) -> Any:
    """A `GPTModel` (eval mode) with the weights of `checkpoint` (an `iter_*` folder, a checkpoints root or
    a folder holding `checkpoints/`). Call inside `single_process_megatron()` for an unsharded model, or on
    every rank inside `model_parallel(tp, pp)` for this rank's TP shard of its pipeline stage (the
    distributed checkpoint is resharded on load, whatever layout wrote it). Collective under TP/PP > 1."""
    from megatron.core import parallel_state as ps

    tp, pp, first, last = 1, 1, True, True
    if ps.model_parallel_is_initialized():
        tp, pp = ps.get_tensor_model_parallel_world_size(), ps.get_pipeline_model_parallel_world_size()
        first, last = ps.is_pipeline_first_stage(ignore_virtual=True), ps.is_pipeline_last_stage(ignore_virtual=True)
    path = resolve_checkpoint(checkpoint)
    rows = checkpoint_vocab_rows(path)
    if rows % tp:
        raise ValueError(f"{path}: {rows} embedding rows do not split over tensor_model_parallel_size={tp}")
    if cfg.num_layers % pp:
        raise ValueError(f"{cfg.num_layers} layers do not split over pipeline_model_parallel_size={pp}")
    model = build_model(cfg, rows, backend="local", tp=tp, pp=pp, pre_process=first, post_process=last)
    load_weights(path, model)
    return model.eval()


def model_from_state(cfg: ModelConfig, state: dict[str, torch.Tensor]) -> Any:
    """An unsharded `GPTModel` holding exactly `state` (Megatron names, see hf_convert)."""
    rows = state["embedding.word_embeddings.weight"].shape[0]
    model = build_model(cfg, rows, backend="local")
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("_extra_state")]
    if missing or unexpected:
        raise KeyError(f"state does not fit the model: missing {missing}, unexpected {unexpected}")
    return model.eval()


def weights(model: Any) -> dict[str, torch.Tensor]:
    """The tensors of a GPTModel's state dict (Megatron's empty `_extra_state` entries left out)."""
    return {k: v for k, v in model.state_dict().items() if isinstance(v, torch.Tensor)}


# ------------------------------------------------------------------------------------------------ export


def write_hf_folder(
    output: str | Path,
    cfg: ModelConfig,
    state: dict[str, torch.Tensor],
    tokenizer: QwenTokenizer,
    *,
    dtype: str = "float32",
) -> dict[str, Any]:
    """Write an HF Qwen2 folder from an unsharded Megatron state dict; returns what was written."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().to(torch_dtype(dtype)).contiguous() for k, v in megatron_to_hf(state, cfg).items()}
    rows = tensors["model.embed_tokens.weight"].shape[0]
    if rows < tokenizer.n_vocab:
        raise ValueError(f"the model embeds {rows} ids but the tokenizer has {tokenizer.n_vocab}")
    config = hf_config(cfg, rows, eod_id=tokenizer.eod_id, im_end_id=tokenizer.im_end_id, dtype=dtype)
    gen = generation_config(tokenizer.eod_id, tokenizer.im_end_id, tokenizer.im_start_id)
    with atomic_dir(output) as tmp:
        save_file(tensors, str(tmp / WEIGHTS), metadata={"format": "pt"})
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        (tmp / "generation_config.json").write_text(json.dumps(gen, indent=2) + "\n")
        for name, text in tokenizer_files(tokenizer, model_max_length=cfg.seq_length).items():
            (tmp / name).write_text(text, encoding="utf-8")
    n_params = sum(t.numel() for t in tensors.values())
    return {"parameters": n_params, "vocab_rows": rows, "n_vocab": tokenizer.n_vocab, "dtype": dtype}


def export_checkpoint(
    checkpoint: str | Path,
    output: str | Path,
    cfg: ModelConfig,
    tokenizer: QwenTokenizer,
    *,
    dtype: str = "float32",
) -> dict[str, Any]:
    """A Megatron checkpoint (root with `latest`, or one `iter_*` folder; any TP/PP) → an HF Qwen2 folder."""
    path = resolve_checkpoint(checkpoint)
    with single_process_megatron():
        state = weights(load_model(path, cfg))
    info = write_hf_folder(output, cfg, state, tokenizer, dtype=dtype)
    log.info("exported %s to %s (%s parameters)", path, output, info["parameters"])
    return {**info, "checkpoint": str(path)}


def export_folder(
    checkpoint: str | Path,
    output: str | Path,
    *,
    tokenizer: str | Path | None = None,
    dtype: str = "float32",
    long_context: Any = None,
) -> dict[str, Any]:
    """Any checkpoint folder this project writes or imports → an HF Qwen2 folder, on its own: dimensions
    from the folder's `model_config.json`, tokenizer from its `tokenizer/` (or `tokenizer`, explicit).
    `long_context` (inference-only settings) replaces the folder's when given."""
    folder = open_checkpoint_folder(checkpoint)
    cfg = folder.model_config()
    if long_context is not None:
        cfg = dataclasses.replace(cfg, long_context=long_context)
    if tokenizer:
        tok = load_tokenizer(tokenizer)
    elif (files := folder.tokenizer_files()) is not None:
        tok = files.load()
    else:
        raise FileNotFoundError(f"{folder.root}: no tokenizer/ folder; give one with tokenizer=<dir>")
    return export_checkpoint(folder.checkpoint, output, cfg, tok, dtype=dtype)


# ------------------------------------------------------------------------------------------------ import


def read_hf_folder(path: str | Path) -> tuple[ModelConfig, dict[str, torch.Tensor], QwenTokenizer | None]:
    """(model config, HF tensors in fp32, tokenizer if the folder has a `tokenizer.json`)."""
    from safetensors.torch import load_file

    path = Path(path)
    cfg = read_hf_config(path)
    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{path}: no *.safetensors weights")
    tensors: dict[str, torch.Tensor] = {}
    for file in files:
        tensors.update({k: v.float() for k, v in load_file(str(file)).items()})
    tokenizer = tokenizer_from_hf(path / "tokenizer.json") if (path / "tokenizer.json").is_file() else None
    return cfg, tensors, tokenizer


def read_hf_config(path: str | Path) -> ModelConfig:
    """The `ModelConfig` of an HF Qwen2 folder's `config.json` (no weights read)."""
    path = Path(path)
    config = json.loads((path / "config.json").read_text())
    if config.get("model_type") not in ("qwen2", None):
        raise ValueError(f"{path}: model_type={config.get('model_type')!r}, expected 'qwen2'")
    name = config.get("qwen_hpc", {}).get("model_name", path.name)
    return model_config_from_hf(config, name=name)


def _pad_rows(tensor: torch.Tensor, rows: int) -> torch.Tensor:
    """Embedding padding rows are never looked up: zero-fill new ones, drop surplus ones."""
    if tensor.shape[0] >= rows:
        return tensor[:rows].contiguous()
    return torch.cat([tensor, tensor.new_zeros(rows - tensor.shape[0], *tensor.shape[1:])])


class _NoSchedule:
    """An imported model has no LR schedule yet; the checkpoint records an empty one."""

    def state_dict(self) -> dict[str, Any]:
        return {}


def import_hf(hf_path: str | Path, output: str | Path, *, tp: int = 1, pp: int = 1) -> dict[str, Any]:
    """An HF Qwen2 folder → `<output>/checkpoints/iter_0000000` (+ `latest`), `<output>/model_config.json`
    and, when the folder has a tokenizer, `<output>/tokenizer/<name>.tiktoken` + `special_tokens.json`."""
    cfg, tensors, tokenizer = read_hf_folder(hf_path)
    if cfg.num_attention_heads % tp or cfg.num_layers % pp:
        raise ValueError(f"tp={tp} must divide the heads and pp={pp} the layers of {cfg}")
    rows_hf = tensors["model.embed_tokens.weight"].shape[0]
    n_vocab = tokenizer.n_vocab if tokenizer is not None else rows_hf
    rows = padded_vocab_size(n_vocab, cfg, tp)
    state = hf_to_megatron(tensors, cfg)
    for key in ("embedding.word_embeddings.weight", "output_layer.weight"):
        state[key] = _pad_rows(state[key], rows)
    output = Path(output)
    with atomic_dir(output) as tmp:
        with single_process_megatron():
            model = model_from_state(cfg, state)
            save_checkpoint(
                tmp / "checkpoints",
                TrainingState(extra={"imported_from": str(hf_path), "tp": tp, "pp": pp}),
                model=model,
                optimizer=None,
                scheduler=_NoSchedule(),
                keep_last=1,
            )
        write_folder_description(tmp, cfg, tokenizer)
    return {"vocab_rows": rows, "n_vocab": n_vocab, "tp": tp, "pp": pp, "layers": cfg.num_layers}
