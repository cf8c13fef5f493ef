"""Text normalization for exact deduplication (Qwen report §2.1: "exact-match deduplication after text
normalization"; the rules are not published, spec §1.2 marks them UNCONFIRMED).

Our rules, each switchable in `NormalizeConfig`: Unicode NFC (the form Qwen's tokenizer also applies),
optional case folding, and collapsing every whitespace run (newlines, tabs, U+3000 ideographic space ...)
to one space with the ends stripped. Normalization defines *equality*; the stored text is never changed,
so code keeps its indentation.
"""

from __future__ import annotations

import hashlib
import unicodedata

from qwen_hpc.data.config import NormalizeConfig


class Normalizer:
    def __init__(self, cfg: NormalizeConfig) -> None:
        self.cfg = cfg

    def __call__(self, text: str) -> str:
        if self.cfg.unicode_nfc:
            text = unicodedata.normalize("NFC", text)
        if self.cfg.casefold:
            text = text.casefold()
            if self.cfg.unicode_nfc:  # case folding can produce decomposed sequences
                text = unicodedata.normalize("NFC", text)
        if self.cfg.collapse_whitespace:
            text = " ".join(text.split())
        return text

    def digest(self, text: str) -> bytes:
        """16-byte fingerprint of the normalized text: the key exact dedup and the split compare."""
        return hashlib.blake2b(self(text).encode("utf-8", "surrogatepass"), digest_size=16).digest()
