"""Exact deduplication (Qwen report §2.1: "exact-match deduplication after text normalization").

Each document's normalized text is fingerprinted (16-byte BLAKE2b, see `Normalizer.digest`); the first
document with a fingerprint is kept and every later one is dropped as `exact_duplicate`. "First" is the
reading order: sources in config order, files sorted within a source, lines in file order — so the same
copy survives on every run. Memory is 16 bytes plus set overhead per kept document; fuzzy MinHash-LSH
dedup over shards is a later filter.
"""

from __future__ import annotations

from qwen_hpc.data.document import Document
from qwen_hpc.data.filters import Filter
from qwen_hpc.data.normalize import Normalizer


class ExactDedupFilter(Filter):
    name = "exact_dedup"

    def __init__(self, normalizer: Normalizer) -> None:
        super().__init__()
        self.normalizer = normalizer
        self._seen: set[bytes] = set()

    def filter(self, doc: Document) -> str | None:
        key = self.normalizer.digest(doc.text)
        if key in self._seen:
            return "exact_duplicate"
        self._seen.add(key)
        return None
