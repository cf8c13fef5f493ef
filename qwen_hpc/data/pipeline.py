"""Data curation, end to end (Qwen report §2.1, spec §1.2): read → filter → exact + fuzzy dedup →
decontaminate → score → mix → shards, with every document accounted for.

Two phases, so the expensive part scales out (the DataTrove pattern: steps don't know where they run):

1. **Per shard** (`shard.process_shard`, one task per input file or per `data.task_mb` part of a larger one
   (`split`), run through `map_fn`: in this process by
   default, a process pool or a Slurm job array when the stage passes one): local filters and MinHash
   signatures. Before it, once: the eval n-gram index is built or loaded from the cache, and the quality
   model is trained on the reference set vs a sample of the raw pool.
2. **Merge** (here): exact dedup on the normalized-text digests; fuzzy dedup as map steps through the same
   `map_fn` (`lsh`: LSH per band range, verification per pair part, then connected components of the
   verified pairs here); the mixture (upsampling, token budget), the validation split, then the shards are
   written. Which duplicate survives depends only on the global reading order:
   `sources` in order, files sorted within a source, records in file order.

Output, inside `out_dir`:

    shards/<source>-00000.jsonl      kept training documents, {"id", "source", "text", "meta"} per line
    validation/<source>-00000.jsonl  the held-out split (DataConfig.validation), same format
    dropped.jsonl                    one line per dropped record, in reading order: id, source, file, line,
                                     reason, detail
    stats.json                       read / kept / dropped by reason, per source, per filter, the funnel,
                                     dedup and quality-model records
    funnel.png                       documents remaining after each step
    manifest.json                    {"sources": [{name, shards, documents, chars, weight, ...}], "text_key"}

Every file is written atomically and `manifest.json` last; `read == kept + Σ dropped` is checked before
anything is published, and if it fails (or anything raises) the work folder is removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import heapq
import json
import logging
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from qwen_hpc.data.config import EMBEDDED_SOURCE_NAMES, DataConfig, SourceConfig
from qwen_hpc.data.document import Document
from qwen_hpc.data.normalize import Normalizer
from qwen_hpc.data.readers import read_source, source_files
from qwen_hpc.data.shard import (
    CurationPlan,
    ShardTask,
    dropped_line,
    iter_survivors,
    process_shard,
    survivor_ids,
)
from qwen_hpc.data.split import plan_file
from qwen_hpc.data.stats import CurationStats
from qwen_hpc.data.writer import ShardWriter
from qwen_hpc.parallel.maps import sequential_map
from qwen_hpc.utils.hashing import hash_obj
from qwen_hpc.utils.io import atomic_dir, atomic_path, read_json, write_bytes, write_json

log = logging.getLogger(__name__)
PROSE = EMBEDDED_SOURCE_NAMES[0]

TEXT_KEY = "text"
MapFn = Callable[[Callable[[ShardTask], Any], Sequence[ShardTask]], list[Any]]


def prepare_sources(cfg: DataConfig, embedded_dir: Path) -> list[SourceConfig]:
    """The configured sources, then (if `cfg.embedded_corpus`) the embedded corpus built into `embedded_dir`.

    Configured sources come first, so when a document appears in both, the configured copy is kept."""
    sources = list(cfg.sources)
    if cfg.embedded_corpus:
        from qwen_hpc.data.embedded import build_embedded_corpus

        sources += build_embedded_corpus(
            Path(embedded_dir),
            cfg.embedded_max_docs_per_source,
            max_chars_per_source=cfg.embedded_max_chars_per_source,
        )
    return sources


def in_validation(normalizer: Normalizer, text: str, fraction: float, seed: int) -> bool:
    """Content-addressed split: the same text lands on the same side whatever the reading order."""
    if fraction <= 0.0:
        return False
    h = hashlib.blake2b(normalizer.digest(text), digest_size=8, key=seed.to_bytes(8, "little"))
    return int.from_bytes(h.digest(), "little") < fraction * 2**64


def plan_tasks(sources: list[SourceConfig], task_mb: float = 0.0) -> list[ShardTask]:
    """One task per file, or per part of about `task_mb` MB of a larger file (`split.plan_file`; 0: whole
    files), in the global reading order."""
    task_bytes = int(task_mb * 1_000_000)
    tasks: list[ShardTask] = []
    for s, source in enumerate(sources):
        for f, path in enumerate(source_files(source)):
            parts = plan_file(source, path, task_bytes)
            if parts is None:
                tasks.append(ShardTask(len(tasks), s, f, str(path)))
                continue
            for k, p in enumerate(parts):
                tasks.append(ShardTask(len(tasks), s, f, str(path), k, (p.start, p.end, p.before)))
    return tasks


# ----------------------------------------------------------------------------------- once, before shards


def _id_key(doc_id: str, salt: bytes = b"") -> int:
    return int.from_bytes(hashlib.blake2b(doc_id.encode(), digest_size=8, key=salt).digest(), "little")


def _samples(cfg: DataConfig, sources: list[SourceConfig]) -> tuple[list[str], list[str]]:
    """(held-apart embedded positives, pool sample). The pool sample is the bottom-k (smallest id hash) of
    the readable, non-empty documents of `text` sources. When `quality_model.positives` is empty, a seeded
    hash slice of the embedded prose (`embedded_positives`) is held apart as positives and never sampled."""
    qm = cfg.quality_model
    slice_of = PROSE if cfg.embedded_corpus and not qm.positives and qm.embedded_positives > 0 else None
    salt = f"quality-positives-{qm.seed}".encode()
    heap: list[tuple[int, str]] = []  # max-heap via negated keys
    positives: list[str] = []
    for source in sources:
        if source.kind != "text":
            continue
        for doc in read_source(source):
            if doc.error or not doc.text.strip() or len(doc.text) > cfg.max_chars:
                continue
            if source.name == slice_of and _id_key(doc.id, salt) < qm.embedded_positives * 2**64:
                positives.append(doc.text)
                continue
            key = _id_key(doc.id)
            if len(heap) < qm.pool_docs:
                heapq.heappush(heap, (-key, doc.text))
            elif -heap[0][0] > key:
                heapq.heapreplace(heap, (-key, doc.text))
    return positives, [t for _, t in sorted(heap, reverse=True)]


def _positive_files(cfg: DataConfig) -> list[str]:
    from qwen_hpc.data.config import SourceConfig as _Source

    texts: list[str] = []
    for i, pattern in enumerate(cfg.quality_model.positives):
        fmt = "jsonl" if ".jsonl" in pattern else "text"
        ref = _Source(name=f"positives{i}", paths=[pattern], format=fmt, text_unit="paragraph")
        texts += [d.text for d in read_source(ref) if not d.error and d.text.strip()]
    return texts


def _train_quality_model(cfg: DataConfig, sources: list[SourceConfig], work: Path) -> tuple[str | None, dict]:
    if not cfg.quality_model.enabled or not any(s.kind == "text" for s in sources):
        return None, {}
    from qwen_hpc.data.quality_model import train

    embedded, sample = _samples(cfg, sources)
    if cfg.quality_model.positives:
        positives = _positive_files(cfg)
        origin: dict[str, Any] = {"paths": list(cfg.quality_model.positives)}
    else:
        positives = embedded
        origin = {"embedded_prose_slice": cfg.quality_model.embedded_positives if embedded else None}
    held_apart = set(positives)
    pool = [t for t in sample if t not in held_apart]  # a positive is never also a negative
    if len(positives) < 4 or len(pool) < 4:
        log.warning("quality model skipped: %d positive and %d pool documents (give quality_model.positives)",
                    len(positives), len(pool))
        return None, {"skipped": f"{len(positives)} positive and {len(pool)} pool documents", "positives": origin}
    model, info = train(positives, pool, cfg.quality_model)
    info["positives"] = origin
    info["pool"] = {"sources": [s.name for s in sources if s.kind == "text"], "sample": "smallest blake2b(id)",
                    "positives_left_out": len(sample) - len(pool)}
    path = work / "quality_model.npz"
    model.save(path)
    log.info("quality model: held-out accuracy %.3f, ROC-AUC %.3f; %.1f%% of the pool sample below P(good) %.2f",
             info["heldout_accuracy"], info["heldout_roc_auc"], 100 * info["pool_below_threshold"], info["threshold"])
    return str(path), info


# ----------------------------------------------------------------------------------------------- curate


def curate(
    cfg: DataConfig,
    sources: list[SourceConfig],
    out_dir: Path,
    *,
    progress: bool = True,
    map_fn: MapFn | None = None,
    data_root: Path | str | None = None,
    cache_dir: Path | None = None,
    earlier_caches: tuple[Path, ...] = (),
) -> CurationStats:
    """Curate `sources` into `out_dir` (see the module docstring) and return the books.

    `map_fn(fn, tasks)` runs the per-shard step (default: here, one after the other); `data_root` is where
    the evaluation sets for decontamination are; `cache_dir` keeps the eval n-gram index between runs, and an
    identical index in one of `earlier_caches` is reused instead of rebuilt."""
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise ValueError(f"source names must be unique: {names}")
    out_dir = Path(out_dir)
    work = out_dir / "work"
    started = time.perf_counter()
    try:
        plan = _plan(cfg, sources, work, data_root, cache_dir or work / "cache", earlier_caches)
        map_fn = map_fn or sequential_map
        summaries = map_fn(_ShardCall(plan), plan.tasks)
        stats = _merge(plan, summaries, out_dir, started, map_fn)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    shutil.rmtree(work / "shards", ignore_errors=True)  # published: the intermediate copies can go
    log.info("curated %d documents: kept %d, dropped %s in %.1fs", stats.read, stats.kept,
             dict(sorted(stats.dropped.items())), stats.elapsed_s)
    return stats


class _ShardCall:
    """`process_shard` bound to a plan; a picklable callable for process pools and Slurm arrays."""

    def __init__(self, plan: CurationPlan) -> None:
        self.plan = plan

    def __call__(self, task: ShardTask) -> dict[str, Any]:
        return process_shard(self.plan, task)


def _plan(
    cfg: DataConfig, sources: list[SourceConfig], work: Path, data_root: Any, cache_dir: Path,
    earlier_caches: tuple[Path, ...] = (),
) -> CurationPlan:
    work.mkdir(parents=True, exist_ok=True)
    eval_index = None
    if cfg.decontamination.enabled:
        if data_root is None:
            raise ValueError("data.decontamination is enabled but no data root was given (run.data_root)")
        from qwen_hpc.data.decontam import cached_index

        eval_index = str(cached_index(cache_dir, Path(data_root), list(cfg.decontamination.benchmarks),
                                      cfg.decontamination.n, also_look_in=tuple(earlier_caches),
                                      require_all=cfg.decontamination.require_all))
    model_path, model_info = _train_quality_model(cfg, sources, work)
    if model_info:
        write_json(work / "quality_model.json", model_info)
    tasks = plan_tasks(sources, cfg.task_mb)
    log.info("per-shard step: %d tasks over %d files", len(tasks), len({t.path for t in tasks}))
    model_hash = hashlib.sha256(Path(model_path).read_bytes()).hexdigest() if model_path else None
    key = hash_obj({"cfg": _plain(cfg), "sources": [_plain(s) for s in sources], "index": eval_index,
                    "model": model_hash, "tasks": [(t.path, t.span) for t in tasks]})
    return CurationPlan(cfg, sources, str(work), key, eval_index, model_path, tasks)


def _plain(obj: Any) -> Any:
    import dataclasses

    return dataclasses.asdict(obj)


# ------------------------------------------------------------------------------------------------ merge


def _merge(plan: CurationPlan, summaries: list[dict[str, Any]], out_dir: Path, started: float,
           map_fn: MapFn = sequential_map) -> CurationStats:
    cfg, sources, tasks = plan.cfg, plan.sources, plan.tasks
    stats = CurationStats()
    arrays = [_load_arrays(plan.shard_dir(t) / "arrays.npz") for t in tasks]
    digest = np.concatenate([a["digest"] for a in arrays]) if arrays else np.empty(0, "S16")
    nbytes = np.concatenate([a["nbytes"] for a in arrays]) if arrays else np.empty(0, np.int64)
    counts = [len(a["digest"]) for a in arrays]
    task_of = np.repeat(np.arange(len(tasks)), counts)
    ids = [i for t in tasks for i in survivor_ids(plan, t)]
    fate = np.zeros(len(digest), dtype=np.int8)  # 0 kept, 1 exact, 2 near, 3 over budget
    rep = np.arange(len(digest))
    # exact dedup: the first copy in reading order survives
    _, first = np.unique(digest, return_index=True)
    exact_keep = np.zeros(len(digest), dtype=bool)
    exact_keep[first] = True
    fate[~exact_keep] = 1
    inverse = np.unique(digest, return_inverse=True)[1] if len(digest) else np.empty(0, np.int64)
    first_of = first[inverse] if len(digest) else rep
    rep[~exact_keep] = first_of[~exact_keep]
    dedup_info: dict[str, Any] = {"exact_duplicates": int((~exact_keep).sum())}
    sim = np.zeros(len(digest))
    if cfg.minhash.enabled and len(digest):
        from qwen_hpc.data.lsh import make_plan, near_duplicates_sharded
        from qwen_hpc.data.minhash import LSHParams

        fuzzy = make_plan(cfg.minhash, Path(plan.work_dir) / "fuzzy", [plan.shard_dir(t) for t in tasks],
                          counts, exact_keep)
        found, books = near_duplicates_sharded(fuzzy, map_fn)
        fate[found.dropped] = 2
        rep[found.dropped] = found.representative
        sim[found.dropped] = found.similarity
        params = LSHParams.from_config(cfg.minhash)
        dedup_info.update(near_duplicates=len(found.dropped), candidate_pairs=books["candidates"],
                          verified_pairs=books["verified"], bands=params.bands, rows=params.rows,
                          scheme=cfg.minhash.scheme, num_perm=cfg.minhash.num_perm,
                          shingle=f"{cfg.minhash.shingle_size}-{cfg.minhash.shingle}",
                          threshold=cfg.minhash.threshold, verify=cfg.minhash.verify,
                          texts_reread=books["texts_read"], lsh_tasks=len(fuzzy.tasks))
    mix = _mixture(plan, fate, nbytes, ids, task_of)
    for t, summary in zip(tasks, summaries, strict=True):
        stats.add_counts(sources[t.source].name, summary["read"], summary["dropped"])
    stats.filters = _merge_filter_stats(summaries)
    entries = _write_outputs(plan, out_dir, stats, fate, rep, sim, ids, mix)
    stats.filters["dedup"] = dedup_info
    stats.check()  # nothing is published (renamed into place) unless the books balance
    stats.elapsed_s = time.perf_counter() - started
    _publish(plan, out_dir, stats, entries, mix)
    return stats


def _load_arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as z:  # read now and close: a run can have thousands of shards
        return {k: z[k] for k in ("digest", "nbytes")}


def _mixture(plan: CurationPlan, fate: np.ndarray, nbytes: np.ndarray, ids: list[str], task_of: np.ndarray):  # noqa: ANN202
    from qwen_hpc.data.mixture import plan_mixture

    sources = plan.sources
    src_of = np.array([plan.tasks[t].source for t in task_of], dtype=np.int64)
    alive = [np.flatnonzero((src_of == s) & (fate == 0)) for s in range(len(sources))]
    plans = plan_mixture(plan.cfg.mixture, [s.name for s in sources], [s.upsample for s in sources],
                         [nbytes[a] for a in alive], [[ids[i] for i in a] for a in alive])
    for a, p in zip(alive, plans, strict=True):
        fate[a[~p.keep]] = 3
    return plans


def _merge_filter_stats(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    total: dict[str, Any] = {}
    for summary in summaries:
        for name, books in summary["filters"].items():
            acc = total.setdefault(name, {})
            for key, value in books.items():
                if isinstance(value, dict):
                    sub = acc.setdefault(key, {})
                    for k, v in value.items():
                        sub[k] = sub.get(k, 0) + v
                else:
                    acc[key] = acc.get(key, 0) + value
    return {name: {k: (dict(sorted(v.items())) if isinstance(v, dict) else v) for k, v in books.items()}
            for name, books in total.items()}


_MERGE_REASONS = {1: "exact_duplicate", 2: "near_duplicate", 3: "over_budget"}


def _write_outputs(plan, out_dir, stats, fate, rep, sim, ids, mix) -> list[dict[str, Any]]:  # noqa: ANN001
    """Stream every shard's survivors once: kept ones to train/validation shards, the rest to dropped."""
    cfg, sources = plan.cfg, plan.sources
    normalizer = Normalizer(cfg.normalize)
    jaccard = "Jaccard" if cfg.minhash.verify == "exact" else "est. Jaccard"
    entries: list[dict[str, Any]] = []
    g = 0  # global survivor index
    with contextlib.ExitStack() as stack:
        shard_dir = stack.enter_context(atomic_dir(out_dir / "shards"))
        val_dir = stack.enter_context(atomic_dir(out_dir / "validation"))
        dropped_tmp = stack.enter_context(atomic_path(out_dir / "dropped.jsonl"))
        dropped_fh = stack.enter_context(open(dropped_tmp, "w", encoding="utf-8", newline="\n"))
        for s, source in enumerate(sources):
            stats.source(source.name).files = list(dict.fromkeys(t.path for t in plan.tasks if t.source == s))
            with (
                ShardWriter(shard_dir, source.name, cfg.shard_max_docs) as train,
                ShardWriter(val_dir, source.name, cfg.shard_max_docs) as val,
            ):
                for task in (t for t in plan.tasks if t.source == s):
                    local = stack.enter_context(open(plan.shard_dir(task) / "dropped.jsonl", encoding="utf-8"))
                    pending = _LocalDrops(local, dropped_fh)  # dropped.jsonl in reading order, however split
                    for rec in iter_survivors(plan, task):
                        pending.flush_before(rec["line"])
                        doc = Document(rec["id"], rec["text"], rec["source"], rec["meta"], rec["file"], rec["line"])
                        if fate[g]:
                            reason = _MERGE_REASONS[int(fate[g])]
                            detail = f"duplicate of {ids[rep[g]]}" + (f" ({jaccard} {sim[g]:.2f})" if fate[g] == 2 else "")
                            dropped_fh.write(dropped_line(doc, reason, detail if fate[g] != 3 else "token budget"))
                            stats.record_dropped(source.name, reason, count_read=False)
                        else:
                            held = in_validation(normalizer, doc.text, cfg.validation.fraction, cfg.validation.seed)
                            (val if held else train).write(doc)
                            stats.record_kept(source.name, len(doc.text), validation=held, count_read=False)
                        g += 1
                    pending.flush_before(None)
                    local.close()
            entries.append(_manifest_entry(source, train, val, mix[s]))
        stats.check()  # inside the ExitStack: an unbalanced book aborts before the renames
    return entries


