"""SFT training samples: tokenized conversations padded one per sequence, or packed several per sequence.

A conversation becomes `ids` and an unshifted `targets` mask (`chatml.supervised`). A sample holds
`seq_length + 1` tokens; the model reads the first `seq_length` and predicts the last `seq_length`:

- `padding` (the released finetune.py): one conversation per sample, right-padded with `<|endoftext|>`,
  padding never a target. The model's ordinary causal mask suffices: real tokens never see the padding.
- `packing`: conversations are placed into samples by best-fit decreasing (deterministic), and each sample
  carries a block-diagonal causal `attention_mask` and position ids restarting at 0 per conversation, so a
  token attends only to earlier tokens of its own conversation and every conversation is computed exactly
  as if it were alone. The first token of a conversation is never a target (it has no context), as in
  padding, so both give the same loss on the same conversations.

Conversations longer than a sample are cut after their last whole assistant turn that fits
(`overlong=truncate`) or dropped (`overlong=drop`); both are counted. `SFTDataset` serves samples to
`MicroBatchIterator`: epoch e is a seeded permutation of the samples, so sample i is a pure function of
(seed, i) and a resumed run reads exactly the samples an uninterrupted one would.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from qwen_hpc.alignment.chatml import ChatTokenizer, encode_conversation, supervised, truncate_at_turn

SEQUENCE_MODES = ("packing", "padding")
OVERLONG = ("truncate", "drop")


@dataclass
class TokenizedConversation:
    ids: np.ndarray  # int64
    targets: np.ndarray  # bool, unshifted

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class EncodeStats:
    conversations: int = 0
    kept: int = 0
    truncated: int = 0
    dropped_overlong: int = 0
    tokens: int = 0
    supervised_tokens: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def tokenize_conversations(
    tokenizer: ChatTokenizer,
    conversations: Iterable[Sequence[Any]],
    *,
    masking: str,
    max_tokens: int,
    overlong: str = "truncate",
    system: str | None = None,
) -> tuple[list[TokenizedConversation], EncodeStats]:
    """ChatML ids + target masks of every conversation that fits `max_tokens` (after truncation)."""
    if overlong not in OVERLONG:
        raise ValueError(f"overlong={overlong!r} must be one of {'|'.join(OVERLONG)}")
    stats = EncodeStats()
    out: list[TokenizedConversation] = []
    kwargs = {} if system is None else {"system": system}
    for messages in conversations:
        stats.conversations += 1
        conv = encode_conversation(tokenizer, messages, **kwargs)
        if len(conv) > max_tokens:
            cut = truncate_at_turn(conv, max_tokens) if overlong == "truncate" else None
            if cut is None:
                stats.dropped_overlong += 1
                continue
            stats.truncated += 1
            conv = cut
        targets = np.asarray(supervised(conv, masking), dtype=bool)
        targets[0] = False  # no context to predict the first token from (padding and packing alike)
        if not targets.any():
            stats.dropped_overlong += 1
            continue
        stats.kept += 1
        stats.tokens += len(conv)
        stats.supervised_tokens += int(targets.sum())
        out.append(TokenizedConversation(np.asarray(conv.ids, dtype=np.int64), targets))
    return out, stats


@dataclass
class PackedSample:
    """Conversations of one sample, in order (indices into the tokenized list)."""

    members: list[int] = field(default_factory=list)
    length: int = 0


def pack(lengths: Sequence[int], capacity: int) -> list[PackedSample]:
    """Best-fit decreasing: longest first, each into the fullest sample it still fits (ties: the oldest)."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    samples: list[PackedSample] = []
    free: list[tuple[int, int]] = []  # sorted (remaining capacity, sample index)
    for i in order:
        n = lengths[i]
        if n > capacity:
            raise ValueError(f"conversation {i} has {n} tokens, more than a sample's {capacity}")
        at = bisect.bisect_left(free, (n, -1))
        if at < len(free):
            room, s = free.pop(at)
        else:
            room, s = capacity, len(samples)
            samples.append(PackedSample())
        samples[s].members.append(i)
        samples[s].length += n
        if room - n > 0:
            bisect.insort(free, (room - n, s))
    for s in samples:
        s.members.sort()
    return samples


