"""Fuzzy dedup at cluster scale: MinHash-LSH in map steps, so no process holds every signature.

Holding all signatures in one process costs num_perm x 4 bytes per document (512 B at 128 min-hashes:
~0.5 TB at a billion documents). DataTrove's MinHash dedup splits the work instead, and so do we, with the
same four steps but our own files (and the candidates verified, which DataTrove does not do):

1. **Signatures, per shard task** (`write_band_files`, called by `shard.process_shard`): for every band, the
   task's band keys (`minhash.band_keys`) sorted, with the local row of each (`band_keys.npy`,
   `band_rows.npy`: bands x n, 12 B per document and band); the signatures themselves go to `sig.npy`
   (read back only by `verify=estimate`) and each survivor's byte offset in `docs.jsonl` to `offsets.npy`.
2. **LSH, per band range** (`LSHCall`, one map task per `LSHTask`): a task takes a range of bands, or with
   more tasks than bands one key range of one band (keys are uniform 64-bit hashes), and for each of its
   bands reads the slice of every shard's sorted keys in its range (memory-mapped: a binary search finds
   the slice), drops rows that exact dedup removed, sorts by (key, global row) and emits the same candidate
   pairs as `minhash.candidate_pairs` (each bucket member with the bucket's first member and with its
   predecessor). Its pairs go to one file, grouped by verify part (a hash of the pair).
3. **Verification, per pair part** (`VerifyCall`): a task gathers its part from every LSH task, drops
   pairs found in several bands, and verifies them in chunks: the exact Jaccard of the two shingle sets (the
   texts reread by offset from the shards' `docs.jsonl`) or the MinHash estimate (rows read from the
   memory-mapped `sig.npy`). Each candidate pair lands in exactly one part, so it is verified once.
4. **Clustering, one light step** (`cluster`): connected components of the verified pairs only, over the
   documents they touch; the member first in reading order is kept, the rest are dropped as
   `near_duplicate` of it. The per-task verdicts are then applied as each shard is written out.

Every step is a pure function of the files before it, so any number of LSH tasks gives exactly the
clusters of one (tests/data/test_data_lsh.py), and both equal `minhash.near_duplicates` in one process.

Memory per task (N documents after exact dedup, b bands, T = `lsh_tasks`, C candidate pairs, V verified):
an LSH task holds one band at a time, ~32 B x N / max(1, T / b) (key, global row, sort order, keep flag),
plus its pairs at ~32 B each; a verify task ~32 B x C / T plus one chunk of `VERIFY_CHUNK` pairs' texts;
clustering ~40 B x V. None of them grows with num_perm.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qwen_hpc.data.config import MinHashConfig
from qwen_hpc.data.minhash import (
    EMPTY,
    LSHParams,
    MinHasher,
    band_keys,
    bucket_pairs,
    clusters,
    exact_jaccard,
    unique_pairs,
)
from qwen_hpc.data.text import mix64, sorted_unique
from qwen_hpc.utils.io import atomic_path

VERIFY_CHUNK = 1 << 16  # candidate pairs verified per step: bounds the texts held at once


# ------------------------------------------------------------------------------ 1. per shard task


def write_band_files(folder: Path, sig: np.ndarray, params: LSHParams) -> None:
    """Per band, the sorted band keys of the rows that have a signature and their local rows."""
    valid = np.flatnonzero(sig[:, 0] != EMPTY) if len(sig) else np.empty(0, dtype=np.int64)
    keys = np.empty((params.bands, len(valid)), dtype=np.uint64)
    rows = np.empty((params.bands, len(valid)), dtype=np.uint32)
    sub = sig[valid]
    for band in range(params.bands):
        k = band_keys(sub, band, params.rows)
        order = np.argsort(k, kind="stable")
        keys[band], rows[band] = k[order], valid[order]
    np.save(folder / "band_keys.npy", keys)
    np.save(folder / "band_rows.npy", rows)


# ------------------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class LSHTask:
    """Bands [band_lo, band_hi), keys in part `key_part` of `key_parts` equal ranges of the 64-bit space."""

    index: int
    band_lo: int
    band_hi: int
    key_part: int = 0
    key_parts: int = 1

    def key_range(self) -> tuple[int, int | None]:
        step = 2**64 // self.key_parts
        hi = None if self.key_part == self.key_parts - 1 else (self.key_part + 1) * step
        return self.key_part * step, hi


def lsh_tasks(bands: int, tasks: int) -> list[LSHTask]:
    """`tasks` tasks over `bands` bands: contiguous band ranges, or (more tasks than bands) each band cut
    into key ranges, the first `tasks % bands` bands into one more."""
    if tasks <= bands:
        cuts = np.linspace(0, bands, tasks + 1).round().astype(int).tolist()
        return [LSHTask(i, lo, hi) for i, (lo, hi) in enumerate(zip(cuts, cuts[1:], strict=False))]
    out: list[LSHTask] = []
    for band in range(bands):
        parts = tasks // bands + (band < tasks % bands)
        out += [LSHTask(len(out) + p, band, band + 1, p, parts) for p in range(parts)]
    return out


@dataclass(frozen=True)
class FuzzyPlan:
    """What the LSH and verify tasks need (picklable: it travels to Slurm array tasks)."""

    cfg: MinHashConfig
    folder: str  # <work>/fuzzy: keep mask, pairs, verified pairs
    shard_dirs: tuple[str, ...]  # per shard task, in reading order
    starts: tuple[int, ...]  # global row of each shard task's first survivor, then the total
    tasks: tuple[LSHTask, ...]

    @property
    def params(self) -> LSHParams:
        return LSHParams.from_config(self.cfg)

    @property
    def total(self) -> int:
        return self.starts[-1]

    @property
    def verify_parts(self) -> int:
        return len(self.tasks)

    def locate(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(shard task, local row) of global rows."""
        task = np.searchsorted(np.asarray(self.starts), rows, side="right") - 1
        return task, rows - np.asarray(self.starts)[task]


