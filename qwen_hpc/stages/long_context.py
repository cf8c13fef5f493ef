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

import logging
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
log = logging.getLogger(__name__)


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


def _read_cells(path: Path) -> dict[tuple[str, int], dict[str, Any]]:
    from qwen_hpc.utils.io import read_jsonl

    return {(r["setting"], int(r["length"])): r for r in read_jsonl(path)}


def run(cfg: QwenConfig, ctx: StageContext) -> StageResult:
    from qwen_hpc import outputs
    from qwen_hpc.evaluation.long_context import (
        LengthScore,
        context_lengths,
        held_out_documents,
        perplexity_table,
        score_cells,
        table_markdown,
        table_summary,
    )
    from qwen_hpc.model.long_context import setting_config
    from qwen_hpc.parallel import single_process_megatron
    from qwen_hpc.report.plots import perplexity_vs_length_png
    from qwen_hpc.utils.io import append_jsonl, write_bytes, write_json, write_text

    # Over 60 lines only because it wires many outputs; it reads top to bottom: inputs -> model and held-out
    # documents -> cells (evaluation.long_context.score_cells, resumable) -> table -> files, W&B, metrics.
    lc = cfg.long_context
    tokens = outputs.read_blend(ctx.stage_path("tokens"))
    cells_path = ctx.stage_dir / CELLS
    done = _read_cells(cells_path)
    with single_process_megatron(seed=cfg.run.seed):
        model, model_cfg, source = _open_model(cfg, ctx, tokens.n_vocab)
        train_length = model_cfg.seq_length
        lengths = context_lengths(lc.lengths, train_length)
        documents = held_out_documents(
            [prefix for prefix, _ in tokens.pairs],
            cfg.pretrain.train.split,
            lc.held_out,
            max(lengths) + 1,
            lc.num_documents,
        )
        if not documents:
            raise ValueError(
                f"no held-out ({lc.held_out}) document of the tokens stage has >= {max(lengths) + 1} tokens; "
                "lower long_context.lengths or give a corpus with longer documents"
            )
        if len(documents) < lc.num_documents:
            log.warning("only %d held-out documents reach %d tokens", len(documents), max(lengths) + 1)
        windows = model_cfg.long_context
        layer_windows = setting_config("dynamic_ntk+logn+window", windows).windows(
            model_cfg.num_layers, train_length
        )
        log.info(
            "scoring %s (train length %d) on %d documents at %s; windows per layer %s",
            source,
            train_length,
            len(documents),
            lengths,
            layer_windows,
        )

        def record(cell: dict) -> None:
            append_jsonl(cells_path, cell)
            perplexity = LengthScore(cell["nll_sum"], cell["tokens"]).perplexity
            log.info("%-26s length %6d: perplexity %.3f", cell["setting"], cell["length"], perplexity)

        finished = score_cells(
            model,
            documents,
            lengths,
            lc.settings,
            windows,
            train_length=train_length,
            vocab_size=tokens.n_vocab,
            done=done,
            record=record,
            should_stop=ctx.should_stop,
            batch_size=lc.batch_size,
            attention_chunk=lc.attention_chunk,
        )
        if not finished:
            return StageResult("preempted", metrics={"cells_done": len(done)})
    table = perplexity_table(done, lc.settings, lengths)
    result = {
        "train_length": train_length,
        "lengths": lengths,
        "settings": list(lc.settings),
        **table_summary(table, lengths, train_length),
        "documents": len(documents),
        "tokens_per_length": {str(n): done[(lc.settings[0], n)]["tokens"] for n in lengths},
        "layer_windows": layer_windows,
        "checkpoint": source,
    }
    write_json(ctx.stage_dir / "perplexity.json", result)
    write_text(ctx.stage_dir / "table.md", table_markdown(table, lengths, train_length))
    png = perplexity_vs_length_png(table, train_length, title=f"{cfg.run.name}: perplexity vs context length")
    write_bytes(ctx.stage_dir / "perplexity.png", png)
    ctx.tracker.log_table(
        "long_context/perplexity",
        ["setting", *[str(n) for n in lengths]],
        [[s, *row.values()] for s, row in table.items()],
    )
    metrics = {f"ppl/{s}/{n}": round(row[n], 4) for s, row in table.items() for n in lengths}
    ctx.tracker.log(metrics)
    return StageResult(
        "completed",
        metrics={**metrics, "documents": len(documents)},
        outputs={
            "table": str(ctx.stage_dir / "perplexity.json"),
            "plot": str(ctx.stage_dir / "perplexity.png"),
        },
    )
