"""Checkpoints of the RLHF loops: one `state.pt` per `iter_<step>` folder, written to a temporary folder and
renamed (a checkpoint is either whole or absent), plus `latest`. Everything a bit-exact resume needs lives in
the payload: weights, optimizer states, the data cursor, normalizer state and the RNG states."""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Any

import torch

STATE = "state.pt"


def iter_name(step: int) -> str:
    return f"iter_{step:07d}"


def rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])


def save(root: Path, step: int, payload: dict[str, Any], *, keep_last: int = 2) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    final, tmp = root / iter_name(step), root / f".tmp_{iter_name(step)}_{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    torch.save({**payload, "step": step}, tmp / STATE)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    latest_tmp = root / f".latest_{os.getpid()}"
    latest_tmp.write_text(final.name + "\n")
    os.replace(latest_tmp, root / "latest")
    for old in sorted(p for p in root.glob("iter_*") if p.is_dir())[:-keep_last] if keep_last > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest(root: Path) -> Path | None:
    """The newest whole checkpoint under `root` (or `root` itself when it is one)."""
    root = Path(root)
    if (root / STATE).is_file():
        return root
    named = root / "latest"
    if named.is_file() and (root / named.read_text().strip() / STATE).is_file():
        return root / named.read_text().strip()
    found = sorted(p for p in root.glob("iter_*") if (p / STATE).is_file())
    return found[-1] if found else None


def load(path: Path) -> dict[str, Any]:
    return torch.load(Path(path) / STATE, map_location="cpu", weights_only=False)
