"""Fuzzy deduplication with MinHash + LSH (Qwen report §2.1; spec §1.2: "fuzzy dedup with MinHash + LSH",
parameters UNCONFIRMED — ours are in `MinHashConfig`).

Three steps, split so that the expensive one scales out:

1. `MinHasher.signatures(texts)` — per shard, embarrassingly parallel (a Slurm array task or a local
   process each): shingles (`shingle_size` normalized words, or characters) are hashed to 64 bits
   (`text.ngram_hashes`), and permutation k maps a shingle hash h to the high 32 bits of `a_k*h + b_k`
   (mod 2**64, `a_k` odd: a multiply-shift universal family). A document's signature is the minimum over
   its shingles, for all permutations at once, with numpy over thousands of shingles per call.
2. `candidate_pairs(signatures)` — in one process (`data.lsh` runs the same per band range, as map tasks,
   in the data stage): signatures are cut into `bands` x `rows`; documents
   whose band agrees on every row share a bucket. Each bucket member is paired with the bucket's first
   member and with its predecessor (enough for connected components, and linear in the bucket size).
3. `verify` + `clusters` — a candidate pair is kept when its Jaccard similarity is >= `threshold`: by
   default the exact Jaccard of the two shingle sets (`exact_jaccard`; the shingles are recomputed from the
   text of the documents that are in some candidate pair, a small share of the corpus), or with
   `verify="estimate"` the MinHash estimate (share of equal min-hashes: no text needed, but its standard
   error at J=0.8 and 128 min-hashes is ~0.035, so pairs just above the threshold are often lost).
   Connected components of the kept pairs are the duplicate clusters and the member that comes first in
   reading order survives.

Everything is a pure function of the text and the config (fixed seeds, BLAKE2b word hashes), so one process,
several processes and a Slurm array give the same signatures and the same clusters.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from qwen_hpc.data.config import MinHashConfig
from qwen_hpc.data.text import (
    char_codes,
    mix64,
    ngram_hashes,
    sorted_unique,
    word_hashes,
    words,
)

EMPTY = np.uint32(0xFFFFFFFF)
_ROTATION = np.uint32(0x9E3779B1)  # odd offset per step of densification
_CHUNK_ROWS = 16384  # shingles per vectorised step: 16384 x 128 x 8 bytes = 16 MiB of temporaries


def lsh_params(num_perm: int, threshold: float, min_recall: float = 0.99) -> tuple[int, int]:
    """(bands, rows): the most rows per band (fewest chance candidates) for which a pair exactly at the
    threshold still becomes a candidate with probability >= `min_recall`; bands = num_perm // rows."""
    best = (num_perm, 1)
    for rows in range(1, num_perm + 1):
        bands = num_perm // rows
        if bands < 1:
            break
        if 1.0 - (1.0 - threshold**rows) ** bands >= min_recall:
            best = (bands, rows)
    return best


@dataclass(frozen=True)
class LSHParams:
    bands: int
    rows: int

    @classmethod
    def from_config(cls, cfg: MinHashConfig) -> LSHParams:
        if cfg.bands and cfg.rows:
            return cls(cfg.bands, cfg.rows)
        return cls(*lsh_params(cfg.num_perm, cfg.threshold))


