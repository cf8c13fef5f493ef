"""Rule-based quality filters in the spirit of Gopher (Rae et al. 2021, "MassiveText" quality and
repetition rules) and C4 (Raffel et al. 2020) — Qwen report §2.1 "rule-based" filtering, whose rules are
UNCONFIRMED (spec §1.2). One `Filter`, one reason per rule: `quality_rule:<name>`; thresholds in
`QualityRulesConfig`. Applied to `text`-kind sources only (code has its own statistics).
"""

from __future__ import annotations

import numpy as np
import regex

from qwen_hpc.data.config import QualityRulesConfig
from qwen_hpc.data.document import Document
from qwen_hpc.data.filters import Filter
from qwen_hpc.data.text import cjk_fraction, ngram_hashes, text_word_hashes, words

STOP_WORDS = frozenset({"the", "be", "to", "of", "and", "that", "have", "with", "is", "in", "a", "for"})
_NO_LETTER_TOKEN = regex.compile(r"(?<!\S)[^\s\p{L}]+(?!\S)")  # a whitespace-separated token without a letter
BULLETS = ("•", "●", "◦", "▪", "‣", "-", "*", "–", "—")


def _duplicate_ngram_chars(ws: list[str], hashes: np.ndarray, lengths: np.ndarray, n: int) -> float:
    """Share of word characters inside word n-grams that occur more than once (Gopher's dup n-gram)."""
    total = int(lengths.sum())
    if total == 0 or len(ws) < n:
        return 0.0
    grams = ngram_hashes(hashes, n, short=False)
    _, inverse, counts = np.unique(grams, return_inverse=True, return_counts=True)
    dup = counts[inverse] > 1
    covered = np.zeros(len(ws), dtype=bool)
    for k in range(n):
        covered[k : k + len(dup)] |= dup
    return float(lengths[covered].sum()) / total


def _top_ngram_chars(hashes: np.ndarray, lengths: np.ndarray, n: int) -> float:
    """Characters covered by the most frequent word n-gram (all its occurrences) / all word characters."""
    total = int(lengths.sum())
    if total == 0 or len(hashes) < n:
        return 0.0
    grams = ngram_hashes(hashes, n, short=False)
    _, first, counts = np.unique(grams, return_index=True, return_counts=True)
    top = int(np.argmax(counts))
    if counts[top] < 2:
        return 0.0
    return float(counts[top] * lengths[first[top] : first[top] + n].sum()) / total


class QualityRuleFilter(Filter):
    name = "quality_rules"

    def __init__(self, cfg: QualityRulesConfig, kinds: dict[str, str]) -> None:
        super().__init__()
        self.cfg = cfg
        self.kinds = kinds

    def filter(self, doc: Document) -> str | None:  # noqa: C901 - one flat check per rule, in order
        if self.kinds.get(doc.source) == "code":
            return None
        c, text = self.cfg, doc.text
        ws = words(text)
        n = len(ws)
        lengths = np.fromiter(map(len, ws), dtype=np.int64, count=n)
        if n < c.min_words:
            return "quality_rule:min_words"
        if n > c.max_words:
            return "quality_rule:max_words"
        spaced = cjk_fraction(text) < 0.3
        if spaced:
            mean = float(lengths.mean()) if n else 0.0
            if mean < c.min_mean_word_length or mean > c.max_mean_word_length:
                return "quality_rule:mean_word_length"
        raw_words = text.split()
        symbols = text.count("#") + text.count("...") + text.count("…")
        if raw_words and symbols / len(raw_words) > c.max_symbol_word_ratio:
            return "quality_rule:symbol_ratio"
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        if lines:
            if sum(ln.startswith(BULLETS) for ln in lines) / len(lines) > c.max_bullet_lines:
                return "quality_rule:bullet_lines"
            if sum(ln.endswith(("...", "…")) for ln in lines) / len(lines) > c.max_ellipsis_lines:
                return "quality_rule:ellipsis_lines"
            if (len(lines) - len(set(lines))) / len(lines) > c.max_duplicate_lines:
                return "quality_rule:duplicate_lines"
        if raw_words and 1.0 - len(_NO_LETTER_TOKEN.findall(text)) / len(raw_words) < c.min_alpha_words:
            return "quality_rule:alpha_words"
        english = doc.meta.get("language", "en") == "en"
        if spaced and english and c.min_stop_words and len(STOP_WORDS.intersection(ws)) < c.min_stop_words:
            return "quality_rule:stop_words"
        hashes = text_word_hashes(text)
        if _top_ngram_chars(hashes, lengths, 2) > c.max_top_2gram:
            return "quality_rule:top_2gram"
        if _duplicate_ngram_chars(ws, hashes, lengths, 5) > c.max_duplicate_5gram:
            return "quality_rule:duplicate_5gram"
        lower = text.lower()
        if lower.count("lorem ipsum") > c.max_lorem_ipsum:
            return "quality_rule:lorem_ipsum"
        if c.max_curly_brace >= 0 and text.count("{") > c.max_curly_brace:
            return "quality_rule:curly_brace"
        return None
