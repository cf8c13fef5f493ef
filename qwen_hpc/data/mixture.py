"""The mixture (Qwen report §2.1 "selective up-sampling"; mixture proportions UNCONFIRMED, spec §1.1):
per-source upsampling factors under an optional token budget.

Tokens are estimated as UTF-8 bytes / `bytes_per_token` (the tokenizer is trained later, on this output).
Without a budget a source's weight is its `upsample`. With `target_tokens`, the upsampled token counts are
scaled by one factor so they add up to the budget; a source whose share falls below one epoch keeps a
fixed pseudo-random subset of its documents (ordered by a seeded hash of the id, so the choice does not
depend on the reading order) and the others are dropped as `over_budget`; a source above one epoch keeps
everything and its weight says how many epochs the `tokens` stage blends in.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from qwen_hpc.data.config import MixtureConfig


@dataclass
class SourcePlan:
    name: str
    tokens: float  # estimated tokens of the documents that survived curation
    upsample: float
    target_tokens: float
    weight: float  # what the manifest carries: the epochs the tokens stage blends in
    keep: np.ndarray  # bool per surviving document (False: over_budget)


def _order_key(doc_id: str, seed: int) -> int:
    return int.from_bytes(hashlib.blake2b(doc_id.encode(), digest_size=8, key=seed.to_bytes(8, "little")).digest(), "little")


def plan_mixture(
    cfg: MixtureConfig, names: list[str], upsample: list[float], nbytes: list[np.ndarray], ids: list[list[str]]
) -> list[SourcePlan]:
    tokens = [float(b.sum()) / cfg.bytes_per_token for b in nbytes]
    wanted = [t * u for t, u in zip(tokens, upsample, strict=True)]
    scale = cfg.target_tokens / sum(wanted) if cfg.target_tokens and sum(wanted) > 0 else 1.0
    plans = []
    for name, t, u, b, doc_ids in zip(names, tokens, upsample, nbytes, ids, strict=True):
        epochs = u * scale
        keep = np.ones(len(b), dtype=bool)
        if epochs < 1.0 and len(b):
            order = sorted(range(len(b)), key=lambda i: _order_key(doc_ids[i], cfg.seed))
            budget_bytes = epochs * float(b.sum())
            cum = np.cumsum(b[order])
            take = int(np.searchsorted(cum, budget_bytes, side="right"))
            keep[:] = False
            keep[np.array(order[: max(take, 0)], dtype=np.int64)] = True
            epochs = 1.0
        plans.append(SourcePlan(name, t, u, t * u * scale, round(epochs, 6), keep))
    return plans
