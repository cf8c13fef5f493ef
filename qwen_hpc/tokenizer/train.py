"""Byte-level BPE training whose output is a tiktoken mergeable-ranks table (Qwen report §2.2).

Qwen's tokenizer is a byte-level BPE run by tiktoken: ranks 0..255 are the single bytes and every later
token is the concatenation of two earlier ones, its rank being its merge order. tiktoken encodes by
repeatedly merging the adjacent pair whose concatenation has the lowest rank, which replays the trainer's
merges, so a table trained here encodes in tiktoken as the trainer would have segmented.

Training rule (all engines): pre-tokenize with the Qwen pattern after NFC normalization (the tokenizer
normalizes before encoding too), count pre-tokens, then repeatedly merge the most frequent adjacent
pair, counting overlapping occurrences; ties go to the smaller (left id, right id) pair. The result is a
pure function of the input text, so it is deterministic whatever the thread count or hash seed.

Engines, chosen by measurement (`benchmarks/bpe_train.py`):
  rustbpe  Rust, parallel (the trainer nanochat uses); splits with fancy-regex, the regex engine tiktoken
           uses, so pre-tokens are identical to encoding time. Fastest; the default.
  hf       Hugging Face `tokenizers`, byte-level BPE behind a Split pre-tokenizer (Oniguruma regex). Ties
           are broken in its own byte-to-unicode order, so its tables differ slightly from the others.
  python   Pure Python with incremental pair counts and a lazy max-heap; same rule and the same result as
           rustbpe, slower. The fallback when neither package is installed.

A merge may produce bytes that an earlier merge already produced (e.g. "a"+"bc" after "ab"+"c"); a
tiktoken table keys tokens by bytes, so such repeats are dropped and training continues until
`vocab_size` distinct tokens exist or no pair is left.
"""

from __future__ import annotations

import heapq
import importlib.util
import json
import logging
import time
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator

from qwen_hpc.tokenizer.pattern import QWEN_PAT_STR

log = logging.getLogger(__name__)

ENGINES = ("rustbpe", "hf", "python")  # preference order for engine="auto"
_ENGINE_PACKAGE = {"rustbpe": "rustbpe", "hf": "tokenizers", "python": None}


def available_engines() -> list[str]:
    """Engines whose package is importable, in preference order ("python" always is)."""
    return [e for e in ENGINES if _ENGINE_PACKAGE[e] is None or importlib.util.find_spec(_ENGINE_PACKAGE[e])]


def resolve_engine(engine: str = "auto") -> str:
    """Map "auto" to the fastest installed engine; fail naming the package if a named engine is missing."""
    if engine == "auto":
        chosen = available_engines()[0]
        if chosen == "python":
            log.warning(
                "neither `rustbpe` nor `tokenizers` is installed: BPE training uses the slow pure-Python engine"
            )
        return chosen
    if engine not in ENGINES:
        raise ValueError(f"engine={engine!r} must be 'auto' or one of {list(ENGINES)}")
    package = _ENGINE_PACKAGE[engine]
    if package is not None and importlib.util.find_spec(package) is None:
        raise ImportError(f"BPE engine {engine!r} needs the package `{package}` (pip install {package})")
    return engine


def cap_chars(texts: Iterable[str], max_chars: int | None) -> Iterator[str]:
    """Yield NFC-normalized texts until `max_chars` characters in all (the last one cut); None/-1 = no cap."""
    remaining = None if max_chars is None or max_chars < 0 else max_chars
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"training text #{i} is {type(text).__name__}, expected str")
        text = unicodedata.normalize("NFC", text)
        if remaining is not None:
            if remaining <= 0:
                return
            text = text[:remaining]
            remaining -= len(text)
        yield text


def train_bpe(
    texts: Iterable[str],
    vocab_size: int,
    pattern: str = QWEN_PAT_STR,
    engine: str = "auto",
    *,
    max_chars: int | None = None,
) -> dict[bytes, int]:
    """Learn a byte-level BPE of `vocab_size` tokens (the 256 bytes included) as tiktoken ranks.

    Returns fewer than `vocab_size` tokens only if the text runs out of pairs to merge (logged); an
    empty corpus is an error.
    """
    if vocab_size < 256:
        raise ValueError(f"vocab_size={vocab_size} must be >= 256 (the byte alphabet)")
    name = resolve_engine(engine)
    corpus = list(cap_chars(texts, max_chars))
    if not any(corpus):
        raise ValueError(f"no training text: {len(corpus)} texts, all empty (check the input and max_chars)")
    start = time.perf_counter()
    ranks = _TRAINERS[name](corpus, vocab_size, pattern)
    log.info(
        "trained byte-level BPE: %d tokens with %s on %d texts (%d chars) in %.2fs",
        len(ranks),
        name,
        len(corpus),
        sum(map(len, corpus)),
        time.perf_counter() - start,
    )
    if len(ranks) < vocab_size:
        log.warning(
            "training text ran out of pairs: %d tokens instead of vocab_size=%d", len(ranks), vocab_size
        )
    return ranks


# --------------------------------------------------------------------------- shared helpers


def _byte_ranks() -> dict[bytes, int]:
    return {bytes([i]): i for i in range(256)}


def _collect(merged: Iterable[bytes], vocab_size: int) -> dict[bytes, int]:
    """Ranks from merge results in merge order, dropping repeated byte strings, stopping at vocab_size."""
    ranks = _byte_ranks()
    for token in merged:
        if len(ranks) >= vocab_size:
            break
        if token not in ranks:
            ranks[token] = len(ranks)
    return ranks


# --------------------------------------------------------------------------- rustbpe


