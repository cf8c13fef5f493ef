"""Perplexity against context length for the long-context settings of Qwen §2.5 (the paper's Table 3).

Every length is scored on the *same* held-out documents (each at least as long as the longest length), each
truncated to the length: position t's token is predicted from the t tokens before it, and the perplexity of a
length is exp(mean loss over all its predicted tokens) — the whole window, as a user feeding that much text
sees it, so a setting that breaks past the training length shows up at every longer length. One forward per
batch of documents runs through the KV-cache decoder (the prefill path: alpha fixed from the whole length),
with the LM head applied in slices so 32k-token windows never hold [T, vocab] logits at once.

`perplexity_vs_length` is the whole evaluation as the `long_context` stage runs it: held-out documents ->
every (setting, length) cell, resumable through a JSONL file of finished cells -> a `PerplexityTable`,
which renders the stage's outputs (`summary`, `markdown`, `metrics`, `wandb_table`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from qwen_hpc.inference.decoder import KVCacheDecoder
from qwen_hpc.model.config import ModelConfig
from qwen_hpc.model.long_context import LongContextConfig, setting_config
from qwen_hpc.utils.io import append_jsonl, read_jsonl

log = logging.getLogger(__name__)


def held_out_documents(
    prefixes: Sequence[str | Path], split: str, part: str, min_tokens: int, limit: int
) -> list[np.ndarray]:
    """Up to `limit` documents of at least `min_tokens` tokens from the `part` ("valid" | "test") document
    range of every indexed dataset — the ranges Megatron's GPTDataset holds out of training for `split` —
    taken round-robin over the sources so each contributes."""
    from megatron.core.datasets.blended_megatron_dataset_config import (
        convert_split_vector_to_split_matrix,
        parse_and_normalize_split,
    )
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    column = {"valid": 1, "test": 2}[part]
    bounds = convert_split_vector_to_split_matrix(parse_and_normalize_split(split))[column]
    if bounds is None:
        raise ValueError(f"train.split={split!r} has no {part} part to take held-out documents from")
    per_source: list[list[np.ndarray]] = []
    for prefix in prefixes:
        dataset = IndexedDataset(str(prefix))
        n = len(dataset)
        begin, end = int(round(bounds[0] * n)), int(round(bounds[1] * n))
        lengths = dataset.sequence_lengths[begin:end]
        # copies: the dataset's memory map closes with it
        per_source.append(
            [np.array(dataset[begin + i], dtype=np.int64) for i in np.flatnonzero(lengths >= min_tokens)]
        )
    docs: list[np.ndarray] = []
    for row in range(max((len(s) for s in per_source), default=0)):
        docs.extend(s[row] for s in per_source if row < len(s))
    return docs[:limit]


@dataclass
class LengthScore:
    nll_sum: float = 0.0
    tokens: int = 0

    @property
    def perplexity(self) -> float:
        return math.exp(self.nll_sum / self.tokens) if self.tokens else float("nan")


@torch.inference_mode()
def sequence_nll(
    model: object,
    ids: torch.Tensor,
    long_context: LongContextConfig,
    *,
    train_length: int,
    vocab_size: int,
    attention_chunk: int = 1024,
    head_chunk: int = 1024,
) -> tuple[float, int]:
    """(sum of next-token losses, number of predicted tokens) over `ids` [b, T + 1] (inputs then targets)."""
    inputs, targets = ids[:, :-1], ids[:, 1:]
    b, t = inputs.shape
    decoder = KVCacheDecoder(
        model, b, t, long_context=long_context, train_length=train_length, attention_chunk=attention_chunk
    )
    hidden = decoder.hidden(inputs, torch.arange(t)[None].expand(b, t), torch.ones(b, t, dtype=torch.bool))
    total = 0.0
    for start in range(0, t, head_chunk):
        logits = decoder.logits(hidden[:, start : start + head_chunk])[..., :vocab_size]
        total += float(
            F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]),
                targets[:, start : start + head_chunk].reshape(-1).to(logits.device),
                reduction="sum",
            )
        )
    return total, b * t


def score_length(
    model: object,
    documents: Sequence[np.ndarray],
    length: int,
    config: LongContextConfig,
    *,
    train_length: int,
    vocab_size: int,
    batch_size: int = 1,
    attention_chunk: int = 1024,
) -> LengthScore:
    """One cell of the table: every document's first `length` + 1 tokens under one setting."""
    short = sum(len(d) < length + 1 for d in documents)
    if short or not documents:
        raise ValueError(
            f"scoring at length {length} needs documents of >= {length + 1} tokens; "
            f"got {len(documents)} documents, {short} shorter"
        )
    score = LengthScore()
    for start in range(0, len(documents), batch_size):
        rows = [
            torch.from_numpy(d[: length + 1].astype(np.int64)) for d in documents[start : start + batch_size]
        ]
        nll, tokens = sequence_nll(
            model,
            torch.stack(rows),
            config,
            train_length=train_length,
            vocab_size=vocab_size,
            attention_chunk=attention_chunk,
        )
        score.nll_sum += nll
        score.tokens += tokens
    return score


