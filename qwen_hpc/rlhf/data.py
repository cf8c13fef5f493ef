"""The pairs of one reward-model phase: training and held-out pairs (files under `run.data_root`, or the
synthetic verifiable set), HH-RLHF evaluation pairs, counts and malformed records."""

from __future__ import annotations

import glob
from dataclasses import dataclass, field
from pathlib import Path

from qwen_hpc.alignment.formats import MalformedRecord
from qwen_hpc.rlhf.config import RewardModelConfig
from qwen_hpc.rlhf.preference import (
    PreferenceCounts,
    PreferencePair,
    hh_held_out,
    read_pairs,
    synthetic_pairs,
)


@dataclass
class PreferenceData:
    train: list[PreferencePair]
    heldout: list[PreferencePair]
    hh_eval: dict[str, list[PreferencePair]] = field(default_factory=dict)
    malformed: list[MalformedRecord] = field(default_factory=list)
    stats: dict = field(default_factory=dict)


def _resolve(pattern: str, data_root: Path) -> list[Path]:
    full = pattern if Path(pattern).is_absolute() else str(data_root / pattern)
    return sorted(Path(p) for p in glob.glob(full))


def build_preference_data(cfg: RewardModelConfig, data_root: Path) -> PreferenceData:
    malformed: list[MalformedRecord] = []
    stats: dict = {}
    if cfg.sources:
        train: list[PreferencePair] = []
        heldout: list[PreferencePair] = []
        for src in cfg.sources:
            counts = PreferenceCounts()
            files = [p for pattern in src.paths for p in _resolve(pattern, data_root)]
            if not files:
                raise FileNotFoundError(f"sources[name={src.name!r}].paths {src.paths} match no file under {data_root}")
            pairs = [
                p for f in files for p in read_pairs(f, src.format, counts, malformed, limit=src.max_pairs)
            ]
            for p in pairs:
                (heldout if _bucket(p.origin) < cfg.heldout_fraction else train).append(p)
            stats[src.name] = {"files": len(files), "records": counts.records, "pairs": counts.pairs,
                               "malformed": counts.malformed}
    else:
        syn = cfg.synthetic
        train = synthetic_pairs(syn.seed, syn.train_pairs, held_out=False, wrong_result_share=syn.wrong_result_share)
        heldout = synthetic_pairs(
            syn.seed, syn.heldout_pairs, held_out=True, wrong_result_share=syn.wrong_result_share
        )
        stats["synthetic"] = {"train_pairs": len(train), "heldout_pairs": len(heldout), "seed": syn.seed}
    hh_eval: dict[str, list[PreferencePair]] = {}
    for subset in cfg.hh_rlhf_eval:
        path = data_root / "hh_rlhf" / f"{subset}_test.pairs.jsonl"
        if not path.is_file():
            continue
        counts = PreferenceCounts()
        pairs = [p for p in read_pairs(path, "pairs", counts, malformed) if hh_held_out(p)]
        hh_eval[subset] = pairs[: cfg.hh_eval_limit] if cfg.hh_eval_limit else pairs
        stats[f"hh_rlhf/{subset}"] = {"records": counts.records, "pairs": counts.pairs,
                                      "malformed": counts.malformed, "heldout_pairs": len(pairs),
                                      "evaluated": len(hh_eval[subset])}
    stats["train_pairs"], stats["heldout_pairs"] = len(train), len(heldout)
    stats["malformed"] = len(malformed)
    return PreferenceData(train, heldout, hh_eval, malformed, stats)


def _bucket(origin: str) -> float:
    import hashlib

    return int.from_bytes(hashlib.sha256(origin.encode()).digest()[:4], "big") / 2**32
