"""Configuration of the tokenizer component (Qwen technical report §2.2; spec §2).

A plain dataclass so that OmegaConf can use it as a structured config (only int/float/str/bool fields);
this module imports nothing from OmegaConf or Hydra. `__post_init__` rejects bad values with a message
naming the field, so `qwen-hpc validate` fails before anything is submitted.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

# Which tokenizer to produce: "train" a new BPE, "extend" an existing ranks file (Qwen's recipe on top of
# cl100k: drop 2-/3-digit number tokens, learn new merges after the rest) or "load" a released .tiktoken
# file as is (see `qwen_hpc.tokenizer.build`).
TOKENIZER_KINDS = ("train", "extend", "load")
TRAIN_ENGINES = ("auto", "rustbpe", "hf", "python")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass
class TokenizerConfig:
    """How to build the tokenizer.

    vocab_size counts the regular BPE tokens including the 256 single bytes; the special tokens
    (3 + num_extra_special) come on top of it, so n_vocab = vocab_size + 3 + num_extra_special.
    For kind=extend it is the size after extension (151,643 for Qwen's: 99,156 kept + 52,487 new);
    kind=load ignores it. max_train_chars caps the training text (-1 = no cap).
    ranks_file: the .tiktoken file extended (kind=extend, e.g. cl100k_base) or loaded (kind=load).
    drop_multi_digit: kind=extend drops every 2-/3-digit ASCII number token first, as Qwen did.
    compare_ranks: more .tiktoken files the compression report measures beside ours (missing files are
    skipped and listed in the report); reference: the tokenizer (file stem, or `name` for ours) whose
    token counts the others are divided by, as XLM-R is in the paper's Figure 3 ("" = ours; a reference
    that is not among the compared files falls back to ours, noted in the report).
    Relative paths are tried under the working directory, then under the shared folder
    ($QWEN_HPC_SHARED_ROOT, default: the folder `shared` beside the repository).
    """

    kind: str = "train"
    name: str = "qwen_tiny"
    vocab_size: int = 4096
    num_extra_special: int = 205
    max_train_chars: int = 20_000_000
    engine: str = "auto"
    ranks_file: str = ""
    drop_multi_digit: bool = True
    compare_ranks: list[str] = field(
        default_factory=lambda: ["tokenizers/cl100k_base.tiktoken", "tokenizers/qwen.tiktoken"]
    )
    reference: str = "cl100k_base"
    compression_max_docs: int = 2000

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
        if self.kind in ("extend", "load") and not self.ranks_file:
            raise ValueError(
                f"tokenizer.ranks_file must name a .tiktoken file for tokenizer.kind={self.kind!r} "
                "(e.g. tokenizers/cl100k_base.tiktoken or tokenizers/qwen.tiktoken)"
            )
        if isinstance(self.compression_max_docs, bool) or self.compression_max_docs < 1:
            raise ValueError(f"tokenizer.compression_max_docs={self.compression_max_docs!r} must be >= 1")


def shared_root() -> Path:
    """The read-only shared folder (vocabularies, datasets): $QWEN_HPC_SHARED_ROOT or <repo>/../shared."""
    env = os.environ.get("QWEN_HPC_SHARED_ROOT")
    return Path(env) if env else Path(__file__).resolve().parents[2].parent / "shared"


def resolve_path(path: str | os.PathLike[str]) -> Path:
    """An absolute path as is; a relative one under the working directory if it exists there, else under
    `shared_root()`. Raises FileNotFoundError naming both places when neither has it."""
    p = Path(path).expanduser()
    if p.is_absolute() or p.exists():
        if not p.exists():
            raise FileNotFoundError(f"{p} does not exist")
        return p
    shared = shared_root() / p
    if shared.exists():
        return shared
    raise FileNotFoundError(f"{path} not found in {Path.cwd()} nor in the shared folder {shared_root()}")