def one_per_sample(count: int, lengths: Sequence[int]) -> list[PackedSample]:
    return [PackedSample([i], lengths[i]) for i in range(count)]


class SFTDataset:
    """Samples for `MicroBatchIterator`: dicts of tokens, labels, loss_mask, position_ids (+ attention_mask
    when packing), `num_samples` of them, epochs of a seeded permutation of the built samples."""

    def __init__(
        self,
        conversations: list[TokenizedConversation],
        *,
        seq_length: int,
        mode: str,
        pad_id: int,
        seed: int,
        num_samples: int | None = None,
    ) -> None:
        if mode not in SEQUENCE_MODES:
            raise ValueError(f"sequences={mode!r} must be one of {'|'.join(SEQUENCE_MODES)}")
        if not conversations:
            raise ValueError("no conversation to train on")
        self.conversations = conversations
        self.seq_length = seq_length
        self.mode = mode
        self.pad_id = pad_id
        self.seed = seed
        lengths = [len(c) for c in conversations]
        capacity = seq_length + 1
        self.samples = (
            pack(lengths, capacity) if mode == "packing" else one_per_sample(len(conversations), lengths)
        )
        self.num_samples = len(self.samples) if num_samples is None else num_samples
        self._perms: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return self.num_samples

    def stats(self) -> dict[str, float]:
        tokens = sum(s.length for s in self.samples)
        supervised_tokens = sum(int(c.targets.sum()) for c in self.conversations)
        fill = tokens / (len(self.samples) * (self.seq_length + 1))
        return {
            "samples_per_epoch": len(self.samples),
            "conversations": len(self.conversations),
            "tokens_per_epoch": tokens,
            "supervised_tokens_per_epoch": supervised_tokens,
            "fill": fill,
            "conversations_per_sample": len(self.conversations) / len(self.samples),
        }

    def _permutation(self, epoch: int) -> np.ndarray:
        if epoch not in self._perms:
            rng = np.random.default_rng([self.seed, epoch])
            self._perms = {epoch: rng.permutation(len(self.samples))}
        return self._perms[epoch]

    def build(self, sample: PackedSample) -> dict[str, torch.Tensor]:
        size = self.seq_length + 1
        ids = np.full(size, self.pad_id, dtype=np.int64)
        targets = np.zeros(size, dtype=bool)
        segment = np.full(size, -1, dtype=np.int64)
        position = np.zeros(size, dtype=np.int64)
        at = 0
        for k, i in enumerate(sample.members):
            conv = self.conversations[i]
            n = len(conv)
            ids[at : at + n], targets[at : at + n] = conv.ids, conv.targets
            segment[at : at + n], position[at : at + n] = k, np.arange(n)
            at += n
        position[at:] = np.arange(size - at)
        same = segment[1:] == segment[:-1]
        out = {
            "tokens": torch.from_numpy(ids[:-1].copy()),
            "labels": torch.from_numpy(ids[1:].copy()),
            "loss_mask": torch.from_numpy((targets[1:] & same).astype(np.float32)),
            "position_ids": torch.from_numpy(position[:-1].copy()),
        }
        if self.mode == "packing":
            seg = torch.from_numpy(segment[:-1].copy())
            causal = torch.ones(self.seq_length, self.seq_length, dtype=torch.bool).tril()
            allowed = (seg[:, None] == seg[None, :]) & causal
            out["attention_mask"] = ~allowed[None]  # [1, s, s], True = masked out (Megatron's convention)
        return out

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < self.num_samples:
            raise IndexError(index)
        epoch, within = divmod(index, len(self.samples))
        return self.build(self.samples[int(self._permutation(epoch)[within])])
