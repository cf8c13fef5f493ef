"""Words and stable hashes shared by fuzzy dedup, decontamination and the quality model.

"Normalized words" (spec §1.2 leaves Qwen's normalization UNCONFIRMED; these are ours): Unicode NFKC,
case-folded, then every run of letters/digits/marks is a word and every CJK ideograph or kana is a word on
its own (Chinese has no spaces: GPT-3's 13-gram rule then means 13 characters). Punctuation and whitespace
are dropped, so "Hello,  World!" and "hello world" have the same words.

Hashes must agree across processes and machines (a Slurm array computes signatures on many nodes), so
Python's salted `hash()` is never used: a word's 64-bit hash is BLAKE2b of its UTF-8 bytes, memoised per
process; n-gram hashes are combined from word hashes with numpy (`ngram_hashes`), vectorised.
"""

from __future__ import annotations

import functools
import hashlib
import unicodedata

import numpy as np
import regex

WORD_RE = regex.compile(r"[\p{Han}\p{Hiragana}\p{Katakana}]|[\p{L}\p{N}\p{M}_]+")
_CJK_RE = regex.compile(r"[\p{Han}\p{Hiragana}\p{Katakana}]")
_MASK64 = (1 << 64) - 1
_MEMO: dict[str, int] = {}
_MEMO_MAX = 1 << 21


def normalize_for_words(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


# ASCII fast path: every ASCII character that is not [A-Za-z0-9_] separates words, exactly as WORD_RE does
_ASCII_SEP = str.maketrans({c: " " for c in map(chr, range(128)) if not (c.isalnum() or c == "_")})


@functools.lru_cache(maxsize=8)  # filters of one document ask for the same words; str hashes are cached
def words(text: str) -> list[str]:
    """The normalized words of `text` (see the module docstring). The list is shared: do not mutate it."""
    if text.isascii():  # NFKC and case folding of ASCII are lower(); same words, 5-10x faster
        return text.lower().translate(_ASCII_SEP).split()
    return WORD_RE.findall(normalize_for_words(text))


_LETTER_RE = regex.compile(r"\p{L}")


def cjk_fraction(text: str, limit: int = 2000) -> float:
    head = text[:limit]
    if head.isascii():
        return 0.0
    letters = len(_LETTER_RE.findall(head))
    return len(_CJK_RE.findall(head)) / letters if letters else 0.0


@functools.lru_cache(maxsize=8)
def text_word_hashes(text: str) -> np.ndarray:
    """`word_hashes(words(text))`, shared by the filters that look at the same document."""
    return word_hashes(words(text))


def word_hash(word: str) -> int:
    h = _MEMO.get(word)
    if h is None:
        if len(_MEMO) >= _MEMO_MAX:
            _MEMO.clear()
        h = int.from_bytes(hashlib.blake2b(word.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")
        _MEMO[word] = h
    return h


def word_hashes(ws: list[str]) -> np.ndarray:
    memo = _MEMO
    try:
        return np.fromiter(map(memo.__getitem__, ws), dtype=np.uint64, count=len(ws))
    except KeyError:
        for w in ws:
            if w not in memo:
                word_hash(w)
        if len(memo) < len(set(ws)):  # the memo was cleared while filling it: hash one by one
            return np.array([word_hash(w) for w in ws], dtype=np.uint64)
        return np.fromiter(map(memo.__getitem__, ws), dtype=np.uint64, count=len(ws))


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser on a uint64 array: a bijection that spreads every input bit."""
    with np.errstate(over="ignore"):
        x = x ^ (x >> np.uint64(30))
        x = x * np.uint64(0xBF58476D1CE4E5B9)
        x = x ^ (x >> np.uint64(27))
        x = x * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


@functools.lru_cache(maxsize=64)
def _coefficients(n: int) -> np.ndarray:
    rng = np.random.Generator(np.random.PCG64(0x5EED + n))
    return rng.integers(1, 2**63, size=n, dtype=np.uint64) * np.uint64(2) + np.uint64(1)  # odd


def ngram_hashes(items: np.ndarray, n: int, *, short: bool = True) -> np.ndarray:
    """64-bit hashes of every window of `n` consecutive uint64 `items` (order-sensitive).

    Fewer than `n` items give one hash of the whole sequence when `short` (so a short document still has a
    shingle), none otherwise (an evaluation item shorter than n cannot be matched by an n-gram)."""
    m = len(items)
    if m < n:
        if not short or m == 0:
            return np.empty(0, dtype=np.uint64)
        n = m
    coef = _coefficients(n)
    with np.errstate(over="ignore"):
        acc = np.zeros(m - n + 1, dtype=np.uint64)
        for k in range(n):
            acc += items[k : m - n + 1 + k] * coef[k]
        acc += np.uint64(n)
    return mix64(acc)


def batch_ngram_hashes(sequences: list[np.ndarray], n: int) -> tuple[np.ndarray, np.ndarray]:
    """`ngram_hashes(seq, n, short=True)` of many sequences at once: (hashes, owner index), vectorised over
    the concatenation, windows that cross a sequence boundary discarded."""
    lengths = np.array([len(x) for x in sequences], dtype=np.int64)
    if not len(sequences) or not lengths.sum():
        return np.empty(0, dtype=np.uint64), np.empty(0, dtype=np.int64)
    flat = np.concatenate(sequences)
    owner = np.repeat(np.arange(len(sequences), dtype=np.int64), lengths)
    parts, owners = [], []
    if len(flat) >= n:
        coef = _coefficients(n)
        m = len(flat) - n + 1
        with np.errstate(over="ignore"):
            acc = np.zeros(m, dtype=np.uint64)
            for k in range(n):
                acc += flat[k : k + m] * coef[k]
            acc += np.uint64(n)
        inside = owner[:m] == owner[n - 1 :]
        parts.append(mix64(acc[inside]))
        owners.append(owner[:m][inside])
    for i in np.flatnonzero((lengths > 0) & (lengths < n)):  # short sequences: one hash of the whole
        parts.append(ngram_hashes(sequences[i], n))
        owners.append(np.full(1, i, dtype=np.int64))
    hashes, who = np.concatenate(parts), np.concatenate(owners)
    order = np.argsort(who, kind="stable")
    return hashes[order], who[order]


def char_codes(text: str) -> np.ndarray:
    """Code points of the NFKC, case-folded, whitespace-collapsed text, as uint64."""
    norm = " ".join(normalize_for_words(text).split())
    return np.frombuffer(norm.encode("utf-32-le", "surrogatepass"), dtype=np.uint32).astype(np.uint64)


def sorted_unique(x: np.ndarray) -> np.ndarray:
    """np.unique for big integer arrays via sort (numpy's hash-based unique is several times slower here)."""
    s = np.sort(x)
    return s[np.r_[True, s[1:] != s[:-1]]] if len(s) else s
