"""Extend an existing vocabulary the way Qwen built theirs from cl100k_base (Qwen report §2.2; spec §2.2).

Measured on the released files (spec §2.2): Qwen's `qwen.tiktoken` is cl100k_base minus every token made
only of 2 or 3 ASCII digits (1,100 tokens: "00".."99", "000".."999"), the remaining 99,156 tokens kept in
their order at ranks 0..99,155, followed by 52,487 new tokens. Dropping the multi-digit tokens goes with
the pre-tokenization pattern that splits every digit (`QWEN_PAT_STR`): such tokens could never be used.

`drop_multi_digit_tokens` does the first half exactly. `learn_new_merges` does the second: the target
corpus is NFC-normalized, pre-tokenized with the Qwen pattern, each distinct piece is segmented with the
(kept) base vocabulary by tiktoken itself, and then the usual BPE rule runs on those segmentations — merge
the most frequent adjacent pair (ties: smaller id pair), append the new token after the base ranks. Since
every new rank is above every base rank, tiktoken applies all base merges first and then the new ones in
the order learned, i.e. it replays this training. How Qwen learned their 52,487 merges (corpus,
frequencies) is not published (spec §2.2: UNCONFIRMED); this is the standard BPE rule on top of the base.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable, Mapping

import tiktoken

from qwen_hpc.tokenizer.pattern import QWEN_PAT_STR
from qwen_hpc.tokenizer.train import cap_chars, merge_words

log = logging.getLogger(__name__)


def is_multi_digit_token(token: bytes) -> bool:
    """True for tokens of 2 or 3 ASCII digits only ("00", "201", "999"): Qwen drops exactly these."""
    return 2 <= len(token) <= 3 and all(0x30 <= b <= 0x39 for b in token)


def drop_multi_digit_tokens(ranks: Mapping[bytes, int]) -> dict[bytes, int]:
    """Remove every 2-/3-digit ASCII number token; keep the rest in rank order, renumbered 0..n-1."""
    kept = [tok for tok, _ in sorted(ranks.items(), key=lambda kv: kv[1]) if not is_multi_digit_token(tok)]
    return {tok: i for i, tok in enumerate(kept)}


def learn_new_merges(
    base_ranks: Mapping[bytes, int],
    texts: Iterable[str],
    num_new: int,
    pattern: str = QWEN_PAT_STR,
    *,
    max_chars: int | None = None,
) -> dict[bytes, int]:
    """Append up to `num_new` tokens learned on `texts` after the (contiguous) `base_ranks`.

    Returns the extended table; fewer tokens are added only if the corpus runs out of pairs (logged).
    """
    import regex

    if num_new < 0:
        raise ValueError(f"num_new={num_new} must be >= 0")
    base = dict(base_ranks)
    n_base = len(base)
    if sorted(base.values()) != list(range(n_base)):
        raise ValueError("base ranks must be contiguous 0..n-1 to be extended")
    if num_new == 0:
        return base
    start = time.perf_counter()
    rx = regex.compile(pattern)
    piece_counts: Counter[str] = Counter()
    for text in cap_chars(texts, max_chars):
        piece_counts.update(rx.findall(text))
    if not piece_counts:
        raise ValueError("no text to learn new merges from (check the corpus and max_train_chars)")

    enc = tiktoken.Encoding("extend-base", pat_str=pattern, mergeable_ranks=base, special_tokens={})
    words: list[list[int]] = []
    freqs: list[int] = []
    for piece, count in piece_counts.items():
        ids = enc._encode_single_piece(piece)  # tiktoken's BPE on this piece, no regex re-split
        if len(ids) >= 2:
            words.append(ids)
            freqs.append(count)

    token_bytes = [tok for tok, _ in sorted(base.items(), key=lambda kv: kv[1])]
    extended = dict(base)
    for merged in merge_words(words, freqs, token_bytes):
        if merged not in extended:  # a merge may rebuild bytes the base already has: no new rank
            extended[merged] = len(extended)
            if len(extended) - n_base >= num_new:
                break
    added = len(extended) - n_base
    log.info(
        "extended %d base tokens with %d new merges from %d distinct pieces in %.2fs",
        n_base,
        added,
        len(piece_counts),
        time.perf_counter() - start,
    )
    if added < num_new:
        log.warning("corpus ran out of pairs: %d new tokens instead of %d", added, num_new)
    return extended