def table_markdown(table: dict[str, dict[int, float]], lengths: Sequence[int], train_length: int) -> str:
    """The perplexity table in the paper's Table-3 layout: one row per setting, one column per length."""
    head = "| setting | " + " | ".join(f"{n} ({n / train_length:g}L)" for n in lengths) + " |"
    rule = "|---|" + "---|" * len(lengths)
    rows = [
        f"| {name} | " + " | ".join(f"{row[n]:.2f}" for n in lengths) + " |" for name, row in table.items()
    ]
    return "\n".join([head, rule, *rows]) + "\n"


def context_lengths(multiples: Sequence[float], train_length: int) -> list[int]:
    """The lengths of the table, in tokens: each multiple of the training length (at least 2), sorted."""
    return sorted({max(2, round(x * train_length)) for x in multiples})


Cell = dict  # {"setting", "length", "nll_sum", "tokens"}: one finished cell of the table, as recorded


def score_cells(
    model: object,
    documents: Sequence[np.ndarray],
    lengths: Sequence[int],
    settings: Sequence[str],
    windows: LongContextConfig,
    *,
    train_length: int,
    vocab_size: int,
    done: dict[tuple[str, int], Cell],
    record: Callable[[Cell], None],
    should_stop: Callable[[], bool] = lambda: False,
    batch_size: int = 1,
    attention_chunk: int = 1024,
) -> bool:
    """Score every (setting, length) cell not yet in `done`, in table order. Each cell goes to `record` (and
    into `done`) as soon as it is scored, so a stopped run resumes at the next cell. `windows` carries the
    model's window settings, `setting_config` turns them into each setting's. False if `should_stop` asked
    to stop before the table was complete."""
    for setting in settings:
        for length in lengths:
            if (setting, length) in done:
                continue
            if should_stop():
                return False
            score = score_length(
                model,
                documents,
                length,
                setting_config(setting, windows),
                train_length=train_length,
                vocab_size=vocab_size,
                batch_size=batch_size,
                attention_chunk=attention_chunk,
            )
            cell = {"setting": setting, "length": length, "nll_sum": score.nll_sum, "tokens": score.tokens}
            record(cell)
            done[(setting, length)] = cell
    return True


def perplexity_table(
    done: dict[tuple[str, int], Cell], settings: Sequence[str], lengths: Sequence[int]
) -> dict[str, dict[int, float]]:
    """setting -> length -> perplexity of the finished cells."""
    return {
        s: {n: LengthScore(done[(s, n)]["nll_sum"], done[(s, n)]["tokens"]).perplexity for n in lengths}
        for s in settings
    }


def table_summary(table: dict[str, dict[int, float]], lengths: Sequence[int], train_length: int) -> dict:
    """The Table-3 shape of `perplexity.json`: perplexities and their ratio to the training length's."""
    return {
        "perplexity": {s: {str(n): row[n] for n in lengths} for s, row in table.items()},
        "relative_to_train_length": {
            s: {str(n): row[n] / row[train_length] for n in lengths}
            for s, row in table.items()
            if train_length in row
        },
    }


