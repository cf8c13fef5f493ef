"""Stable content hashes for configs (the keys of `_SUCCESS.json`)."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def hash_obj(obj: Any) -> str:
    blob = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
