"""How the suite queries a model: the four choice log-probs of a batch of questions in one forward, and
batched greedy/sampled generation, both on the KV-cache decoder of `qwen_hpc.inference` (left padding).

Choices are single tokens for Qwen's vocabulary (`" A"` = 362 …). A smaller vocabulary may split them
(`" "` + `"A"`): tokens all four share are appended to the prompt, which leaves the ranking unchanged
(they have one probability for all four), and the last token of each is scored — still one forward per
question. Only a toy vocabulary whose choices differ in length (`" A"` one token, `" B"` two) falls back to
one row per (question, choice) with the summed log-probs of the choice, as lm-evaluation-harness scores.
The few-shot exemplars that open every prompt of a subject are computed once per batch (`prefix_len`): the
batch plan keeps a subject's questions together, and only the questions are left-padded after the prefix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from qwen_hpc.inference.decoder import KVCacheDecoder
from qwen_hpc.inference.generate import Generator, SamplingConfig


@dataclass(frozen=True)
class ChoiceTokens:
    encoded: tuple[tuple[int, ...], ...]  # every choice's ids
    shared: tuple[int, ...] | None  # appended to every prompt; None: the choices are not single last tokens
    last: tuple[int, ...]  # one id per choice, scored at the last position (when `shared` is not None)


def choice_tokens(tokenizer: Any, choices: Sequence[str]) -> ChoiceTokens:
    encoded = tuple(tuple(tokenizer.encode(c)) for c in choices)
    if any(not e for e in encoded):
        raise ValueError(f"choices {list(choices)}: a choice encodes to no token")
    n = 0
    while all(len(e) > n + 1 for e in encoded) and len({e[n] for e in encoded}) == 1:
        n += 1
    single = all(len(e) == n + 1 for e in encoded) and len({e[n] for e in encoded}) == len(encoded)
    if not single:  # a toy vocabulary: score whole continuations (one row per choice)
        return ChoiceTokens(encoded, None, ())
    return ChoiceTokens(encoded, encoded[0][:n], tuple(e[n] for e in encoded))


def left_pad(prompts: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(ids [b, w], positions [b, w] counted from each row's first real token, valid [b, w])."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    valid = torch.zeros((len(prompts), width), dtype=torch.bool)
    for row, p in enumerate(prompts):
        ids[row, width - len(p):] = torch.tensor(list(p), dtype=torch.long)
        valid[row, width - len(p):] = True
    pads = width - valid.sum(dim=1)
    positions = (torch.arange(width)[None, :] - pads[:, None]).clamp(min=0)
    return ids, positions, valid


@torch.inference_mode()
def choice_logprobs(
    model: Any,
    prompts: Sequence[Sequence[int]],
    tokens: ChoiceTokens,
    pad_id: int,
    *,
    max_length: int = 0,
    prefix_len: int = 0,
) -> torch.Tensor:
    """[b, n_choices] log-softmax over the choices at the end of each (left-padded) prompt.

    Single-token choices: one prefill of the whole batch, only the last position through the LM head.
    Otherwise every (prompt, choice) is a row and a choice scores the sum of its tokens' log-probs.
    `max_length` > 0 applies Qwen's left cut to each row (longer than it: keep the last max_length - 1).
    `prefix_len` > 0: the rows are expected to start with the same `prefix_len` tokens (the few-shot
    exemplars); if they still do after the cut, the prefix is computed once for the batch.
    """
    from qwen_hpc.evaluation.multiple_choice import truncate_left

    def cut(row: list[int]) -> list[int]:
        return truncate_left(row, max_length) if max_length > 0 else row

    if tokens.shared is None:
        return _continuation_logprobs(model, prompts, tokens, pad_id, cut)
    full = [cut(list(p) + list(tokens.shared)) for p in prompts]
    common = shared_prefix_length(full, prefix_len)
    if common >= MIN_SHARED_PREFIX:
        return _shared_prefix_logprobs(model, full, common, tokens, pad_id)
    ids, positions, valid = left_pad(full, pad_id)
    decoder = KVCacheDecoder(model, ids.shape[0], ids.shape[1])
    hidden = decoder.hidden(ids, positions, valid)[:, -1]
    logits = decoder.logits(hidden)[:, list(tokens.last)].float().cpu()
    return torch.log_softmax(logits, dim=-1)


MIN_SHARED_PREFIX = 16  # below this a shared prefix is not worth a second decoder


def shared_prefix_length(rows: Sequence[Sequence[int]], expected: int) -> int:
    """`expected` if every row starts with the same `expected` tokens and has at least one more, else 0."""
    if expected <= 0 or any(len(r) <= expected for r in rows):
        return 0
    first = list(rows[0][:expected])
    return expected if all(list(r[:expected]) == first for r in rows[1:]) else 0


def _shared_prefix_logprobs(
    model: Any, rows: Sequence[Sequence[int]], prefix: int, tokens: ChoiceTokens, pad_id: int
) -> torch.Tensor:
    """The prefix through a one-row decoder, copied to every row; the left-padded suffixes after it."""
    head = KVCacheDecoder(model, 1, prefix)
    head.hidden(torch.tensor([list(rows[0][:prefix])]), torch.arange(prefix)[None], torch.ones(1, prefix, dtype=torch.bool))
    ids, positions, valid = left_pad([list(r[prefix:]) for r in rows], pad_id)
    decoder = KVCacheDecoder(model, ids.shape[0], prefix + ids.shape[1])
    decoder.load_prefix(head)
    key_valid = torch.cat([torch.ones(ids.shape[0], prefix, dtype=torch.bool), valid], dim=1)
    hidden = decoder.hidden(ids, positions + prefix, key_valid)[:, -1]
    logits = decoder.logits(hidden)[:, list(tokens.last)].float().cpu()
    return torch.log_softmax(logits, dim=-1)


def _continuation_logprobs(
    model: Any, prompts: Sequence[Sequence[int]], tokens: ChoiceTokens, pad_id: int, cut: Any
) -> torch.Tensor:
    conts = tokens.encoded
    rows = [cut(list(p) + list(c)) for p in prompts for c in conts]
    k = max(len(c) for c in conts)
    ids, positions, valid = left_pad(rows, pad_id)
    decoder = KVCacheDecoder(model, ids.shape[0], ids.shape[1])
    hidden = decoder.hidden(ids, positions, valid)[:, -(k + 1):-1]
    logp = torch.log_softmax(decoder.logits(hidden).float().cpu(), dim=-1)  # [rows, k, V]
    scores = torch.empty(len(rows))
    for r in range(len(rows)):
        cont = conts[r % len(conts)]
        m = len(cont)
        scores[r] = logp[r, k - m:, :].gather(1, torch.tensor(cont)[:, None]).sum()
    return torch.log_softmax(scores.view(len(prompts), len(conts)), dim=-1)


def batch_prefix_len(samples: Sequence[Any]) -> int:
    """The prompt prefix every sample of a batch declares it shares (0 if they are not one group)."""
    groups = {s.extra.get("prefix_group") for s in samples}
    if len(groups) != 1 or None in groups:
        return 0
    return min(int(s.extra.get("prefix_len", 0)) for s in samples)


def generate(
    model: Any, tokenizer: Any, prompts: Sequence[Sequence[int]], cfg: SamplingConfig, *, pad_id: int | None = None
) -> list[str]:
    """Texts generated for a batch of prompts (the generator's stop ids/strings already applied)."""
    gen = Generator(model, tokenizer, pad_id=pad_id)
    return [g.text for g in gen.generate_ids([list(p) for p in prompts], cfg)]