class MinHasher:
    def __init__(self, cfg: MinHashConfig) -> None:
        self.cfg = cfg
        rng = np.random.Generator(np.random.PCG64(cfg.seed))
        self.a = rng.integers(0, 2**63, size=cfg.num_perm, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
        self.b = rng.integers(0, 2**63, size=cfg.num_perm, dtype=np.uint64) * np.uint64(2)

    def shingles(self, text: str) -> np.ndarray:
        n = self.cfg.shingle_size
        if self.cfg.shingle == "word":
            return ngram_hashes(word_hashes(words(text)), n)
        return ngram_hashes(char_codes(text), n)

    def shingle_batch(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """`shingles` of many texts at once: (hashes, owner index), grouped by owner in order — the output
        of `text.batch_ngram_hashes`, without its argsort over all shingles (the windows of the
        concatenation are already in owner order; the few short texts are inserted in place)."""
        n = self.cfg.shingle_size
        if self.cfg.shingle == "word":
            seqs = [word_hashes(words(t)) for t in texts]
        else:
            seqs = [char_codes(t) for t in texts]
        lengths = np.array([len(x) for x in seqs], dtype=np.int64)
        if not len(seqs) or not lengths.sum():
            return np.empty(0, dtype=np.uint64), np.empty(0, dtype=np.int64)
        flat = np.concatenate(seqs)
        owner = np.repeat(np.arange(len(seqs), dtype=np.int64), lengths)
        hashes, who = np.empty(0, dtype=np.uint64), np.empty(0, dtype=np.int64)
        if len(flat) >= n:
            m = len(flat) - n + 1
            inside = owner[:m] == owner[n - 1 :]  # windows that do not cross a text boundary
            hashes, who = ngram_hashes(flat, n, short=False)[inside], owner[:m][inside]
        short = np.flatnonzero((lengths > 0) & (lengths < n))
        if len(short):  # one hash of the whole text, at its owner's place
            at = np.searchsorted(who, short)
            hashes = np.insert(hashes, at, np.concatenate([ngram_hashes(seqs[i], n) for i in short.tolist()]))
            who = np.insert(who, at, short)
        return hashes, who

    def signatures(self, texts: list[str]) -> np.ndarray:
        """(len(texts), num_perm) uint32; a text with no shingle (no word at all) gets all-EMPTY rows,
        which `candidate_pairs` never buckets."""
        flat, owner = self.shingle_batch(texts)
        if self.cfg.scheme == "oph":
            return self._oph(flat, owner, len(texts))
        return self._permutations(flat, owner, len(texts))

    def signatures_from_shingles(self, shingle_sets: list[np.ndarray]) -> np.ndarray:
        lengths = np.array([len(s) for s in shingle_sets], dtype=np.int64)
        flat = np.concatenate(shingle_sets) if lengths.sum() else np.empty(0, dtype=np.uint64)
        owner = np.repeat(np.arange(len(shingle_sets), dtype=np.int64), lengths)
        if self.cfg.scheme == "oph":
            return self._oph(flat, owner, len(shingle_sets))
        return self._permutations(flat, owner, len(shingle_sets))

    def _oph(self, flat: np.ndarray, owner: np.ndarray, n_docs: int) -> np.ndarray:
        """One-permutation hashing with rotation densification (Li, Owen & Zhang 2012; Shrivastava & Li
        2014): one extra hash per shingle picks one of `num_perm` bins and a value; a bin keeps its minimum;
        an empty bin borrows the value of the next non-empty bin to its right (circularly) plus
        `distance * C`. Same estimator as num_perm independent permutations (share of equal entries), at
        the cost of one hash per shingle instead of num_perm."""
        k = self.cfg.num_perm
        sig = np.full(n_docs * k, EMPTY, dtype=np.uint32)
        if len(flat):
            with np.errstate(over="ignore"):
                h = mix64(flat * self.a[0] + self.b[0])
            bins = (h >> np.uint64(32)) % np.uint64(k)
            values = (h & np.uint64(0xFFFFFFFE)).astype(np.uint32)  # never EMPTY
            np.minimum.at(sig, owner * k + bins.astype(np.int64), values)
        sig = sig.reshape(n_docs, k)
        empty = sig == EMPTY
        if empty.any():
            twice = np.concatenate([sig, sig], axis=1)
            pos = np.where(np.concatenate([~empty, ~empty], axis=1), np.arange(2 * k), 2 * k)
            nxt = np.minimum.accumulate(pos[:, ::-1], axis=1)[:, ::-1][:, :k]
            has = nxt < 2 * k
            rows = np.nonzero(empty & has)
            dist = (nxt[rows] - rows[1]).astype(np.uint32)
            with np.errstate(over="ignore"):
                sig[rows] = (twice[rows[0], nxt[rows]] + dist * _ROTATION) & np.uint32(0xFFFFFFFE)
        return sig

    def _permutations(self, flat: np.ndarray, owner: np.ndarray, n_docs: int) -> np.ndarray:
        """Classic MinHash: num_perm multiply-shift hashes of every shingle, minimum per document."""
        sig_t = np.full((self.cfg.num_perm, n_docs), EMPTY, dtype=np.uint32)  # permutation-major: fast reduceat
        if not len(flat):
            return np.ascontiguousarray(sig_t.T)
        a, b, shift = self.a[:, None], self.b[:, None], np.uint64(32)
        for start in range(0, len(flat), _CHUNK_ROWS):
            h = flat[None, start : start + _CHUNK_ROWS]
            who = owner[start : start + _CHUNK_ROWS]
            with np.errstate(over="ignore"):
                v = ((a * h + b) >> shift).astype(np.uint32)
            seg = np.flatnonzero(np.r_[True, who[1:] != who[:-1]])  # one segment per document in the chunk
            docs = who[seg]
            sig_t[:, docs] = np.minimum(sig_t[:, docs], np.minimum.reduceat(v, seg, axis=1))
        return np.ascontiguousarray(sig_t.T)


def band_keys(sig: np.ndarray, band: int, rows: int) -> np.ndarray:
    """The LSH bucket of every row of `sig` in `band`: a 64-bit hash of its `rows` min-hashes."""
    part = sig[:, band * rows : (band + 1) * rows].astype(np.uint64)
    coef = mix64(np.arange(1, rows + 1, dtype=np.uint64) + np.uint64(band << 20)) | np.uint64(1)
    with np.errstate(over="ignore"):
        return mix64((part * coef[None, :]).sum(axis=1, dtype=np.uint64))


def candidate_pairs(sig: np.ndarray, params: LSHParams) -> np.ndarray:
    """(k, 2) int64 array of distinct pairs (i < j) of row indices that share at least one LSH bucket."""
    valid = np.flatnonzero(sig[:, 0] != EMPTY) if len(sig) else np.empty(0, dtype=np.int64)
    if len(valid) < 2:
        return np.empty((0, 2), dtype=np.int64)
    sub = sig[valid]
    found = []
    for band in range(params.bands):
        keys = band_keys(sub, band, params.rows)
        order = np.argsort(keys, kind="stable")
        found.append(bucket_pairs(keys[order], order))
    return unique_pairs(valid[np.concatenate(found)], len(sig))


def bucket_pairs(keys: np.ndarray, members: np.ndarray) -> np.ndarray:
    """Candidate pairs of one band: `keys` sorted, `members` in the same order (ascending within a bucket).
    Each member is paired with its bucket's first member and with its predecessor. Beyond one byte per row,
    the work is on the rows that continue a bucket only."""
    same = np.flatnonzero(keys[1:] == keys[:-1]) + 1  # positions continuing a bucket
    if not len(same):
        return np.empty((0, 2), dtype=np.int64)
    head = np.where(np.r_[True, same[1:] != same[:-1] + 1], same - 1, 0)  # a run of `same` is one bucket
    first = np.maximum.accumulate(head)  # position of each bucket's first member
    found = [np.stack([members[first], members[same]], axis=1)]
    prev = same[first != same - 1]  # predecessor pairs not already star pairs
    if len(prev):
        found.append(np.stack([members[prev - 1], members[prev]], axis=1))
    return np.concatenate(found).astype(np.int64)


def unique_pairs(pairs: np.ndarray, n: int) -> np.ndarray:
    """Distinct pairs (i < j) of indices below `n`, sorted."""
    if not len(pairs):
        return np.empty((0, 2), dtype=np.int64)
    pairs = np.sort(pairs, axis=1)
    n = np.int64(n)
    return sorted_unique(pairs[:, 0] * n + pairs[:, 1])[:, None] // np.array([n, 1]) % np.array([n + 1, n])


def estimated_jaccard(sig: np.ndarray, pairs: np.ndarray, chunk: int = 65536) -> np.ndarray:
    out = np.empty(len(pairs), dtype=np.float64)
    for s in range(0, len(pairs), chunk):
        p = pairs[s : s + chunk]
        out[s : s + chunk] = (sig[p[:, 0]] == sig[p[:, 1]]).mean(axis=1)
    return out


def exact_jaccard(flat: np.ndarray, owner: np.ndarray, n_docs: int, pairs: np.ndarray,
                  chunk: int = 16384) -> np.ndarray:
    """Jaccard similarity of the shingle sets of each pair (i, j) of documents 0..n_docs-1, whose shingle
    hashes are `flat` with owner index `owner` (repeats allowed); two empty sets count as identical.
    Vectorised: shingles become dense ids, each pair's two id sets are concatenated and sorted, and an id
    seen twice is one in the intersection."""
    out = np.ones(len(pairs), dtype=np.float64)
    if not len(pairs) or not len(flat):
        return out
    ids = np.unique(flat, return_inverse=True)[1].astype(np.int64).ravel()
    u = np.int64(ids.max() + 1)
    key = sorted_unique(owner.astype(np.int64) * u + ids)  # one entry per (document, distinct shingle)
    doc_of, id_of = key // u, key % u
    start = np.searchsorted(doc_of, np.arange(n_docs + 1))
    size = np.diff(start)
    for s in range(0, len(pairs), chunk):
        a, b = pairs[s : s + chunk, 0], pairs[s : s + chunk, 1]
        la, lb = size[a], size[b]
        lens = la + lb
        if not lens.sum():
            continue
        pair_no = np.repeat(np.arange(len(a), dtype=np.int64), lens)
        offset = np.arange(len(pair_no)) - np.repeat(np.cumsum(lens) - lens, lens)  # position within the pair
        first = offset < np.repeat(la, lens)
        src = np.where(first, np.repeat(start[a], lens) + offset, np.repeat(start[b] - la, lens) + offset)
        k = np.sort(pair_no * u + id_of[src])
        inter = np.bincount(k[1:][k[1:] == k[:-1]] // u, minlength=len(a))
        union = lens - inter
        out[s : s + chunk] = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
    return out


def clusters(n: int, pairs: np.ndarray) -> np.ndarray:
    """Connected components: label[i] = the smallest index in i's component (label propagation with
    pointer jumping, vectorised; converges in about log2(component diameter) rounds)."""
    label = np.arange(n, dtype=np.int64)
    if not len(pairs):
        return label
    i, j = pairs[:, 0], pairs[:, 1]
    while True:
        low = np.minimum(label[i], label[j])
        new = label.copy()
        np.minimum.at(new, i, low)
        np.minimum.at(new, j, low)
        new = new[new]  # pointer jumping
        while not np.array_equal(new, new[new]):
            new = new[new]
        if np.array_equal(new, label):
            return label
        label = new


@dataclass
class NearDuplicates:
    """Result of fuzzy dedup over n documents in reading order."""

    keep: np.ndarray  # bool (n,)
    representative: np.ndarray  # int64 (n,): index of the kept member of each document's cluster
    similarity: np.ndarray  # float64 (n,): best verified Jaccard (exact or estimated) to a cluster member
    candidates: int
    verified: int
    params: LSHParams
    verify: str = "exact"
    texts_read: int = 0  # documents whose shingles were recomputed for exact verification


Texts = Sequence[str] | Callable[[np.ndarray], Sequence[str]]


def near_duplicates(sig: np.ndarray, cfg: MinHashConfig, texts: Texts | None = None) -> NearDuplicates:
    """Fuzzy dedup of the n documents whose signatures are `sig` (n, num_perm). With `cfg.verify == "exact"`
    the candidate pairs are verified on the documents' shingle sets, so `texts` must give their text: either
    all n texts, or a function from sorted row indices to the texts of those rows (the merge step rereads
    only those documents)."""
    params = LSHParams.from_config(cfg)
    n = len(sig)
    pairs = candidate_pairs(sig, params)
    read = 0
    if cfg.verify == "exact":
        if texts is None:
            raise ValueError("data.minhash.verify=exact needs the documents' texts (or use verify=estimate)")
        rows = sorted_unique(pairs.ravel()) if len(pairs) else np.empty(0, dtype=np.int64)
        got = texts(rows) if callable(texts) else [texts[i] for i in rows.tolist()]
        if len(got) != len(rows):
            raise ValueError(f"texts gave {len(got)} documents for {len(rows)} rows")
        flat, owner = MinHasher(cfg).shingle_batch(got)
        sim = exact_jaccard(flat, owner, len(rows), np.searchsorted(rows, pairs))
        read = len(rows)
    else:
        sim = estimated_jaccard(sig, pairs)
    ok = sim >= cfg.threshold - 1e-12
    good, good_sim = pairs[ok], sim[ok]
    label = clusters(n, good)
    best = np.zeros(n, dtype=np.float64)
    if len(good):
        np.maximum.at(best, good[:, 0], good_sim)
        np.maximum.at(best, good[:, 1], good_sim)
    return NearDuplicates(
        keep=label == np.arange(n), representative=label, similarity=best,
        candidates=len(pairs), verified=int(ok.sum()), params=params, verify=cfg.verify, texts_read=read,
    )


def collision_probability(similarity: float, params: LSHParams) -> float:
    return 1.0 - (1.0 - similarity**params.rows) ** params.bands if similarity > 0 else 0.0


__all__ = ["LSHParams", "MinHasher", "NearDuplicates", "band_keys", "bucket_pairs", "candidate_pairs",
           "clusters", "estimated_jaccard", "exact_jaccard", "lsh_params", "near_duplicates", "unique_pairs"]