def _train_rustbpe(corpus: list[str], vocab_size: int, pattern: str) -> dict[bytes, int]:
    import rustbpe

    # Repeated byte strings (see module docstring) are rare; ask for a few spare merges and, in the
    # unlikely case they are not enough, retrain with more. Merge sequences are prefix-stable, so the
    # first `vocab_size` distinct tokens do not depend on how many spare merges were asked for.
    spare = 16 + vocab_size // 100
    while True:
        requested = vocab_size + spare
        trainer = rustbpe.Tokenizer()
        trainer.train_from_iterator(iter(corpus), requested, pattern=pattern)
        pairs = sorted(trainer.get_mergeable_ranks(), key=lambda kv: kv[1])
        ranks = _collect((bytes(token) for token, _ in pairs[256:]), vocab_size)
        exhausted = len(pairs) < requested
        if len(ranks) >= vocab_size or exhausted:
            return ranks
        spare = 2 * spare + (vocab_size - len(ranks))


# --------------------------------------------------------------------------- Hugging Face tokenizers


def _gpt2_unicode_to_byte() -> dict[str, int]:
    """Inverse of the GPT-2 byte-to-unicode table that byte-level `tokenizers` models use."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    byte_values, code_points, extra = list(printable), list(printable), 0
    for b in range(256):
        if b not in printable:
            byte_values.append(b)
            code_points.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(byte_values, code_points, strict=True)}


def _train_hf(corpus: list[str], vocab_size: int, pattern: str) -> dict[bytes, int]:
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=0,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
    )
    tok.train_from_iterator(corpus, trainer)
    merges = json.loads(tok.to_str())["model"]["merges"]
    to_byte = _gpt2_unicode_to_byte()

    def merged() -> Iterator[bytes]:
        for m in merges:
            left, right = m.split(" ") if isinstance(m, str) else m
            yield bytes(to_byte[c] for c in left + right)

    return _collect(merged(), vocab_size)


# --------------------------------------------------------------------------- pure Python


def _train_python(corpus: list[str], vocab_size: int, pattern: str) -> dict[bytes, int]:
    return _collect(_python_merges(corpus, pattern), vocab_size)


def _python_merges(corpus: list[str], pattern: str) -> Iterator[bytes]:
    """Yield the bytes of each merge in order until no pair is left (the rule in the module docstring).

    Pair counts are kept exactly and updated per touched word; the heap is lazy: an entry whose count is
    stale is re-pushed with the current count when popped. Counts of a pair only fall after the merge
    that creates it, so a popped entry whose count is current is the true maximum.
    """
    import regex

    rx = regex.compile(pattern)
    piece_counts: Counter[str] = Counter()
    for text in corpus:
        piece_counts.update(rx.findall(text))

    words: list[list[int]] = []
    freqs: list[int] = []
    for piece, count in piece_counts.items():
        ids = list(piece.encode("utf-8"))
        if len(ids) >= 2:
            words.append(ids)
            freqs.append(count)

    yield from merge_words(words, freqs, [bytes([i]) for i in range(256)])


def merge_words(words: list[list[int]], freqs: list[int], token_bytes: list[bytes]) -> Iterator[bytes]:
    """The merge loop on pre-segmented words: `words` are token-id sequences (each id indexes
    `token_bytes`), `freqs` their counts. Yields the bytes of each new token in merge order; new ids are
    appended to `token_bytes` (which is extended in place). Used from bytes by the python engine and
    from an existing vocabulary's segmentation by `extend` (Qwen's recipe on top of cl100k)."""
    pair_counts: dict[tuple[int, int], int] = defaultdict(int)
    where: dict[tuple[int, int], set[int]] = defaultdict(set)
    for i, ids in enumerate(words):
        for pair in zip(ids, ids[1:], strict=False):
            pair_counts[pair] += freqs[i]
            where[pair].add(i)
    heap = [(-count, pair) for pair, count in pair_counts.items()]
    heapq.heapify(heap)

    while heap:
        neg_count, pair = heapq.heappop(heap)
        current = pair_counts.get(pair, 0)
        if current <= 0:
            continue
        if -neg_count != current:
            heapq.heappush(heap, (-current, pair))
            continue
        new_id = len(token_bytes)
        token_bytes.append(token_bytes[pair[0]] + token_bytes[pair[1]])
        new_pairs = _apply_merge(words, freqs, where.pop(pair), pair, new_id, pair_counts, where)
        for p in new_pairs:
            if pair_counts[p] > 0:
                heapq.heappush(heap, (-pair_counts[p], p))
        pair_counts.pop(pair, None)
        yield token_bytes[new_id]


def _apply_merge(words, freqs, word_ids, pair, new_id, pair_counts, where) -> set[tuple[int, int]]:
    """Replace `pair` by `new_id` in the given words, updating counts; return the pairs that gained."""
    a, b = pair
    gained: set[tuple[int, int]] = set()
    for i in word_ids:
        ids = words[i]
        merged: list[int] = []
        j, n = 0, len(ids)
        while j < n:
            if j + 1 < n and ids[j] == a and ids[j + 1] == b:
                merged.append(new_id)
                j += 2
            else:
                merged.append(ids[j])
                j += 1
        if len(merged) == n:
            continue  # stale entry in `where`: the pair left this word in an earlier merge
        f = freqs[i]
        for p in zip(ids, ids[1:], strict=False):
            pair_counts[p] -= f
        for p in zip(merged, merged[1:], strict=False):
            pair_counts[p] += f
            if new_id in p:
                where[p].add(i)
                gained.add(p)
        words[i] = merged
    return gained


_TRAINERS = {"rustbpe": _train_rustbpe, "hf": _train_hf, "python": _train_python}
