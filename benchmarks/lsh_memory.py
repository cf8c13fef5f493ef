"""Benchmark: peak memory per document of the fuzzy dedup's LSH step — sharded (`qwen_hpc.data.lsh`, one
LSH task of `data.minhash.lsh_tasks` = T) against the one-process baseline (`minhash.candidate_pairs` on
the whole signature matrix, as the data stage ran before). Claim: an LSH task holds ~32 B per document of
its band range, one band at a time (~32 B x N / max(1, T / bands)), where one process held the 4 B x
num_perm signatures of all N documents plus the same per-band work.

Peak memory is what `tracemalloc` sees (numpy allocations included); the memory-mapped band files and keep
mask are page cache, not counted. Inputs are synthetic: random 64-bit band keys per shard (sorted, as the
per-shard step writes them) with one key in 50 repeated, so that buckets exist.

    python benchmarks/lsh_memory.py                  # 500k documents, 8 shards
    python benchmarks/lsh_memory.py --docs 2000000
"""

from __future__ import annotations

import argparse
import tempfile
import tracemalloc
from pathlib import Path

import numpy as np

from qwen_hpc.data.config import MinHashConfig
from qwen_hpc.data.lsh import LSHCall, make_plan
from qwen_hpc.data.minhash import LSHParams, candidate_pairs


def _peak(fn) -> int:  # noqa: ANN001
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=500_000)
    ap.add_argument("--shards", type=int, default=8)
    args = ap.parse_args()
    cfg = MinHashConfig()
    params = LSHParams.from_config(cfg)
    n, rng = args.docs, np.random.default_rng(0)
    sig = rng.integers(0, 2**32 - 2, size=(n, cfg.num_perm), dtype=np.uint32)
    sig[1::50] = sig[::50][: len(sig[1::50])]  # near-copies: every band collides
    baseline = _peak(lambda s=sig: candidate_pairs(s, params)) + sig.nbytes  # the matrix was held too
    print(f"{n} documents, {params.bands} bands x {params.rows} rows, num_perm {cfg.num_perm}")
    print(f"baseline  one process, all signatures: {baseline / n:7.1f} B/doc")
    with tempfile.TemporaryDirectory() as tmp:
        from qwen_hpc.data.lsh import write_band_files

        dirs, counts = [], []
        for s, part in enumerate(np.array_split(np.arange(n), args.shards)):
            folder = Path(tmp) / f"s{s}"
            folder.mkdir()
            write_band_files(folder, sig[part], params)
            dirs.append(folder)
            counts.append(len(part))
        del sig
        for tasks in (1, params.bands, 4 * params.bands):
            plan = make_plan(MinHashConfig(lsh_tasks=tasks), Path(tmp) / f"fuzzy{tasks}", dirs, counts,
                             np.ones(n, dtype=bool))
            peak = _peak(lambda plan=plan: LSHCall(plan)(plan.tasks[0]))
            print(f"sharded   lsh_tasks={tasks:3d} (one task): {peak / n:7.1f} B/doc "
                  f"= {baseline / peak:5.1f}x less than the baseline")


if __name__ == "__main__":
    main()
