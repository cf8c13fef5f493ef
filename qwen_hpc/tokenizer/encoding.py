"""The Qwen tokenizer as used everywhere in this project: tiktoken + Qwen's pattern + special tokens.

Reproduces Qwen's `tokenization_qwen.py` behaviour (report §2.2; spec §2.2-§2.4):
- regular tokens are the mergeable ranks 0..n_regular-1, encoded with `QWEN_PAT_STR`;
- special tokens follow at n_regular, n_regular+1, ...: `<|endoftext|>` (eod), `<|im_start|>`,
  `<|im_end|>`, `<|extra_0|>`...; the released `qwen.tiktoken` gives 151643/151644/151645, n_vocab 151851;
- input is NFC-normalized before encoding;
- special-token text inside user content is encoded as ordinary text unless explicitly allowed. (Qwen's
  current release parses it by default; we choose the safe default so that a document containing
  "<|endoftext|>" cannot forge a document boundary. Pass `allowed_special=...` to opt in.)
"""

from __future__ import annotations

import functools
import json
import os
import unicodedata
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tiktoken

from qwen_hpc.tokenizer.pattern import (
    ENDOFTEXT,
    IM_END,
    IM_START,
    NUM_EXTRA_SPECIAL,
    QWEN_PAT_STR,
    special_token_names,
)
from qwen_hpc.tokenizer.ranks import read_ranks, validate_ranks, write_ranks
from qwen_hpc.utils.io import write_text

SPECIAL_TOKENS_FILE = "special_tokens.json"
_NO_SPECIAL: frozenset[str] = frozenset()


@dataclass(frozen=True)
class TokenizerFiles:
    """Where a tokenizer lives on disk: the ranks file and (optionally) its special-token map."""

    ranks: Path
    special_tokens: Path | None = None

    def __post_init__(self) -> None:  # accept str paths too
        object.__setattr__(self, "ranks", Path(self.ranks))
        if self.special_tokens is not None:
            object.__setattr__(self, "special_tokens", Path(self.special_tokens))

    def load(self, num_extra_special: int = NUM_EXTRA_SPECIAL) -> QwenTokenizer:
        return QwenTokenizer.from_files(self.ranks, self.special_tokens, num_extra_special=num_extra_special)


def default_special_tokens(n_regular: int, num_extra_special: int = NUM_EXTRA_SPECIAL) -> dict[str, int]:
    """Qwen's layout: the special tokens in `special_token_names` order, right after the regular ranks."""
    return {name: n_regular + i for i, name in enumerate(special_token_names(num_extra_special))}


