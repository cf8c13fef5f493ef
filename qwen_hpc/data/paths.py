"""Source paths: a local path or a glob, expanded the same way at check time and at run time.

`~` and `$VARS` are expanded; relative paths are relative to the working directory. A glob (`*`, `?`, `[`,
`**` recursive) matches files only, sorted, so the file order, and with it each document's id and which
copy of a duplicate is kept, is the same on every run.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from pathlib import Path

_GLOB_CHARS = frozenset("*?[")


def is_glob(pattern: str) -> bool:
    return any(c in _GLOB_CHARS for c in pattern)


def _expand_user_vars(pattern: str) -> str:
    return os.path.expanduser(os.path.expandvars(pattern))


def expand(pattern: str) -> list[Path]:
    """Files a pattern names. A literal path is returned as given even if it does not exist (reading it
    then fails and is counted); a glob that matches nothing returns the pattern itself for the same reason."""
    expanded = _expand_user_vars(pattern)
    if not is_glob(expanded):
        return [Path(expanded)]
    matches = sorted(m for m in glob.glob(expanded, recursive=True) if os.path.isfile(m))
    return [Path(m) for m in matches] or [Path(expanded)]


def expand_all(patterns: Iterable[str]) -> list[Path]:
    """Files of several patterns, in pattern order, each file once (its first position wins)."""
    seen: set[str] = set()
    files: list[Path] = []
    for pattern in patterns:
        for path in expand(pattern):
            key = os.path.abspath(path)
            if key not in seen:
                seen.add(key)
                files.append(path)
    return files


def describe_missing(pattern: str) -> str | None:
    """None if the pattern names at least one readable-looking file, else why not (for error messages)."""
    expanded = _expand_user_vars(pattern)
    shown = f" (expanded: {expanded!r})" if expanded != pattern else ""
    if is_glob(expanded):
        if any(os.path.isfile(m) for m in glob.glob(expanded, recursive=True)):
            return None
        return f"matches no file{shown}"
    path = Path(expanded)
    if path.is_file():
        return None
    if path.is_dir():
        return f"is a directory{shown} (give a glob such as dir/*.jsonl)"
    return f"does not exist{shown}"
