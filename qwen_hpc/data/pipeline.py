"""Data curation, end to end: read every source, filter, exact-dedup, split off validation, write shards.

Implements the rule-based and exact-dedup part of Qwen's pretraining data pipeline (report §2.1,
spec §1.2) and its "selective up-sampling" as per-source blend weights. Output, inside `out_dir`:

    shards/<source>-00000.jsonl      kept training documents, {"id", "source", "text", "meta"} per line
    validation/<source>-00000.jsonl  the held-out split (DataConfig.validation), same format
    dropped.jsonl                    one line per dropped record: id, source, file, line, reason, detail
    stats.json                       read / kept / dropped by reason, in total, per source and per filter
    manifest.json                    {"sources": [{name, shards, documents, chars, weight, ...}], "text_key"}

Every file is written atomically and the shard folders are replaced as a whole, so a rerun never mixes
old and new shards; `manifest.json` is written last. Bad input never raises: each record read ends up
kept or dropped under exactly one reason, and `read == kept + Σ dropped` is checked before anything is
published. Reading order (and so which duplicate survives) is fixed: `sources` in the order given, files
sorted within a source, records in file order.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from qwen_hpc.data.config import DataConfig, SourceConfig
from qwen_hpc.data.dedup import ExactDedupFilter
from qwen_hpc.data.document import Document
from qwen_hpc.data.filters import EmptyFilter, FilterChain, LengthFilter, ReadErrorFilter
from qwen_hpc.data.normalize import Normalizer
from qwen_hpc.data.readers import read_source, source_files
from qwen_hpc.data.stats import CurationStats
from qwen_hpc.data.writer import ShardWriter, json_line
from qwen_hpc.utils.io import atomic_dir, atomic_path, write_json

log = logging.getLogger(__name__)

TEXT_KEY = "text"
DROPPED_HEAD_CHARS = 160


def build_filters(cfg: DataConfig, normalizer: Normalizer) -> FilterChain:
    """The curation chain, cheapest first. Exact dedup comes last so only documents that pass every rule
    claim a fingerprint. Later filters (language ID, quality, MinHash, decontamination) are added here."""
    return FilterChain(
        [
            ReadErrorFilter(),
            EmptyFilter(),
            LengthFilter(cfg.min_chars, cfg.max_chars),
            ExactDedupFilter(normalizer),
        ]
    )


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


def curate(
    cfg: DataConfig, sources: list[SourceConfig], out_dir: Path, *, progress: bool = True
) -> CurationStats:
    """Curate `sources` into `out_dir` (see the module docstring for the layout) and return the books."""
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise ValueError(f"source names must be unique: {names}")
    out_dir = Path(out_dir)
    started = time.perf_counter()
    normalizer = Normalizer(cfg.normalize)
    chain = build_filters(cfg, normalizer)
    stats = CurationStats()
    entries: list[dict[str, Any]] = []

    with contextlib.ExitStack() as stack:
        shard_dir = stack.enter_context(atomic_dir(out_dir / "shards"))
        val_dir = stack.enter_context(atomic_dir(out_dir / "validation"))
        dropped_tmp = stack.enter_context(atomic_path(out_dir / "dropped.jsonl"))
        dropped_fh = stack.enter_context(open(dropped_tmp, "w", encoding="utf-8", newline="\n"))
        for source in sources:
            files = source_files(source)
            stats.source(source.name).files = [str(p) for p in files]
            with (
                ShardWriter(shard_dir, source.name, cfg.shard_max_docs) as train,
                ShardWriter(val_dir, source.name, cfg.shard_max_docs) as val,
            ):
                docs = read_source(source, files)
                for doc in tqdm(docs, desc=f"data/{source.name}", unit="doc", disable=not progress):
                    stats.record_read(source.name)
                    reason = chain(doc)
                    if reason is not None:
                        stats.record_dropped(source.name, reason)
                        dropped_fh.write(_dropped_line(doc, reason))
                        continue
                    held_out = in_validation(
                        normalizer, doc.text, cfg.validation.fraction, cfg.validation.seed
                    )
                    (val if held_out else train).write(doc)
                    stats.record_kept(source.name, len(doc.text), validation=held_out)
            entries.append(_manifest_entry(source, train, val))
        stats.filters = chain.stats()
        stats.check()  # nothing is published (renamed into place) unless the books balance

    stats.elapsed_s = time.perf_counter() - started
    write_json(out_dir / "stats.json", stats.to_dict())
    write_json(out_dir / "manifest.json", {"sources": entries, "text_key": TEXT_KEY})
    log.info(
        "curated %d documents: kept %d, dropped %s in %.1fs",
        stats.read,
        stats.kept,
        dict(sorted(stats.dropped.items())),
        stats.elapsed_s,
    )
    return stats


def _manifest_entry(source: SourceConfig, train: ShardWriter, val: ShardWriter) -> dict[str, Any]:
    return {
        "name": source.name,
        "shards": [f"shards/{p.name}" for p in train.paths],
        "documents": train.documents,
        "chars": train.chars,
        "weight": source.upsample,
        "language": source.language,
        "validation": {
            "shards": [f"validation/{p.name}" for p in val.paths],
            "documents": val.documents,
            "chars": val.chars,
        },
    }


def _dropped_line(doc: Document, reason: str) -> str:
    return json_line(
        {
            "id": doc.id,
            "source": doc.source,
            "file": doc.file,
            "line": doc.line,
            "reason": reason,
            "detail": doc.error_detail,
            "chars": len(doc.text),
            "text_head": doc.text[:DROPPED_HEAD_CHARS],
        }
    )