class QwenTokenizer:
    """Encode/decode with Qwen's rules; a thin wrapper around `tiktoken.Encoding`.

    Regular ranks need not be contiguous (Qwen's vocabulary-expansion recipe appends merges after the
    special tokens); by default the special tokens start right after the highest regular rank.
    """

    def __init__(
        self,
        mergeable_ranks: Mapping[bytes, int],
        special_tokens: Mapping[str, int] | None = None,
        *,
        num_extra_special: int = NUM_EXTRA_SPECIAL,
        name: str = "qwen",
        pattern: str = QWEN_PAT_STR,
    ) -> None:
        ranks = dict(mergeable_ranks)
        validate_ranks(ranks, contiguous=False)
        if any(bytes([b]) not in ranks for b in range(256)):
            raise ValueError("mergeable ranks must contain all 256 single bytes (byte-level BPE)")
        n_regular = len(ranks)
        specials = (
            default_special_tokens(max(ranks.values()) + 1, num_extra_special)
            if special_tokens is None
            else dict(special_tokens)
        )
        _check_special_tokens(specials, ranks)
        self._ranks = ranks
        self._special = dict(sorted(specials.items(), key=lambda kv: kv[1]))
        self._n_regular = n_regular
        self._name = name
        self._pattern = pattern
        # tiktoken's n_vocab (max token value + 1), known without building the Encoding
        self._n_vocab = max(max(ranks.values()), max(self._special.values())) + 1

    @functools.cached_property
    def _enc(self) -> tiktoken.Encoding:
        """Built on first encode/decode (~0.2 s for 151k ranks): a process that only asks for n_vocab or
        the special ids, like the `tokens` stage's parent, never pays for it."""
        return tiktoken.Encoding(
            self._name, pat_str=self._pattern, mergeable_ranks=self._ranks, special_tokens=self._special
        )

    # ------------------------------------------------------------------ construction and saving

    @classmethod
    def from_files(
        cls,
        ranks_path: str | os.PathLike[str],
        special_tokens_path: str | os.PathLike[str] | None = None,
        num_extra_special: int = NUM_EXTRA_SPECIAL,
    ) -> QwenTokenizer:
        """Load `<name>.tiktoken`; specials from `special_tokens.json` if given, else Qwen's default layout."""
        ranks = read_ranks(ranks_path)
        specials = None if special_tokens_path is None else read_special_tokens(special_tokens_path)
        return cls(ranks, specials, num_extra_special=num_extra_special, name=Path(ranks_path).stem)

    def save(self, directory: str | os.PathLike[str], name: str) -> TokenizerFiles:
        """Write `<directory>/<name>.tiktoken` and `<directory>/special_tokens.json`, each atomically."""
        directory = Path(directory)
        ranks_path = write_ranks(directory / f"{name}.tiktoken", self._ranks)
        special_path = directory / SPECIAL_TOKENS_FILE
        write_text(special_path, json.dumps(self._special, indent=1, ensure_ascii=False) + "\n")
        return TokenizerFiles(ranks_path, special_path)

    # ------------------------------------------------------------------ vocabulary facts

    @property
    def encoding(self) -> tiktoken.Encoding:
        return self._enc

    @property
    def mergeable_ranks(self) -> dict[bytes, int]:
        """The regular vocabulary (a copy)."""
        return dict(self._ranks)

    @property
    def n_regular(self) -> int:
        """Number of regular (BPE) tokens, the 256 bytes included."""
        return self._n_regular

    @property
    def n_vocab(self) -> int:
        """Regular + special tokens = the number of ids the model must embed (before padding)."""
        return self._n_vocab

    @property
    def special_tokens(self) -> dict[str, int]:
        return dict(self._special)

    @property
    def eod_id(self) -> int:
        return self._special[ENDOFTEXT]

    @property
    def im_start_id(self) -> int:
        return self._special[IM_START]

    @property
    def im_end_id(self) -> int:
        return self._special[IM_END]

    def __len__(self) -> int:
        return self.n_vocab

    def __repr__(self) -> str:
        return f"QwenTokenizer(name={self._name!r}, n_regular={self._n_regular}, n_vocab={self.n_vocab})"

    # ------------------------------------------------------------------ encode / decode

    def encode(self, text: str, allowed_special: str | AbstractSet[str] = _NO_SPECIAL) -> list[int]:
        """NFC-normalize, then encode; special-token text is plain text unless in `allowed_special` ("all" ok)."""
        if not allowed_special:  # nothing special allowed: tiktoken's ordinary path, no special-token scan
            return self._enc.encode_ordinary(_nfc(text))
        return self._enc.encode(_nfc(text), allowed_special=allowed_special, disallowed_special=())

    def encode_numpy(self, text: str) -> np.ndarray:
        """`encode(text)` (special-token text as plain text) as a uint32 array straight from tiktoken's
        buffer: no Python int per token (the `tokens` stage's hot path)."""
        return self._enc.encode_to_numpy(_nfc(text), allowed_special=_NO_SPECIAL, disallowed_special=())

    def encode_batch(
        self,
        texts: Sequence[str],
        allowed_special: str | AbstractSet[str] = _NO_SPECIAL,
        num_threads: int = 8,
    ) -> list[list[int]]:
        if not allowed_special:
            return self._enc.encode_ordinary_batch([_nfc(t) for t in texts], num_threads=num_threads)
        return self._enc.encode_batch(
            [_nfc(t) for t in texts],
            num_threads=num_threads,
            allowed_special=allowed_special,
            disallowed_special=(),
        )

    def decode(self, ids: Sequence[int], errors: str = "replace") -> str:
        """Concatenate token bytes and decode UTF-8 (invalid sequences replaced, as Qwen does)."""
        return self._enc.decode(ids, errors=errors)

    def decode_bytes(self, ids: Sequence[int]) -> bytes:
        return self._enc.decode_bytes(ids)


def read_special_tokens(path: str | os.PathLike[str]) -> dict[str, int]:
    """Read a `special_tokens.json` ({"<|endoftext|>": id, ...}); errors name the file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) for k, v in data.items()
    ):
        raise ValueError(f"{path}: expected a JSON object mapping special-token text to integer id")
    return data


def _check_special_tokens(specials: Mapping[str, int], ranks: Mapping[bytes, int]) -> None:
    missing = [t for t in (ENDOFTEXT, IM_START, IM_END) if t not in specials]
    if missing:
        raise ValueError(f"special tokens lack {missing}")
    if len(set(specials.values())) != len(specials):
        raise ValueError("two special tokens share an id")
    if any(isinstance(i, bool) or not isinstance(i, int) or i < 0 for i in specials.values()):
        raise ValueError("special token ids must be integers >= 0")
    clash = set(specials.values()) & set(ranks.values())
    if clash:
        raise ValueError(f"special token id {min(clash)} collides with a regular rank")


def _nfc(text: str) -> str:
    return text if unicodedata.is_normalized("NFC", text) else unicodedata.normalize("NFC", text)
