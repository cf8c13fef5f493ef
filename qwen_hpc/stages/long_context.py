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
CONFIG_KEYS = ("model", "long_context")
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
    from qwen_hpc.evaluation.long_context import LengthScore, held_out_documents, score_length, table_markdown
    from qwen_hpc.model.long_context import setting_config
    from qwen_hpc.parallel import single_process_megatron
    from qwen_hpc.report.plots import perplexity_vs_length_png
    from qwen_hpc.utils.io import append_jsonl, write_bytes, write_json, write_text

    lc = cfg.long_context
    tokens = outputs.read_blend(ctx.stage_path("tokens"))
    n_vocab = tokens.n_vocab
    cells_path = ctx.stage_dir / CELLS
    done = _read_cells(cells_path)
    with single_process_megatron(seed=cfg.run.seed):
        model, model_cfg, source = _open_model(cfg, ctx, n_vocab)
        train_length = model_cfg.seq_length
        lengths = sorted({max(2, round(x * train_length)) for x in lc.lengths})
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
        for setting in lc.settings:
            for length in lengths:
                if (setting, length) in done:
                    continue
                if ctx.should_stop():
                    return StageResult("preempted", metrics={"cells_done": len(done)})
                score = score_length(
                    model,
                    documents,
                    length,
                    setting_config(setting, windows),
                    train_length=train_length,
                    vocab_size=n_vocab,
                    batch_size=lc.batch_size,
                    attention_chunk=lc.attention_chunk,
                )
                cell = {
                    "setting": setting,
                    "length": length,
                    "nll_sum": score.nll_sum,
                    "tokens": score.tokens,
                }
                append_jsonl(cells_path, cell)
                done[(setting, length)] = cell
                log.info("%-26s length %6d: perplexity %.3f", setting, length, score.perplexity)
    table = {
        s: {n: LengthScore(done[(s, n)]["nll_sum"], done[(s, n)]["tokens"]).perplexity for n in lengths}
        for s in lc.settings
    }
    result = {
        "train_length": train_length,
        "lengths": lengths,
        "settings": list(lc.settings),
        "perplexity": {s: {str(n): row[n] for n in lengths} for s, row in table.items()},
        "relative_to_train_length": {
            s: {str(n): row[n] / row[train_length] for n in lengths}
            for s, row in table.items()
            if train_length in row
        },
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
