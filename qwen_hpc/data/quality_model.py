"""A learned quality score, trained inside the pipeline (Qwen report §2.1: "text-quality scoring models";
architecture UNCONFIRMED). As GPT-3 did for Common Crawl (Brown et al. 2020, appendix A): a linear
classifier that tells a reference set of good text (label 1) from the raw pool (label 0); a document
scoring below a threshold is dropped as `quality_model`. The score is the log-odds (it does not saturate
the way a probability does when the two sets separate well); the threshold is configured or, by default, the
`drop_quantile` quantile of the pool's scores.

Features: hashed (BLAKE2b word hashes, `text.words`) unigrams and bigrams into 2**hash_bits buckets,
log(1 + count), each document's vector scaled to unit L2 norm. Model: logistic regression, full-batch
gradient descent with L2 (numpy only, deterministic). Classes are balanced by weighting. A seeded 10 %
of both sets is held out and its accuracy reported, so `quality_model.json` records what was trained on,
how well it separates and which threshold was applied.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qwen_hpc.data.config import QualityModelConfig
from qwen_hpc.data.document import Document
from qwen_hpc.data.filters import Filter
from qwen_hpc.data.text import mix64, word_hashes, words

MAX_WORDS = 2000  # a document's score looks at its first words only


def features(texts: list[str], bits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sparse (row, column, value) triplets of the hashed 1+2-gram features."""
    rows, cols, vals = [], [], []
    mask = np.uint64((1 << bits) - 1)
    for r, text in enumerate(texts):
        h = word_hashes(words(text)[:MAX_WORDS])
        if not len(h):
            continue
        with np.errstate(over="ignore"):
            grams = np.concatenate([h, mix64(h[:-1] * np.uint64(0x9E3779B97F4A7C15) + h[1:])])
        col, count = np.unique((mix64(grams) & mask).astype(np.int64), return_counts=True)
        val = np.log1p(count.astype(np.float64))
        val /= np.linalg.norm(val)
        rows.append(np.full(len(col), r, dtype=np.int64))
        cols.append(col)
        vals.append(val)
    if not rows:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0)
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)


def _logits(w: np.ndarray, bias: float, n: int, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray) -> np.ndarray:
    return np.bincount(rows, weights=w[cols] * vals, minlength=n) + bias


@dataclass
class QualityModel:
    weights: np.ndarray
    bias: float
    bits: int
    threshold: float = 0.0

    def score(self, texts: list[str]) -> np.ndarray:
        """Log-odds of "reference-like" for each text."""
        rows, cols, vals = features(texts, self.bits)
        return _logits(self.weights, self.bias, len(texts), rows, cols, vals)

    def save(self, path: Path, threshold: float) -> None:
        from qwen_hpc.utils.io import atomic_path

        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, weights=self.weights, bias=np.float64(self.bias), bits=np.int64(self.bits),
                     threshold=np.float64(threshold))

    @classmethod
    def load(cls, path: Path) -> QualityModel:
        with np.load(path) as z:
            return cls(z["weights"], float(z["bias"]), int(z["bits"]), float(z["threshold"]))


def _split(n: int, seed: int) -> np.ndarray:
    """Held-out mask: a seeded 10 % (at least one) of n items."""
    rng = np.random.Generator(np.random.PCG64(seed))
    mask = np.zeros(n, dtype=bool)
    mask[rng.permutation(n)[: max(1, n // 10)]] = True
    return mask


def train(
    reference: list[str], pool: list[str], cfg: QualityModelConfig
) -> tuple[QualityModel, float, dict[str, Any]]:
    """(model, threshold, record of the training set and results)."""
    if len(reference) < 2 or len(pool) < 2:
        raise ValueError(f"quality model: need >= 2 reference and pool documents, got {len(reference)}, {len(pool)}")
    texts = reference + pool
    y = np.r_[np.ones(len(reference)), np.zeros(len(pool))]
    held = np.r_[_split(len(reference), cfg.seed), _split(len(pool), cfg.seed + 1)]
    rows, cols, vals = features(texts, cfg.hash_bits)
    n, dim = len(texts), 1 << cfg.hash_bits
    train_rows = ~held[rows]
    tr, tc, tv = rows[train_rows], cols[train_rows], vals[train_rows]
    sample_w = np.where(y == 1, 0.5 / max(1, (~held & (y == 1)).sum()), 0.5 / max(1, (~held & (y == 0)).sum()))
    sample_w[held] = 0.0
    w, bias = np.zeros(dim), 0.0
    for _ in range(cfg.epochs):  # full-batch gradient descent on the weighted logistic loss
        p = 1.0 / (1.0 + np.exp(-np.clip(_logits(w, bias, n, tr, tc, tv), -50, 50)))
        g = (p - y) * sample_w
        grad = np.bincount(tc, weights=g[tr] * tv, minlength=dim) + cfg.l2 * w
        w -= cfg.learning_rate * grad
        bias -= cfg.learning_rate * float(g.sum())
    model = QualityModel(w, bias, cfg.hash_bits)
    z = _logits(w, bias, n, rows, cols, vals)
    correct = (z >= 0) == (y == 1)
    pool_scores = z[len(reference):]
    threshold = cfg.threshold if cfg.threshold is not None else float(np.quantile(pool_scores, cfg.drop_quantile))
    info = {
        "kind": "hashed 1+2-gram logistic regression",
        "reference_documents": len(reference),
        "pool_documents": len(pool),
        "reference_sha256": _digest(reference),
        "pool_sha256": _digest(pool),
        "train_accuracy": round(float(correct[~held].mean()), 4),
        "heldout_accuracy": round(float(correct[held].mean()), 4),
        "pool_below_threshold": round(float((pool_scores < threshold).mean()), 4),
        "threshold": threshold,
        "threshold_from": "configured" if cfg.threshold is not None else f"pool quantile {cfg.drop_quantile}",
        "pool_score_quantiles": {str(q): round(float(np.quantile(pool_scores, q)), 4) for q in (0.01, 0.1, 0.5, 0.9)},
        "hash_bits": cfg.hash_bits,
        "epochs": cfg.epochs,
    }
    return model, threshold, info


def _digest(texts: list[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(hashlib.sha256(t.encode("utf-8", "surrogatepass")).digest())
    return h.hexdigest()


def builtin_reference(min_chars: int = 200) -> list[str]:
    """Paragraph groups of the Python language reference (`pydoc_data.topics`, stdlib): edited prose."""
    from pydoc_data.topics import topics

    out = []
    for key in sorted(topics):
        block: list[str] = []
        for para in topics[key].split("\n\n"):
            block.append(para.strip())
            if sum(len(b) for b in block) >= min_chars:
                out.append("\n\n".join(block))
                block = []
    return out


class QualityModelFilter(Filter):
    """Drops a `text`-kind document scoring below the threshold; stores the score in meta either way.
    Scores one document at a time here; `score_many` is the batched form the shard step uses."""

    name = "quality_model"

    def __init__(self, model: QualityModel, kinds: dict[str, str]) -> None:
        super().__init__()
        self.model, self.threshold, self.kinds = model, model.threshold, kinds

    def filter(self, doc: Document) -> str | None:
        if self.kinds.get(doc.source) == "code":
            return None
        score = float(self.model.score([doc.text])[0])
        doc.meta["quality_score"] = round(score, 4)
        if score < self.threshold:
            doc.error_detail = f"score {score:.3f} < threshold {self.threshold:.3f}"
            return "quality_model"
        return None
