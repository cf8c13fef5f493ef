"""Build the tokenizer a `TokenizerConfig` asks for, via an explicit `kind` registry (style guide §6.4).

kind="train" learns a byte-level BPE of `vocab_size` tokens from the given texts (Qwen report §2.2 keeps
the BPE-on-bytes design; the walking skeleton trains a small one from scratch). "extend" (Qwen's recipe:
cl100k_base plus new merges) and "load" (a released `.tiktoken` file) are reserved names that fail
clearly until implemented.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from qwen_hpc.tokenizer.config import TokenizerConfig
from qwen_hpc.tokenizer.encoding import QwenTokenizer
from qwen_hpc.tokenizer.train import train_bpe


def _train(cfg: TokenizerConfig, texts: Iterable[str] | None) -> QwenTokenizer:
    if texts is None:
        raise ValueError("tokenizer.kind='train' needs training texts")
    max_chars = None if cfg.max_train_chars == -1 else cfg.max_train_chars
    ranks = train_bpe(texts, cfg.vocab_size, engine=cfg.engine, max_chars=max_chars)
    return QwenTokenizer(ranks, num_extra_special=cfg.num_extra_special, name=cfg.name)


def _not_implemented(kind: str) -> Callable[[TokenizerConfig, Iterable[str] | None], QwenTokenizer]:
    def build(cfg: TokenizerConfig, texts: Iterable[str] | None) -> QwenTokenizer:
        raise NotImplementedError(
            f"tokenizer.kind={kind!r} is not implemented yet; only 'train' is (set tokenizer.kind=train)"
        )

    return build


KINDS: dict[str, Callable[[TokenizerConfig, Iterable[str] | None], QwenTokenizer]] = {
    "train": _train,
    "extend": _not_implemented("extend"),
    "load": _not_implemented("load"),
}


def build_tokenizer(cfg: TokenizerConfig, texts: Iterable[str] | None = None) -> QwenTokenizer:
    """Dispatch on `cfg.kind`; the caller saves the result with `QwenTokenizer.save(dir, cfg.name)`."""
    return KINDS[cfg.kind](cfg, texts)
