"""The per-shard step of curation: one input file or part of one (`split.plan_file`, about `data.task_mb`)
in, its local verdicts and its MinHash signatures out.

This is the part that scales out: `process_shard(plan, task)` is a pure function of the plan (config,
sources, paths of the eval index and quality model) and one file part, so it runs the same in this process,
in a process pool, or as one task of a Slurm job array (`qwen_hpc.launch.array`). It reads the part, drops what
the local filters reject (read errors, empty, length, language, Gopher/C4 rules, contamination, quality
model — each under its reason), and for the survivors writes what the global merge step needs:

    <work>/shards/<key>/docs.jsonl     survivors: id, source, file, line, text, meta
    <work>/shards/<key>/dropped.jsonl  local drops, one line each (the format of the final dropped.jsonl)
    <work>/shards/<key>/ids.txt        survivor ids, one a line
    <work>/shards/<key>/arrays.npz     digest (16-byte exact-dedup key), nbytes per survivor
    <work>/shards/<key>/offsets.npy    byte offset of each survivor in docs.jsonl
    <work>/shards/<key>/sig.npy        MinHash signatures; band_keys.npy, band_rows.npy: sorted LSH keys
                                       per band (the files of the sharded fuzzy dedup, `lsh`)
    <work>/shards/<key>/stats.json     read, dropped by reason, per-filter books
    <work>/shards/<key>/_DONE.json     written last, holds the plan key: a rerun skips a finished shard

Nothing here knows where it runs (style rule 2).
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qwen_hpc.data.config import DataConfig, SourceConfig
from qwen_hpc.data.document import Document
from qwen_hpc.data.filters import EmptyFilter, Filter, FilterChain, LengthFilter, ReadErrorFilter
from qwen_hpc.data.lsh import write_band_files
from qwen_hpc.data.minhash import LSHParams, MinHasher
from qwen_hpc.data.normalize import Normalizer
from qwen_hpc.data.readers import read_part, read_source
from qwen_hpc.data.writer import json_line
from qwen_hpc.utils.io import atomic_dir, read_json, write_json

DROPPED_HEAD_CHARS = 160
SIGNATURE_BATCH = 2048


@dataclass(frozen=True)
class ShardTask:
    """One input file of one source, or one part of it (`span`: see `split.Part`); `index` is its place in
    the global reading order."""

    index: int
    source: int
    file_index: int
    path: str
    part: int = 0
    span: tuple[int, int, int] | None = None  # (start, end, lines before) of a part; None: the whole file

    def key(self, sources: list[SourceConfig]) -> str:
        return f"{self.index:06d}-{sources[self.source].name}-{self.file_index:05d}-{self.part:05d}"

    def documents(self, source: SourceConfig) -> Iterator[Document]:
        if self.span is None:
            return read_source(source, [Path(self.path)], first_index=self.file_index)
        return read_part(source, self.file_index, Path(self.path), self.span)


@dataclass
class CurationPlan:
    """Everything a shard task needs (picklable: it travels to Slurm array tasks)."""

    cfg: DataConfig
    sources: list[SourceConfig]
    work_dir: str
    key: str
    eval_index: str | None = None
    quality_model: str | None = None
    tasks: list[ShardTask] = field(default_factory=list)

    def shard_dir(self, task: ShardTask) -> Path:
        return Path(self.work_dir) / "shards" / task.key(self.sources)


def dropped_line(doc: Document, reason: str, detail: str = "") -> str:
    return json_line(
        {
            "id": doc.id,
            "source": doc.source,
            "file": doc.file,
            "line": doc.line,
            "reason": reason,
            "detail": detail or doc.error_detail,
            "chars": len(doc.text),
            "text_head": doc.text[:DROPPED_HEAD_CHARS],
        }
    )


def local_filters(plan: CurationPlan) -> FilterChain:
    """The per-document chain, cheapest first; dedup is global and happens in the merge step."""
    cfg = plan.cfg
    kinds = {s.name: s.kind for s in plan.sources}
    chain: list[Filter] = [ReadErrorFilter(), EmptyFilter(), LengthFilter(cfg.min_chars, cfg.max_chars)]
    if cfg.language_id.enabled:
        from qwen_hpc.data.langid import LanguageFilter

        chain.append(LanguageFilter(cfg.language_id, {s.name: s.language for s in plan.sources}, kinds))
    if cfg.quality_rules.enabled:
        from qwen_hpc.data.quality import QualityRuleFilter

        chain.append(QualityRuleFilter(cfg.quality_rules, kinds))
    if plan.eval_index:
        from qwen_hpc.data.decontam import DecontaminationFilter, load_index

        chain.append(DecontaminationFilter(load_index(plan.eval_index)))
    if plan.quality_model:
        from qwen_hpc.data.quality_model import QualityModel, QualityModelFilter

        model = QualityModel.load(Path(plan.quality_model))
        chain.append(QualityModelFilter(model, kinds))
    return FilterChain(chain)


def process_shard(plan: CurationPlan, task: ShardTask) -> dict[str, Any]:
    """Run the local filters over one file and write its survivors, drops and signatures (see module doc).
    Returns the shard's stats; a shard already finished under the same plan key is not redone."""
    final = plan.shard_dir(task)
    done = final / "_DONE.json"
    if done.exists() and read_json(done).get("key") == plan.key:
        return read_json(final / "stats.json")
    if final.exists():
        shutil.rmtree(final)
    source = plan.sources[task.source]
    chain = local_filters(plan)
    normalizer = Normalizer(plan.cfg.normalize)
    hasher = MinHasher(plan.cfg.minhash) if plan.cfg.minhash.enabled else None
    read, dropped = 0, Counter()
    digests, nbytes, sigs, batch, ids = [], [], [], [], []
    offsets, pos = [], 0
    with atomic_dir(final) as tmp:
        with open(tmp / "docs.jsonl", "wb") as docs_fh, open(
            tmp / "dropped.jsonl", "w", encoding="utf-8", newline="\n"
        ) as drop_fh:
            for doc in task.documents(source):
                read += 1
                reason = chain(doc)
                if reason is not None:
                    dropped[reason] += 1
                    drop_fh.write(dropped_line(doc, reason))
                    continue
                line = json_line({"id": doc.id, "source": doc.source, "file": doc.file,
                                  "line": doc.line, "text": doc.text, "meta": doc.meta}).encode("utf-8")
                docs_fh.write(line)
                offsets.append(pos)
                pos += len(line)
                ids.append(doc.id)
                digests.append(normalizer.digest(doc.text))
                nbytes.append(len(doc.text.encode("utf-8")))
                if hasher is not None:
                    batch.append(doc.text)
                    if len(batch) >= SIGNATURE_BATCH:
                        sigs.append(hasher.signatures(batch))
                        batch = []
        if hasher is not None and batch:
            sigs.append(hasher.signatures(batch))
        perms = plan.cfg.minhash.num_perm
        sig = np.concatenate(sigs) if sigs else np.empty((0, perms if hasher else 0), dtype=np.uint32)
        with open(tmp / "arrays.npz", "wb") as fh:
            np.savez(fh, digest=np.array(digests, dtype="S16"), nbytes=np.array(nbytes, dtype=np.int64))
        np.save(tmp / "offsets.npy", np.array(offsets, dtype=np.int64))
        if hasher is not None:  # what the sharded fuzzy dedup reads (qwen_hpc.data.lsh)
            np.save(tmp / "sig.npy", sig)
            write_band_files(tmp, sig, LSHParams.from_config(plan.cfg.minhash))
        (tmp / "ids.txt").write_text("".join(i + "\n" for i in ids), encoding="utf-8")
        stats = {"task": task.index, "source": source.name, "file": task.path, "part": task.part,
                 "span": list(task.span) if task.span else None, "read": read,
                 "survivors": len(digests), "dropped": dict(sorted(dropped.items())), "filters": chain.stats()}
        write_json(tmp / "stats.json", stats)
        write_json(tmp / "_DONE.json", {"key": plan.key})
    return stats


def survivor_ids(plan: CurationPlan, task: ShardTask) -> list[str]:
    return (plan.shard_dir(task) / "ids.txt").read_text(encoding="utf-8").splitlines()


def iter_survivors(plan: CurationPlan, task: ShardTask):  # noqa: ANN201 - a generator of records
    with open(plan.shard_dir(task) / "docs.jsonl", encoding="utf-8") as fh:
        for line in fh:
            yield json.loads(line)