def make_plan(cfg: MinHashConfig, folder: Path, shard_dirs: list[Path], counts: list[int],
              keep: np.ndarray) -> FuzzyPlan:
    """Write the exact-dedup keep mask (one byte per document, memory-mapped by the LSH tasks)."""
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "keep.npy") as tmp, open(tmp, "wb") as fh:
        np.save(fh, keep.astype(bool))
    starts = tuple(int(x) for x in np.cumsum([0, *counts]))
    tasks = tuple(lsh_tasks(LSHParams.from_config(cfg).bands, cfg.lsh_tasks))
    return FuzzyPlan(cfg, str(folder), tuple(str(d) for d in shard_dirs), starts, tasks)


# ----------------------------------------------------------------------------------- 2. LSH task


class LSHCall:
    """One LSH task: its bands' candidate pairs, split into the verify parts."""

    def __init__(self, plan: FuzzyPlan) -> None:
        self.plan = plan

    def __call__(self, task: LSHTask) -> dict[str, int]:
        plan = self.plan
        keep = np.load(Path(plan.folder) / "keep.npy", mmap_mode="r")
        lo, hi = task.key_range()
        found = []
        for band in range(task.band_lo, task.band_hi):
            k, g = self._band(band, lo, hi, keep)
            order = np.argsort(k, kind="stable")  # ties stay in global row order (see `_band`)
            k = k[order]
            g = g[order]
            del order
            found.append(bucket_pairs(k, g))
            del k, g
        pairs = unique_pairs(np.concatenate(found), plan.total) if found else np.empty((0, 2), np.int64)
        part = _part_of(pairs, plan.verify_parts)
        order = np.argsort(part, kind="stable")
        bounds = np.searchsorted(part[order], np.arange(plan.verify_parts + 1))
        out = Path(plan.folder) / "lsh" / f"{task.index:05d}"
        out.mkdir(parents=True, exist_ok=True)
        _save(out / "bounds.npy", bounds)  # pairs of verify part v: pairs.npy[bounds[v]:bounds[v + 1]]
        _save(out / "pairs.npy", pairs[order])
        return {"task": task.index, "pairs": len(pairs)}

    def _band(self, band: int, lo: int, hi: int | None, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Keys in [lo, hi) of `band` of every shard, and their global rows, rows removed by exact dedup
        left out: shard after shard, each sorted by (key, row), into two arrays allocated once."""
        plan = self.plan
        spans = []
        for folder in plan.shard_dirs:
            k = np.load(Path(folder) / "band_keys.npy", mmap_mode="r")[band]
            a = int(np.searchsorted(k, np.uint64(lo)))
            spans.append((a, len(k) if hi is None else int(np.searchsorted(k, np.uint64(hi)))))
        size = sum(b - a for a, b in spans)
        keys, rows, n = np.empty(size, np.uint64), np.empty(size, np.int64), 0
        for t, (folder, (a, b)) in enumerate(zip(plan.shard_dirs, spans, strict=True)):
            g = np.load(Path(folder) / "band_rows.npy", mmap_mode="r")[band, a:b].astype(np.int64)
            g += plan.starts[t]
            alive = keep[g]
            m = int(alive.sum())
            keys[n : n + m] = np.load(Path(folder) / "band_keys.npy", mmap_mode="r")[band, a:b][alive]
            rows[n : n + m] = g[alive]
            n += m
        return keys[:n], rows[:n]


def _part_of(pairs: np.ndarray, parts: int) -> np.ndarray:
    if not len(pairs):
        return np.empty(0, dtype=np.int64)
    with np.errstate(over="ignore"):
        h = mix64(pairs[:, 0].astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) + pairs[:, 1].astype(np.uint64))
    return (h % np.uint64(parts)).astype(np.int64)


def _save(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array)


# --------------------------------------------------------------------------------- 3. verify task


class VerifyCall:
    """One verify task: the candidate pairs of part `v` from every LSH task, verified."""

    def __init__(self, plan: FuzzyPlan) -> None:
        self.plan = plan

    def __call__(self, v: int) -> dict[str, int]:
        plan = self.plan
        lsh = Path(plan.folder) / "lsh"
        parts = []
        for t in plan.tasks:
            bounds = np.load(lsh / f"{t.index:05d}" / "bounds.npy")
            pairs = np.load(lsh / f"{t.index:05d}" / "pairs.npy", mmap_mode="r")
            parts.append(np.asarray(pairs[bounds[v] : bounds[v + 1]]))
        pairs = unique_pairs(np.concatenate(parts), plan.total)
        ok, sims, read = [], [], 0
        for s in range(0, len(pairs), VERIFY_CHUNK):
            chunk = pairs[s : s + VERIFY_CHUNK]
            rows = sorted_unique(chunk.ravel())
            local = np.searchsorted(rows, chunk)
            if plan.cfg.verify == "exact":
                flat, owner = MinHasher(plan.cfg).shingle_batch(self._texts(rows))
                sim = exact_jaccard(flat, owner, len(rows), local)
                read += len(rows)
            else:
                sig = self._signatures(rows)
                sim = (sig[local[:, 0]] == sig[local[:, 1]]).mean(axis=1)
            good = sim >= plan.cfg.threshold - 1e-12
            ok.append(chunk[good])
            sims.append(sim[good])
        with atomic_path(Path(plan.folder) / "verified" / f"{v:05d}.npz") as tmp, open(tmp, "wb") as fh:
            np.savez(fh, pairs=np.concatenate(ok) if ok else np.empty((0, 2), np.int64),
                     sim=np.concatenate(sims) if sims else np.empty(0))
        return {"part": v, "candidates": len(pairs), "verified": int(sum(len(x) for x in ok)), "texts_read": read}

    def _texts(self, rows: np.ndarray) -> list[str]:
        """Texts of sorted global rows, read by byte offset from the shards' docs.jsonl."""
        task, local = self.plan.locate(rows)
        out: list[str] = []
        for t in np.unique(task).tolist():
            folder = Path(self.plan.shard_dirs[t])
            offsets = np.load(folder / "offsets.npy", mmap_mode="r")
            with open(folder / "docs.jsonl", "rb") as fh:
                for r in local[task == t].tolist():
                    fh.seek(int(offsets[r]))
                    out.append(json.loads(fh.readline())["text"])
        return out

    def _signatures(self, rows: np.ndarray) -> np.ndarray:
        task, local = self.plan.locate(rows)
        out = np.empty((len(rows), self.plan.cfg.num_perm), dtype=np.uint32)
        for t in np.unique(task).tolist():
            sig = np.load(Path(self.plan.shard_dirs[t]) / "sig.npy", mmap_mode="r")
            out[task == t] = sig[local[task == t]]
        return out


# ------------------------------------------------------------------------------------ 4. clusters


@dataclass
class Clusters:
    """Near duplicates among the global rows: `dropped` rows, the kept `representative` of each and the
    best verified similarity of each to a member of its cluster."""

    dropped: np.ndarray
    representative: np.ndarray
    similarity: np.ndarray


def cluster(plan: FuzzyPlan) -> Clusters:
    """Connected components of the verified pairs, over the rows they touch; the lowest row is kept."""
    found = []
    for v in range(plan.verify_parts):
        with np.load(Path(plan.folder) / "verified" / f"{v:05d}.npz") as z:
            found.append((z["pairs"], z["sim"]))
    pairs = np.concatenate([p for p, _ in found]) if found else np.empty((0, 2), np.int64)
    sim = np.concatenate([s for _, s in found]) if found else np.empty(0)
    nodes = sorted_unique(pairs.ravel()) if len(pairs) else np.empty(0, dtype=np.int64)
    local = np.searchsorted(nodes, pairs)
    label = clusters(len(nodes), local)
    best = np.zeros(len(nodes))
    if len(pairs):
        np.maximum.at(best, local[:, 0], sim)
        np.maximum.at(best, local[:, 1], sim)
    gone = label != np.arange(len(nodes))
    return Clusters(nodes[gone], nodes[label[gone]], best[gone])


def near_duplicates_sharded(plan: FuzzyPlan, map_fn) -> tuple[Clusters, dict[str, int]]:  # noqa: ANN001
    """Steps 2-4 through `map_fn(fn, items)` (in this process, a process pool or Slurm arrays)."""
    map_fn(LSHCall(plan), list(plan.tasks))
    books = map_fn(VerifyCall(plan), list(range(plan.verify_parts)))
    found = cluster(plan)
    totals = {k: sum(b[k] for b in books) for k in ("candidates", "verified", "texts_read")}
    return found, totals
