"""Benchmark: tokens/s of the whole `tokens` stage against raw `tiktoken.Encoding.encode_ordinary_batch`
on the same text and the same number of cores (claim: the stage reaches >= 0.9x raw tiktoken).

Both sides use the official `qwen.tiktoken` vocabulary (151,851 ids: int32 datasets) and Qwen's pattern.
  raw    the documents (NFC-normalized) in memory, one `encode_ordinary_batch(texts, num_threads=cores)` call,
         the Encoding built before the clock starts;
  stage  `qwen_hpc.stages.tokens.run` on a data-stage-like folder (JSONL shards + manifest): plan one task
         per shard, run them on `cores` workers (two threads of the stage's process, any more spawned
         processes; each loads the vocabulary once, reads JSON, NFC-checks, encodes, writes its part),
         merge into one Megatron `.bin/.idx` per source, write the blend. Every round starts with no
         vocabulary cached in the process, as a fresh stage process does.
Tokens are counted without the end-of-document ids the stage appends. The two alternate for
`--rounds` rounds and the best time of each is compared (the machine may be shared). The corpus is the one of
benchmarks/bpe_train.py (the offline dataset bundle topped up with the embedded corpus).

    python benchmarks/tokens_throughput.py                 # 50 MB, all cores
    python benchmarks/tokens_throughput.py --min-mb 100 --cores 8
    python benchmarks/tokens_throughput.py --repeat 4        # 200 MB: the stage's fixed costs amortize
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
import unicodedata
from pathlib import Path


def write_data_stage(docs: list[str], data_dir: Path, shard_mb: float) -> int:
    """Split docs into two sources ('a', 'b': alternate documents) of ~shard_mb JSONL shards + manifest."""
    shards_dir = data_dir / "shards"
    shards_dir.mkdir(parents=True)
    sources = []
    for name, part in (("a", docs[::2]), ("b", docs[1::2])):
        shards, buf, size = [], [], 0
        for text in part + [None]:
            if text is not None:
                line = json.dumps({"text": text}, ensure_ascii=False) + "\n"
                buf.append(line)
                size += len(line)
            if buf and (text is None or size >= shard_mb * 1e6):
                rel = f"shards/{name}-{len(shards):05d}.jsonl"
                (data_dir / rel).write_text("".join(buf), encoding="utf-8")
                shards.append(rel)
                buf, size = [], 0
        sources.append({"name": name, "shards": shards, "documents": len(part), "weight": 1.0})
    (data_dir / "manifest.json").write_text(json.dumps({"text_key": "text", "sources": sources}))
    return sum(len(s["shards"]) for s in sources)


def time_rounds(enc, docs, cfg, run_dir: Path, cores: int, rounds: int):
    """Raw tiktoken and the stage, alternating (drifting machine load hits both alike): their times,
    token counts (the stage's without eod ids) and the MB of .bin written."""
    from qwen_hpc.stages import tokens as tokens_stage
    from qwen_hpc.stages.base import StageContext
    from qwen_hpc.tokenizer.indexed import forget_cached_tokenizer

    stage_dir = run_dir / "tokens"
    raw_times, stage_times = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        raw_tokens = sum(map(len, enc.encode_ordinary_batch(docs, num_threads=cores)))
        raw_times.append(time.perf_counter() - start)

        stage_dir.mkdir()
        forget_cached_tokenizer()  # every round loads the vocabulary in this process, as a fresh stage would
        ctx = StageContext(name="tokens", stage_dir=stage_dir, run_dir=run_dir)
        start = time.perf_counter()
        result = tokens_stage.run(cfg, ctx)
        stage_times.append(time.perf_counter() - start)
        stage_tokens = result.metrics["tokens"] - result.metrics["documents"]  # without the eod ids
        if stage_tokens != raw_tokens:
            raise SystemExit(f"token counts differ: stage {stage_tokens:,} vs raw {raw_tokens:,}")
        out_mb = sum(p.stat().st_size for p in stage_dir.glob("*.bin")) / 1e6
        shutil.rmtree(stage_dir)
    return raw_times, stage_times, raw_tokens, stage_tokens, out_mb


def main() -> None:
    # Imported here, not at module level: the stage's spawned workers re-import this script as
    # `__mp_main__`, and the benchmark's own imports (config schema, stages, BPE trainer) are no part of
    # what a worker needs to encode.
    import tiktoken
    from bpe_train import REPO, corpus_docs  # benchmarks/ is on sys.path when run as a script

    from qwen_hpc.config.schema import QwenConfig
    from qwen_hpc.tokenizer.encoding import QwenTokenizer
    from qwen_hpc.tokenizer.pattern import QWEN_PAT_STR
    from qwen_hpc.tokenizer.ranks import read_ranks

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--min-mb", type=float, default=50.0)
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--shard-mb", type=float, default=2.0)
    ap.add_argument(
        "--repeat", type=int, default=1, help="use the corpus N times (more text: fixed costs amortize)"
    )
    ap.add_argument("--rounds", type=int, default=3, help="raw and stage alternate; the best of each counts")
    ap.add_argument("--vocab", default=None, help="ranks file (default: <shared>/tokenizers/qwen.tiktoken)")
    args = ap.parse_args()
    shared = Path(os.environ.get("QWEN_HPC_SHARED_ROOT", REPO.parent / "shared"))
    vocab = Path(args.vocab) if args.vocab else shared / "tokenizers" / "qwen.tiktoken"

    # NFC first (the stage normalizes, raw tiktoken does not): both then encode exactly the same text.
    docs = [unicodedata.normalize("NFC", t) for t in corpus_docs(args.min_mb, shared)] * args.repeat
    mb = sum(len(t.encode("utf-8")) for t in docs) / 1e6
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "bench"
        n_shards = write_data_stage(docs, run_dir / "data", args.shard_mb)
        tok_dir = run_dir / "tokenizer"
        QwenTokenizer.from_files(vocab).save(tok_dir, "qwen")
        print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
        print(
            f"text: {len(docs):,} docs, {mb:.1f} MB in {n_shards} shards; vocabulary {vocab.name}; cores={args.cores}"
        )

        enc = tiktoken.Encoding(
            "raw", pat_str=QWEN_PAT_STR, mergeable_ranks=read_ranks(vocab), special_tokens={}
        )
        cfg = QwenConfig()
        cfg.tokenizer.name = "qwen"
        cfg.tokens.workers = args.cores
        cfg.launcher.kind = "local"
        raw_times, stage_times, raw_tokens, stage_tokens, out_mb = time_rounds(
            enc, docs, cfg, run_dir, args.cores, args.rounds
        )

    raw_s, stage_s = min(raw_times), min(stage_times)
    print(
        f"rounds: {args.rounds}; raw s {[round(t, 2) for t in raw_times]}, stage s {[round(t, 2) for t in stage_times]}"
    )
    print(f"{'':<34} {'seconds':>8} {'tokens/s':>12} {'MB/s':>7}")
    print(f"{'raw encode_ordinary_batch':<34} {raw_s:8.2f} {raw_tokens / raw_s:12,.0f} {mb / raw_s:7.2f}")
    print(
        f"{'tokens stage (end to end)':<34} {stage_s:8.2f} {stage_tokens / stage_s:12,.0f} {mb / stage_s:7.2f}"
    )
    print(f"tokens: {raw_tokens:,} ({out_mb:.0f} MB of .bin written)")
    print(f"stage / raw tiktoken throughput (best of {args.rounds}): {raw_s / stage_s:.2f}x (target >= 0.9)")
    print(f"median of rounds: {statistics.median(raw_times) / statistics.median(stage_times):.2f}x")


if __name__ == "__main__":
    main()
