"""Benchmark: BPE training engines on the same text and vocabulary (claim: rustbpe is the fastest engine
that reproduces the Qwen pattern exactly; see qwen_hpc/tokenizer/train.py).

Trains `--vocab-size` tokens with every installed engine on the same text (by default a mix of English,
maths, code and Chinese from the offline dataset bundle: GSM8K, MATH, MBPP, MMLU, UD Chinese-GSDSimp,
CMMLU), then prints wall time, speed relative to the fastest engine, agreement with the rustbpe table and
bytes per token on held-out documents. Engines alternate over `--repeats` rounds (median and
minimum reported), since the speed of a shared machine drifts.

    python benchmarks/bpe_train.py --vocab-size 4096 --max-chars 8000000
    python benchmarks/bpe_train.py --text my_corpus.jsonl --text-key text
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import tiktoken

from qwen_hpc.tokenizer.pattern import QWEN_PAT_STR
from qwen_hpc.tokenizer.train import available_engines, cap_chars, train_bpe

REPO = Path(__file__).resolve().parents[1]


def bundle_docs(root: Path) -> Iterator[str]:
    """Documents from the offline bundle, interleaving sources so a char cap keeps the mix."""
    d = root / "datasets"

    def jsonl(path: Path, fmt) -> Iterator[str]:
        if path.is_file():
            with open(path, encoding="utf-8") as fh:
                for line in fh:
                    yield fmt(json.loads(line))

    def cmmlu() -> Iterator[str]:
        for path in sorted((d / "cmmlu" / "test").glob("*.csv")):
            with open(path, encoding="utf-8") as fh:
                for row in csv.reader(fh):
                    yield " ".join(row[1:])

    sources = [
        jsonl(d / "gsm8k" / "train.jsonl", lambda r: r["question"] + "\n" + r["answer"]),
        jsonl(
            d / "math" / "math_test_5000.jsonl",
            lambda r: "\n".join(v for v in r.values() if isinstance(v, str)),
        ),
        jsonl(d / "mbpp" / "mbpp.jsonl", lambda r: r["text"] + "\n" + r["code"]),
        jsonl(d / "mmlu" / "mmlu.jsonl", lambda r: r["question"] + "\n" + "\n".join(r["choices"])),
        jsonl(d / "zh_text_ud_gsdsimp" / "zh_gsdsimp_sentences.jsonl", lambda r: r["text"]),
        cmmlu(),
    ]
    while sources:
        for src in list(sources):
            try:
                yield next(src)
            except StopIteration:
                sources.remove(src)


def file_docs(paths: list[str], key: str) -> Iterator[str]:
    for p in paths:
        with open(p, encoding="utf-8") as fh:
            if p.endswith(".jsonl"):
                yield from (json.loads(line)[key] for line in fh if line.strip())
            else:
                yield fh.read()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vocab-size", type=int, default=4096)
    ap.add_argument("--max-chars", type=int, default=8_000_000, help="training text cap (-1 = all)")
    ap.add_argument("--engines", nargs="*", default=None, help="default: every installed engine")
    ap.add_argument(
        "--text", action="append", default=None, help="text or .jsonl file(s) instead of the bundle"
    )
    ap.add_argument("--text-key", default="text")
    ap.add_argument("--repeats", type=int, default=3, help="rounds; engines alternate within a round")
    args = ap.parse_args()

    shared = Path(os.environ.get("QWEN_HPC_SHARED_ROOT", REPO.parent / "shared"))
    docs = list(file_docs(args.text, args.text_key) if args.text else bundle_docs(shared))
    train_docs = list(cap_chars(docs[::2], args.max_chars))
    held_out = docs[1::2][:5000]
    held_bytes = sum(len(t.encode("utf-8")) for t in held_out)
    engines = args.engines or available_engines()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(
        f"text: {len(train_docs)} docs, {sum(map(len, train_docs)):,} chars for training; "
        f"{len(held_out)} held-out docs ({held_bytes:,} bytes); vocab_size={args.vocab_size}"
    )

    # Engines alternate within each round so that drift in machine speed hits them alike.
    times: dict[str, list[float]] = {e: [] for e in engines}
    tables: dict[str, dict[bytes, int]] = {}
    for _ in range(args.repeats):
        for engine in engines:
            t0 = time.perf_counter()
            ranks = train_bpe(train_docs, args.vocab_size, engine=engine)
            times[engine].append(time.perf_counter() - t0)
            if tables.setdefault(engine, ranks) != ranks:
                raise SystemExit(f"{engine} is not deterministic: two runs gave different tables")

    median = {e: statistics.median(t) for e, t in times.items()}
    fastest = min(median.values())
    reference = tables.get("rustbpe", next(iter(tables.values())))
    print(
        f"{'engine':<8} {'median s':>9} {'min s':>7} {'x fastest':>9} {'same ranks as rustbpe':>22} {'bytes/token':>11}"
    )
    for engine, ranks in tables.items():
        enc = tiktoken.Encoding(engine, pat_str=QWEN_PAT_STR, mergeable_ranks=ranks, special_tokens={})
        bpt = held_bytes / sum(len(ids) for ids in enc.encode_ordinary_batch(held_out))
        same = sum(1 for t, r in ranks.items() if reference.get(t) == r)
        print(
            f"{engine:<8} {median[engine]:9.2f} {min(times[engine]):7.2f} {median[engine] / fastest:9.1f} "
            f"{same:>13}/{len(ranks):<8} {bpt:11.3f}"
        )


if __name__ == "__main__":
    main()
