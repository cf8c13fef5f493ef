"""Benchmark: BPE training on the same >= 50 MB corpus and vocabulary size — our trainer
(`qwen_hpc.tokenizer.train.train_bpe`, engine auto = rustbpe behind NFC normalization and the Qwen pattern)
against raw `rustbpe` and raw Hugging Face `tokenizers` (claim: ours <= 1.0x the fastest of them).

The corpus is the offline dataset bundle (GSM8K, MATH, MBPP, MMLU, UD Chinese-GSDSimp, CMMLU) topped up with
the project's embedded corpus (stdlib code, package docs) and installed packages' Python files to `--min-mb`. One run per trainer; the pure-Python
engine is timed on a `--python-mb` subset only (it is the slow fallback).

    python benchmarks/bpe_train.py                       # 50 MB, vocab 4096
    python benchmarks/bpe_train.py --min-mb 100 --vocab-size 32768
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from qwen_hpc.tokenizer.indexed import iter_jsonl_texts
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
    """The texts of .jsonl files (through the product's JSONL reader) or whole text files."""
    for p in paths:
        if p.endswith(".jsonl"):
            yield from iter_jsonl_texts(p, key)
        else:
            yield Path(p).read_text(encoding="utf-8")


def embedded_docs(max_chars_per_source: int) -> Iterator[str]:
    """The project's embedded corpus (stdlib code + installed-package prose), built in a temp folder."""
    import tempfile

    from qwen_hpc.data.embedded import build_embedded_corpus

    with tempfile.TemporaryDirectory() as tmp:
        sources = build_embedded_corpus(Path(tmp), 10**9, max_chars_per_source=max_chars_per_source)
        for name in ("code", "prose"):
            path = Path(tmp) / f"{name}.jsonl"
            if path.is_file():
                yield from iter_jsonl_texts(path, "text")
        del sources


def site_packages_code() -> Iterator[str]:
    """Python files of the installed packages (torch, numpy, megatron ...), sorted by path: more real
    text when the bundle and the embedded corpus (which takes only stdlib code) fall short."""
    import site

    for root in sorted({Path(p) for p in site.getsitepackages()}):
        for path in sorted(root.rglob("*.py")):
            try:
                text = path.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                continue
            if len(text) >= 500:
                yield text


def corpus_docs(min_mb: float, shared: Path | None = None) -> list[str]:
    """At least `min_mb` MB (UTF-8) of documents: the offline dataset bundle, then the embedded corpus, then
    Python files of the installed packages.

    Shared with benchmarks/tokens_throughput.py. Raises if the two together are smaller."""
    shared = shared or Path(os.environ.get("QWEN_HPC_SHARED_ROOT", REPO.parent / "shared"))
    docs = list(bundle_docs(shared))
    size = sum(len(t.encode("utf-8")) for t in docs)
    need = int(min_mb * 1e6)
    if size < need:
        for text in embedded_docs(max_chars_per_source=need):
            docs.append(text)
            size += len(text.encode("utf-8"))
    if size < need:
        for text in site_packages_code():
            docs.append(text)
            size += len(text.encode("utf-8"))
            if size >= need:
                break
    if size < need:
        raise SystemExit(f"only {size / 1e6:.1f} MB of text available, {min_mb} MB asked")
    return docs


def raw_rustbpe(docs: list[str], vocab_size: int) -> int:
    import rustbpe

    trainer = rustbpe.Tokenizer()
    trainer.train_from_iterator(iter(docs), vocab_size, pattern=QWEN_PAT_STR)
    return len(trainer.get_mergeable_ranks())


def raw_hf(docs: list[str], vocab_size: int) -> int:
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN_PAT_STR), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=0,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(docs, trainer)
    return tok.get_vocab_size()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vocab-size", type=int, default=4096)
    ap.add_argument("--min-mb", type=float, default=50.0, help="corpus size (bundle + embedded corpus)")
    ap.add_argument(
        "--python-mb", type=float, default=2.0, help="also time engine=python on this many MB (0: skip)"
    )
    ap.add_argument("--text", action="append", default=None, help="text or .jsonl file(s) instead")
    ap.add_argument("--text-key", default="text")
    args = ap.parse_args()

    t0 = time.perf_counter()
    docs = list(file_docs(args.text, args.text_key)) if args.text else corpus_docs(args.min_mb)
    mb = sum(len(t.encode("utf-8")) for t in docs) / 1e6
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(
        f"corpus: {len(docs):,} docs, {mb:.1f} MB (built in {time.perf_counter() - t0:.0f}s); vocab_size={args.vocab_size}"
    )

    runs: dict[str, tuple[Callable[[], object], float]] = {
        "ours (train_bpe, engine=auto)": (lambda: train_bpe(docs, args.vocab_size), mb),
    }
    installed = available_engines()
    if "rustbpe" in installed:
        runs["rustbpe (raw)"] = (lambda: raw_rustbpe(docs, args.vocab_size), mb)
    if "hf" in installed:
        runs["HF tokenizers (raw)"] = (lambda: raw_hf(docs, args.vocab_size), mb)
    if args.python_mb > 0:
        small = list(cap_chars(docs, int(args.python_mb * 1e6)))
        small_mb = sum(len(t.encode("utf-8")) for t in small) / 1e6
        runs["ours engine=python"] = (lambda: train_bpe(small, args.vocab_size, engine="python"), small_mb)

    times: dict[str, float] = {}
    for name, (fn, _) in runs.items():  # one run each
        start = time.perf_counter()
        fn()
        times[name] = time.perf_counter() - start
    full = {n: t for n, t in times.items() if runs[n][1] == mb}
    fastest = min((t for n, t in full.items() if not n.startswith("ours")), default=min(full.values()))
    print(f"{'trainer':<32} {'MB':>6} {'seconds':>8} {'MB/s':>7} {'x fastest other':>16}")
    for name, t in times.items():
        size = runs[name][1]
        ratio = f"{t / fastest:16.2f}" if size == mb else f"{'(subset)':>16}"
        print(f"{name:<32} {size:6.1f} {t:8.1f} {size / t:7.2f} {ratio}")
    ours = times["ours (train_bpe, engine=auto)"]
    print(f"ours / fastest other trainer on the same corpus: {ours / fastest:.2f}x (target <= 1.0)")


if __name__ == "__main__":
    main()