@dataclass
class PerplexityTable:
    """The Table-3 evaluation of one model: its cells as far as they got (`finished` when all are in)."""

    train_length: int
    lengths: list[int]
    settings: list[str]
    documents: int
    layer_windows: list[int]
    cells: dict[tuple[str, int], Cell]
    finished: bool

    @property
    def table(self) -> dict[str, dict[int, float]]:
        return perplexity_table(self.cells, self.settings, self.lengths)

    def summary(self) -> dict[str, Any]:
        """What `perplexity.json` holds (the caller adds where the model came from)."""
        return {
            "train_length": self.train_length,
            "lengths": self.lengths,
            "settings": list(self.settings),
            **table_summary(self.table, self.lengths, self.train_length),
            "documents": self.documents,
            "tokens_per_length": {str(n): self.cells[(self.settings[0], n)]["tokens"] for n in self.lengths},
            "layer_windows": self.layer_windows,
        }

    def markdown(self) -> str:
        return table_markdown(self.table, self.lengths, self.train_length)

    def metrics(self) -> dict[str, float]:
        """`ppl/<setting>/<length>`, rounded as the run's summary shows them."""
        return {f"ppl/{s}/{n}": round(row[n], 4) for s, row in self.table.items() for n in self.lengths}

    def wandb_table(self) -> tuple[list[str], list[list[Any]]]:
        """(columns, rows) of the W&B table: one row per setting."""
        rows = [[s, *row.values()] for s, row in self.table.items()]
        return ["setting", *[str(n) for n in self.lengths]], rows


def read_cells(path: Path) -> dict[tuple[str, int], Cell]:
    """The cells a previous (preempted) run finished, by (setting, length)."""
    return {(r["setting"], int(r["length"])): r for r in read_jsonl(path)}


def _long_enough_documents(
    prefixes: Sequence[str | Path], split: str, held_out: str, min_tokens: int, limit: int
) -> list[np.ndarray]:
    documents = held_out_documents(prefixes, split, held_out, min_tokens, limit)
    if not documents:
        raise ValueError(
            f"no held-out ({held_out}) document of the tokens stage has >= {min_tokens} tokens; "
            "lower long_context.lengths or give a corpus with longer documents"
        )
    if len(documents) < limit:
        log.warning("only %d held-out documents reach %d tokens", len(documents), min_tokens)
    return documents


def perplexity_vs_length(
    model: object,
    model_cfg: ModelConfig,
    prefixes: Sequence[str | Path],
    *,
    split: str,
    held_out: str,
    multiples: Sequence[float],
    settings: Sequence[str],
    num_documents: int,
    vocab_size: int,
    cells_path: Path,
    should_stop: Callable[[], bool] = lambda: False,
    batch_size: int = 1,
    attention_chunk: int = 1024,
    source: str = "",
) -> PerplexityTable:
    """Score `model` (built from `model_cfg`) at `multiples` of its training length on up to `num_documents`
    held-out documents of the indexed datasets `prefixes` (`held_out` part of `split`), under each setting.
    Cells already in `cells_path` are kept; each new one is appended as soon as it is scored. Call inside
    `single_process_megatron()`; `source` only names the model in the log."""
    train_length = model_cfg.seq_length
    lengths = context_lengths(multiples, train_length)
    documents = _long_enough_documents(prefixes, split, held_out, max(lengths) + 1, num_documents)
    windows = model_cfg.long_context
    widest = setting_config("dynamic_ntk+logn+window", windows)
    layer_windows = widest.windows(model_cfg.num_layers, train_length)
    log.info("scoring %s (train length %d) on %d documents at %s; windows per layer %s", source, train_length,
             len(documents), lengths, layer_windows)

    def record(cell: Cell) -> None:
        append_jsonl(cells_path, cell)
        perplexity = LengthScore(cell["nll_sum"], cell["tokens"]).perplexity
        log.info("%-26s length %6d: perplexity %.3f", cell["setting"], cell["length"], perplexity)

    done = read_cells(cells_path)
    finished = score_cells(model, documents, lengths, settings, windows, train_length=train_length,
                           vocab_size=vocab_size, done=done, record=record, should_stop=should_stop,
                           batch_size=batch_size, attention_chunk=attention_chunk)
    return PerplexityTable(
        train_length, lengths, list(settings), len(documents), layer_windows, cells=done, finished=finished
    )
