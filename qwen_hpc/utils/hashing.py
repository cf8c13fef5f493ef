"""Stable content hashes for configs and files (the keys of `_SUCCESS.json`)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any


def hash_obj(obj: Any) -> str:
    blob = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def hash_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()[:16]
