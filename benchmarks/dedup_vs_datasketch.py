"""Benchmark: fuzzy dedup — our MinHash-LSH (`qwen_hpc.data.minhash`) against `datasketch`'s MinHash +
MinHashLSH on the same corpus, shingles (5-grams of `qwen_hpc.data.text.words`), 128 permutations and
Jaccard threshold 0.8 (claim: >= 10x datasketch's documents/s on 2 cores at recall >= 0.95).

Corpus: `--docs` synthetic documents (Zipf-distributed real English words taken from the Python language
reference, 80-250 words each) in which `--planted` pairs are planted at known 5-shingle Jaccard similarity
(0.85-0.98 above the threshold; 0.5-0.7 below it, as hard negatives), plus real text (paragraphs of the
Python language reference and, when the data root is there, the HH-RLHF dialogues and GSM8K train
questions). The true Jaccard of every planted pair is computed exactly on the shingle sets.

Both sides do the whole job from raw text: tokenize, shingle, hash, LSH, verify candidates (datasketch:
`MinHash.jaccard` against the candidates MinHashLSH returns; ours, by default (`--verify exact`): the exact
Jaccard of the shingle sets, recomputed for the documents in candidate pairs only — `--verify estimate`: the
share of equal min-hashes, like datasketch), decide which documents are duplicates. Precision = reported duplicate pairs whose true Jaccard >= threshold / reported
pairs; recall = planted pairs above the threshold that are reported / all of them. We time ours in one
process and with `--workers` processes (signatures per chunk in a process pool, as the data stage does);
datasketch is pure Python + numpy in one process. Finally the whole `curate` (every filter, as the data stage
runs it) on `--stage-docs` of the corpus gives documents/s of the data stage.

    python benchmarks/dedup_vs_datasketch.py                 # 100k synthetic docs
    python benchmarks/dedup_vs_datasketch.py --docs 20000    # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import tempfile
import time
from pathlib import Path

import numpy as np

from qwen_hpc.data.config import MinHashConfig
from qwen_hpc.data.minhash import MinHasher, near_duplicates
from qwen_hpc.data.text import words

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------------ corpus


def shingle_set(text: str, n: int) -> set[str]:
    ws = words(text)
    if len(ws) < n:
        return {" ".join(ws)} if ws else set()
    return {" ".join(ws[i : i + n]) for i in range(len(ws) - n + 1)}


def true_jaccard(a: str, b: str, n: int) -> float:
    x, y = shingle_set(a, n), shingle_set(b, n)
    return len(x & y) / len(x | y) if x | y else 1.0


def _variant(base: list[str], target: float, rng: random.Random, vocab: list[str], n: int) -> str:
    """Mutate `base` (replace words at random places) until its shingle Jaccard to `base` is ~target."""
    out = list(base)
    text = " ".join(base)
    # each replaced word breaks up to n shingles; J ~ (S-k*n)/(S+k*n): start near the needed k, then refine
    s = len(base) - n + 1
    k = max(1, int(s * (1 - target) / (n * (1 + target))))
    positions = rng.sample(range(len(base)), len(base))
    for p in positions[:k]:
        out[p] = rng.choice(vocab)
    for p in positions[k:]:
        if true_jaccard(text, " ".join(out), n) <= target:
            break
        out[p] = rng.choice(vocab)
    return " ".join(out)


def real_texts(data_root: Path) -> list[str]:
    from pydoc_data.topics import topics

    texts = [p.strip() for key in sorted(topics) for p in topics[key].split("\n\n") if len(p.split()) >= 20]
    hh = data_root / "hh_rlhf" / "harmless-base_test.pairs.jsonl"
    if hh.is_file():
        texts += [json.loads(line)["prompt"] for line in hh.read_text(encoding="utf-8").splitlines()]
    gsm = data_root / "gsm8k" / "train.jsonl"
    if gsm.is_file():
        texts += [json.loads(line)["question"] for line in gsm.read_text(encoding="utf-8").splitlines()]
    return texts


def build_corpus(n_docs: int, n_planted: int, n: int, seed: int, data_root: Path):  # noqa: ANN201
    from pydoc_data.topics import topics

    rng = random.Random(seed)
    vocab = sorted({w for t in topics.values() for w in words(t) if w.isalpha()})
    weights = 1.0 / np.arange(1, len(vocab) + 1) ** 0.9  # Zipf-like
    cum = np.cumsum(weights / weights.sum())
    np_rng = np.random.default_rng(seed)

    def doc(length: int) -> list[str]:
        return [vocab[i] for i in np.searchsorted(cum, np_rng.random(length))]

    texts = [" ".join(doc(int(np_rng.integers(80, 250)))) for _ in range(n_docs - 2 * n_planted)]
    real = real_texts(data_root)
    texts += real
    planted = []  # (i, j, true J)
    levels = [0.98, 0.95, 0.9, 0.85, 0.7, 0.5]
    for p in range(n_planted):
        base = doc(int(np_rng.integers(80, 250)))
        texts.append(" ".join(base))
        texts.append(_variant(base, levels[p % len(levels)], rng, vocab, n))
        planted.append((len(texts) - 2, len(texts) - 1, true_jaccard(texts[-2], texts[-1], n)))
    order = list(range(len(texts)))
    rng.shuffle(order)
    where = {old: new for new, old in enumerate(order)}
    texts = [texts[i] for i in order]
    planted = [(min(where[i], where[j]), max(where[i], where[j]), jv) for i, j, jv in planted]
    return texts, planted, len(real)


# ------------------------------------------------------------------------------------------------- ours


_TEXTS: list[str] = []  # set before forking: the workers inherit it, only index ranges are sent


def _chunk_signatures(args: tuple[int, int, dict]) -> np.ndarray:
    start, end, cfg = args
    return MinHasher(MinHashConfig(**cfg)).signatures(_TEXTS[start:end])


def run_ours(texts: list[str], cfg: MinHashConfig, workers: int) -> tuple[float, set[tuple[int, int]], dict]:
    import dataclasses
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    global _TEXTS
    _TEXTS = texts
    started = time.perf_counter()
    if workers > 1:  # as in the data stage, each worker reads its own shard; here: inherits the corpus
        chunks = [(i, i + 5000, dataclasses.asdict(cfg)) for i in range(0, len(texts), 5000)]
        with ProcessPoolExecutor(workers, mp_context=get_context("fork")) as pool:
            sig = np.concatenate(list(pool.map(_chunk_signatures, chunks)))
    else:
        sig = MinHasher(cfg).signatures(texts)
    result = near_duplicates(sig, cfg, texts)  # exact verification rereads the candidates' texts
    elapsed = time.perf_counter() - started
    dup = np.flatnonzero(~result.keep)
    pairs = {(int(min(d, r)), int(max(d, r))) for d, r in zip(dup, result.representative[dup], strict=True)}
    info = {"lsh": f"{result.params.bands}x{result.params.rows}", "verify": cfg.verify,
            "candidate_pairs": result.candidates, "texts_reread": result.texts_read}
    return elapsed, pairs, info


# ------------------------------------------------------------------------------------------- datasketch


def run_datasketch(
    texts: list[str], n: int, num_perm: int, threshold: float
) -> tuple[float, set[tuple[int, int]]]:
    from datasketch import MinHash, MinHashLSH

    started = time.perf_counter()
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    hashes: list[MinHash] = []
    pairs: set[tuple[int, int]] = set()
    for i, text in enumerate(texts):
        m = MinHash(num_perm=num_perm)
        m.update_batch([s.encode("utf-8") for s in shingle_set(text, n)])
        for j in lsh.query(m):
            if hashes[j].jaccard(m) >= threshold:
                pairs.add((j, i))
        lsh.insert(i, m)
        hashes.append(m)
    return time.perf_counter() - started, pairs


# -------------------------------------------------------------------------------------------------- eval


def score(
    pairs: set[tuple[int, int]],
    planted: list[tuple[int, int, float]],
    texts: list[str],
    n: int,
    threshold: float,
) -> dict[str, float]:
    truth = {(i, j) for i, j, jv in planted if jv >= threshold}
    found = len(truth & pairs)
    by_level: dict[str, list[int]] = {}
    for i, j, jv in planted:
        level = f"{int(jv * 20) / 20:.2f}-{int(jv * 20) / 20 + 0.05:.2f}"  # 0.05-wide bins of true Jaccard
        hit = by_level.setdefault(level, [0, 0])
        hit[0] += (i, j) in pairs
        hit[1] += 1
    true_pos = sum(1 for i, j in pairs if (i, j) in truth or true_jaccard(texts[i], texts[j], n) >= threshold)
    return {
        "reported_pairs": len(pairs),
        "precision": round(true_pos / len(pairs), 4) if pairs else 1.0,
        "recall": round(found / len(truth), 4) if truth else 1.0,
        "planted_above_threshold": len(truth),
        "reported_share_by_true_jaccard": {k: f"{a}/{b}" for k, (a, b) in sorted(by_level.items())},
    }


def stage_throughput(texts: list[str], n_docs: int, workers: int, data_root: Path) -> dict[str, float]:
    """documents/s of `curate` with the data stage's defaults (every filter) on the first n_docs texts."""
    from qwen_hpc.data import DataConfig, SourceConfig, curate
    from qwen_hpc.launch.array import process_pool_map

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        per = max(1, n_docs // (2 * workers))
        paths = []
        for k, start in enumerate(range(0, n_docs, per)):
            path = root / f"in-{k:03d}.jsonl"
            path.write_text(
                "".join(json.dumps({"text": t}) + "\n" for t in texts[start : min(start + per, n_docs)])
            )
            paths.append(str(path))
        cfg = DataConfig(
            sources=[SourceConfig(name="bench", paths=paths, language="en")],
            embedded_corpus=False,
            workers=workers,
        )
        for attempt in ("cold", "warm"):  # cold: builds the eval n-gram index; warm: reuses the cache
            started = time.perf_counter()
            stats = curate(
                cfg,
                cfg.sources,
                root / f"out-{attempt}",
                progress=False,
                map_fn=process_pool_map(workers),
                data_root=data_root,
                cache_dir=root / "cache",
            )
            elapsed = time.perf_counter() - started
            if attempt == "cold":
                cold = elapsed
    return {
        "documents": stats.read,
        "kept": stats.kept,
        "seconds_cold": round(cold, 2),
        "seconds_warm": round(elapsed, 2),
        "docs_per_s_cold": round(stats.read / cold, 1),
        "docs_per_s_warm": round(stats.read / elapsed, 1),
        "dropped": stats.dropped,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--planted", type=int, default=3000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threshold", type=float, default=0.8)
    ap.add_argument("--num-perm", type=int, default=128)
    ap.add_argument("--shingle", type=int, default=5)
    ap.add_argument("--stage-docs", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--verify", choices=["exact", "estimate"], default="exact", help="our candidate verification")
    ap.add_argument(
        "--data-root", default=os.environ.get("QWEN_HPC_DATA_ROOT", str(REPO.parent / "shared" / "datasets"))
    )
    ap.add_argument("--json", default="", help="also write the results here")
    args = ap.parse_args()
    data_root = Path(args.data_root)

    t0 = time.perf_counter()
    texts, planted, n_real = build_corpus(args.docs, args.planted, args.shingle, args.seed, data_root)
    print(
        f"corpus: {len(texts)} documents ({n_real} real), {len(planted)} planted pairs, "
        f"built in {time.perf_counter() - t0:.1f}s; cpus={os.cpu_count()} {platform.processor() or platform.machine()}"
    )
    results: dict[str, dict] = {}
    MinHasher(MinHashConfig()).signatures(texts[:2000])  # warm-up (imports, first allocations), untimed
    for scheme in ("oph", "permutations"):
        cfg = MinHashConfig(
            scheme=scheme, num_perm=args.num_perm, threshold=args.threshold, shingle_size=args.shingle,
            verify=args.verify,
        )
        for workers in (1, args.workers):
            elapsed, pairs, info = run_ours(texts, cfg, workers)
            name = f"ours[{scheme}, {workers} proc]"
            results[name] = {
                "seconds": round(elapsed, 2),
                "docs_per_s": round(len(texts) / elapsed, 1),
                **info,
                **score(pairs, planted, texts, args.shingle, args.threshold),
            }
            print(name, results[name], flush=True)
    elapsed, pairs = run_datasketch(texts, args.shingle, args.num_perm, args.threshold)
    results["datasketch[1 proc]"] = {
        "seconds": round(elapsed, 2),
        "docs_per_s": round(len(texts) / elapsed, 1),
        **score(pairs, planted, texts, args.shingle, args.threshold),
    }
    print("datasketch[1 proc]", results["datasketch[1 proc]"], flush=True)
    base = results["datasketch[1 proc]"]["docs_per_s"]
    for r in results.values():
        r["ratio_vs_datasketch"] = round(r["docs_per_s"] / base, 2)
    print("\nmethod                          docs/s   ratio  precision  recall")
    for name, r in results.items():
        print(
            f"{name:30s} {r['docs_per_s']:8.0f} {r['ratio_vs_datasketch']:7.2f} {r['precision']:10.4f} {r['recall']:7.4f}"
        )
    if args.stage_docs:
        stage = stage_throughput(texts, min(args.stage_docs, len(texts)), args.workers, data_root)
        results["data_stage"] = stage
        print(
            f"\nwhole data stage (curate, every filter, {args.workers} processes) on {stage['documents']} docs: "
            f"{stage['docs_per_s_cold']} docs/s cold (builds the eval index), {stage['docs_per_s_warm']} docs/s warm"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
