"""Stage `long_context` (Qwen report §2.5, Table 3): perplexity at L/2 … 16L of the training length L on
held-out long documents, for plain RoPE, + dynamic NTK, + LogN, + layer-wise window attention.

The documents are the tokens stage's own, from the document range the pretrain split held out (so the
model never trained on them), each at least the longest length long. The model is the pretrain stage's
latest checkpoint, or — `checkpoint=<dir>` — an exported HF folder or an `import_hf` folder, scored with the
same code (its tokenizer must be the tokens stage's). Every cell of the table is appended to `cells.jsonl` as
it finishes, so a preempted run resumes at the next cell. Outputs: `perplexity.json` (Table-3 shape),
`table.md`, `perplexity.png`, and a W&B table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qwen_hpc.config.schema import QwenConfig
from qwen_hpc.stages.base import StageContext, StageResult

NAME = "long_context"
DESCRIPTION = "perplexity vs context length: plain / +dynamic NTK / +LogN / +window attention (Table 3)"
CONFIG_KEYS = ("model", "model.long_context", "long_context")  # model.long_context: inference settings
UPSTREAM = ("tokens", "pretrain")
DISTRIBUTED = False

CELLS = "cells.jsonl"


def _open_model(cfg: QwenConfig, ctx: StageContext, n_vocab: int) -> tuple[Any, Any, str]:
    """(model, its ModelConfig, where it came from). Call inside `single_process_megatron()`."""
    from qwen_hpc.inference.loading import open_model, open_model_config
    from qwen_hpc.interop.hf_checkpoint import load_model, resolve_checkpoint
    from qwen_hpc.outputs import checkpoints_dir

    if not cfg.long_context.checkpoint:
        path = resolve_checkpoint(checkpoints_dir(ctx.stage_path("pretrain")))
        return load_model(path, cfg.model), cfg.model, str(path)
    path = Path(cfg.long_context.checkpoint)
    model, tokenizer = open_model(path)
    if tokenizer.n_vocab != n_vocab:
        raise ValueError(
            f"long_context.checkpoint={path}: its tokenizer has {tokenizer.n_vocab} ids, the tokens stage's "
            f"{n_vocab}; the held-out documents are encoded with the tokens stage's tokenizer"
        )
    return model, open_model_config(path), str(path)


def run(cfg: QwenConfig, ctx: StageContext) -> StageResult:
    from qwen_hpc import outputs
    from qwen_hpc.evaluation.long_context import perplexity_vs_length
    from qwen_hpc.parallel import single_process_megatron
    from qwen_hpc.report.plots import perplexity_vs_length_png
    from qwen_hpc.utils.io import write_bytes, write_json, write_text

    lc = cfg.long_context
    tokens = outputs.read_blend(ctx.stage_path("tokens"))
    with single_process_megatron(seed=cfg.run.seed):
        model, model_cfg, source = _open_model(cfg, ctx, tokens.n_vocab)
        result = perplexity_vs_length(
            model,
            model_cfg,
            [prefix for prefix, _ in tokens.pairs],
            split=cfg.pretrain.train.split,
            held_out=lc.held_out,
            multiples=lc.lengths,
            settings=lc.settings,
            num_documents=lc.num_documents,
            vocab_size=tokens.n_vocab,
            cells_path=ctx.stage_dir / CELLS,
            should_stop=ctx.should_stop,
            batch_size=lc.batch_size,
            attention_chunk=lc.attention_chunk,
            source=source,
        )
    if not result.finished:
        return StageResult("preempted", metrics={"cells_done": len(result.cells)})

    write_json(ctx.stage_dir / "perplexity.json", {**result.summary(), "checkpoint": source})
    write_text(ctx.stage_dir / "table.md", result.markdown())
    png = perplexity_vs_length_png(result.table, result.train_length,
                                   title=f"{cfg.run.name}: perplexity vs context length")
    write_bytes(ctx.stage_dir / "perplexity.png", png)
    ctx.tracker.log_table("long_context/perplexity", *result.wandb_table())
    metrics = result.metrics()
    ctx.tracker.log(metrics)
    return StageResult(
        "completed",
        metrics={**metrics, "documents": result.documents},
        outputs={"table": str(ctx.stage_dir / "perplexity.json"),
                 "plot": str(ctx.stage_dir / "perplexity.png")},
    )
