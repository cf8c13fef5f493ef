"""Configuration of the tokenizer component (Qwen technical report §2.2; spec §2).

A plain dataclass so that OmegaConf can use it as a structured config (only int/float/str/bool fields);
this module imports nothing from OmegaConf or Hydra. `__post_init__` rejects bad values with a message
naming the field, so `qwen-hpc validate` fails before anything is submitted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Which tokenizer to produce. Only "train" is implemented; "extend" (add merges to an existing
# tokenizer, Qwen's recipe on top of cl100k) and "load" (use a released .tiktoken file) are accepted here
# so that configs can name them, and fail clearly when run (see `qwen_hpc.tokenizer.build`).
TOKENIZER_KINDS = ("train", "extend", "load")
TRAIN_ENGINES = ("auto", "rustbpe", "hf", "python")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass
class TokenizerConfig:
    """How to build the tokenizer.

    vocab_size counts the regular BPE tokens including the 256 single bytes; the special tokens
    (3 + num_extra_special) come on top of it, so n_vocab = vocab_size + 3 + num_extra_special.
    max_train_chars caps the training text (-1 = no cap).
    """

    kind: str = "train"
    name: str = "qwen_tiny"
    vocab_size: int = 4096
    num_extra_special: int = 205
    max_train_chars: int = 20_000_000
    engine: str = "auto"

    def __post_init__(self) -> None:
        if self.kind not in TOKENIZER_KINDS:
            raise ValueError(f"tokenizer.kind={self.kind!r} must be one of {list(TOKENIZER_KINDS)}")
        if not isinstance(self.name, str) or not _NAME_RE.match(self.name):
            raise ValueError(
                f"tokenizer.name={self.name!r} must be a file-name-safe string "
                "(letters, digits, '.', '_', '-'; it names the <name>.tiktoken file)"
            )
        if isinstance(self.vocab_size, bool) or not isinstance(self.vocab_size, int) or self.vocab_size < 256:
            raise ValueError(f"tokenizer.vocab_size={self.vocab_size!r} must be >= 256 (the byte alphabet)")
        if self.vocab_size > 2**31 - 1 - 1024:
            raise ValueError(f"tokenizer.vocab_size={self.vocab_size} must fit int32 token ids")
        if (
            isinstance(self.num_extra_special, bool)
            or not isinstance(self.num_extra_special, int)
            or self.num_extra_special < 0
        ):
            raise ValueError(f"tokenizer.num_extra_special={self.num_extra_special!r} must be >= 0")
        if (
            isinstance(self.max_train_chars, bool)
            or not isinstance(self.max_train_chars, int)
            or (self.max_train_chars <= 0 and self.max_train_chars != -1)
        ):
            raise ValueError(
                f"tokenizer.max_train_chars={self.max_train_chars!r} must be > 0, or -1 for no cap"
            )
        if self.engine not in TRAIN_ENGINES:
            raise ValueError(f"tokenizer.engine={self.engine!r} must be one of {list(TRAIN_ENGINES)}")