class _LocalDrops:
    """A task's local drops (in line order), written out interleaved with its merge-step verdicts."""

    def __init__(self, local: Any, out: Any) -> None:
        self.lines, self.out = iter(local), out
        self.head: str | None = next(self.lines, None)

    def flush_before(self, line: int | None) -> None:
        while self.head is not None and (line is None or json.loads(self.head)["line"] < line):
            self.out.write(self.head)
            self.head = next(self.lines, None)


def _manifest_entry(source: SourceConfig, train: ShardWriter, val: ShardWriter, mix: Any) -> dict[str, Any]:
    return {
        "name": source.name,
        "shards": [f"shards/{p.name}" for p in train.paths],
        "documents": train.documents,
        "chars": train.chars,
        "weight": mix.weight,
        "upsample": source.upsample,
        "estimated_tokens": round(mix.tokens),
        "target_tokens": round(mix.target_tokens),
        "language": source.language,
        "kind": source.kind,
        "validation": {
            "shards": [f"validation/{p.name}" for p in val.paths],
            "documents": val.documents,
            "chars": val.chars,
        },
    }


def _publish(plan: CurationPlan, out_dir: Path, stats: CurationStats, entries: list[dict], mix: list) -> None:
    from qwen_hpc.data.funnel import funnel, funnel_png

    rows = funnel(stats.read, stats.dropped)
    model_json = Path(plan.work_dir) / "quality_model.json"
    record = stats.to_dict()
    record["funnel"] = rows
    record["quality_model"] = read_json(model_json) if model_json.exists() else None
    if plan.eval_index:
        record["decontamination"] = read_json(Path(plan.eval_index).with_suffix(".json"))
    record["mixture"] = {m.name: {"estimated_tokens": round(m.tokens), "upsample": m.upsample,
                                  "target_tokens": round(m.target_tokens), "weight": m.weight} for m in mix}
    if record["quality_model"]:
        write_json(out_dir / "quality_model.json", record["quality_model"])
    write_bytes(out_dir / "funnel.png", funnel_png(rows))
    write_json(out_dir / "stats.json", record)
    write_json(out_dir / "manifest.json", {"sources": entries, "text_key": TEXT_KEY})
