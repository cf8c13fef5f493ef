"""SFT data end to end: sources (or the embedded task set) → conversations → mixture → ChatML ids and
targets → train/valid split, with every record counted (read = used + malformed, per source) and every
malformed one kept with its file and line."""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from qwen_hpc.alignment import embedded
from qwen_hpc.alignment.chatml import ChatTokenizer, Message
from qwen_hpc.alignment.config import SFTConfig, SFTSourceConfig
from qwen_hpc.alignment.formats import Conversation, MalformedRecord, read_conversations
from qwen_hpc.alignment.sequences import TokenizedConversation, tokenize_conversations
from qwen_hpc.data.paths import describe_missing, expand_all

EMBEDDED_SOURCE = "embedded"


@dataclass
class SourceCounts:
    malformed: int = 0
    conversations: int = 0
    after_mixture: int = 0


@dataclass
class SFTData:
    train: list[TokenizedConversation]
    valid: list[TokenizedConversation]
    malformed: list[MalformedRecord]
    heldout: list[embedded.ChatTask]
    stats: dict[str, Any] = field(default_factory=dict)


def check_sft_sources(cfg: SFTConfig, key: str = "sft") -> None:
    """Every path of every source names at least one file (before anything is submitted). `key`: the stage's
    config key (sft, code_sft, math_sft), so the message names the key the user would change."""
    for source in cfg.sources:
        for pattern in source.paths:
            why = describe_missing(pattern)
            if why:
                raise FileNotFoundError(f"{key}.sources[name={source.name!r}].paths: {pattern!r} {why}")


def read_source(source: SFTSourceConfig, counts: SourceCounts, malformed: list[MalformedRecord]) -> list[Conversation]:
    out: list[Conversation] = []
    for path in expand_all(source.paths):
        for item in read_conversations(path, source.format, source=source.name):
            if isinstance(item, MalformedRecord):
                counts.malformed += 1
                malformed.append(item)
                continue
            out.append(item)
            if source.max_conversations is not None and len(out) >= source.max_conversations:
                counts.conversations = len(out)
                return out
    counts.conversations = len(out)
    return out


def apply_weight(items: list[Conversation], weight: float, seed: int) -> list[Conversation]:
    """`weight` copies: the whole list floor(weight) times plus a seeded sample of the fractional part."""
    whole, frac = int(weight), weight - int(weight)
    extra = random.Random(seed).sample(items, round(frac * len(items))) if frac else []
    return items * whole + extra


def _in_valid(ref: str, fraction: float, seed: int) -> bool:
    h = int.from_bytes(hashlib.sha256(f"{seed}:{ref}".encode()).digest()[:8], "big")
    return h / 2**64 < fraction


def embedded_conversations(cfg: SFTConfig) -> tuple[list[Conversation], list[embedded.ChatTask]]:
    e = cfg.embedded
    weights = (e.weights[0], e.weights[1], e.weights[2])
    train = embedded.generate(e.seed, e.train_conversations, held_out=False, weights=weights)
    heldout = embedded.generate(e.seed, e.heldout_conversations, held_out=True, weights=weights)
    convs = [
        Conversation(tuple(Message(m["role"], m["content"]) for m in t.messages), EMBEDDED_SOURCE, f"embedded:{i}")
        for i, t in enumerate(train)
    ]
    return convs, heldout


def build_sft_data(cfg: SFTConfig, tokenizer: ChatTokenizer, *, seq_length: int, seed: int) -> SFTData:
    malformed: list[MalformedRecord] = []
    per_source: dict[str, SourceCounts] = {}
    mixed: list[Conversation] = []
    heldout: list[embedded.ChatTask] = []
    if cfg.sources:
        for i, source in enumerate(cfg.sources):
            counts = per_source.setdefault(source.name, SourceCounts())
            convs = read_source(source, counts, malformed)
            weighted = apply_weight(convs, source.weight, seed + i)
            counts.after_mixture = len(weighted)
            mixed += weighted
    else:
        convs, heldout = embedded_conversations(cfg)
        per_source[EMBEDDED_SOURCE] = SourceCounts(conversations=len(convs), after_mixture=len(convs))
        mixed = convs
    train_convs = [c for c in mixed if not _in_valid(c.ref, cfg.valid_fraction, seed)]
    valid_convs = [c for c in mixed if _in_valid(c.ref, cfg.valid_fraction, seed)]
    kwargs: dict[str, Any] = dict(
        masking=cfg.masking, max_tokens=seq_length + 1, overlong=cfg.overlong, system=cfg.system
    )
    train, train_stats = tokenize_conversations(tokenizer, [c.messages for c in train_convs], **kwargs)
    valid, valid_stats = tokenize_conversations(tokenizer, [c.messages for c in valid_convs], **kwargs)
    stats = {
        "sources": {name: dict(c.__dict__) for name, c in per_source.items()},
        "malformed": len(malformed),
        "malformed_by_reason": dict(Counter(m.reason.split(" (")[0] for m in malformed).most_common(20)),
        "train": train_stats.as_dict(),
        "valid": valid_stats.as_dict(),
        "heldout_tasks": len(heldout),
    }
    return SFTData(train, valid, malformed, heldout, stats)
