"""Build the tokenizer a `TokenizerConfig` asks for, via an explicit `kind` registry (style guide §6.4).

Qwen report §2.2; spec §2.2. Three ways to get a vocabulary:
  train   learn a byte-level BPE of `vocab_size` tokens from the given texts;
  extend  Qwen's recipe: start from an existing ranks file (cl100k_base), drop every 2-/3-digit number
          token, keep the rest in order, learn `vocab_size - kept` new merges on the texts after them;
  load    use a released ranks file as is (the official `qwen.tiktoken`: ids 151643/151644/151645 for
          the three named specials, n_vocab 151,851).
In every case the 3 + `num_extra_special` special tokens follow the regular ranks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from qwen_hpc.tokenizer.config import TokenizerConfig, resolve_path
from qwen_hpc.tokenizer.encoding import QwenTokenizer
from qwen_hpc.tokenizer.extend import drop_multi_digit_tokens, learn_new_merges
from qwen_hpc.tokenizer.ranks import read_ranks
from qwen_hpc.tokenizer.train import train_bpe


def _train(cfg: TokenizerConfig, texts: Iterable[str] | None) -> QwenTokenizer:
    if texts is None:
        raise ValueError("tokenizer.kind='train' needs training texts")
    max_chars = None if cfg.max_train_chars == -1 else cfg.max_train_chars
    ranks = train_bpe(texts, cfg.vocab_size, engine=cfg.engine, max_chars=max_chars)
    return QwenTokenizer(ranks, num_extra_special=cfg.num_extra_special, name=cfg.name)


def _extend(cfg: TokenizerConfig, texts: Iterable[str] | None) -> QwenTokenizer:
    base = read_ranks(resolve_path(cfg.ranks_file))
    if cfg.drop_multi_digit:
        base = drop_multi_digit_tokens(base)
    num_new = cfg.vocab_size - len(base)
    if num_new < 0:
        raise ValueError(
            f"tokenizer.vocab_size={cfg.vocab_size} is below the {len(base)} tokens kept from "
            f"{cfg.ranks_file}; kind='extend' needs vocab_size >= {len(base)} (Qwen: 151643)"
        )
    if num_new and texts is None:
        raise ValueError("tokenizer.kind='extend' needs a target corpus to learn new merges on")
    max_chars = None if cfg.max_train_chars == -1 else cfg.max_train_chars
    ranks = learn_new_merges(base, texts or (), num_new, max_chars=max_chars)
    return QwenTokenizer(ranks, num_extra_special=cfg.num_extra_special, name=cfg.name)


def _load(cfg: TokenizerConfig, texts: Iterable[str] | None) -> QwenTokenizer:
    ranks = read_ranks(resolve_path(cfg.ranks_file))
    return QwenTokenizer(ranks, num_extra_special=cfg.num_extra_special, name=cfg.name)


KINDS: dict[str, Callable[[TokenizerConfig, Iterable[str] | None], QwenTokenizer]] = {
    "train": _train,
    "extend": _extend,
    "load": _load,
}


def build_tokenizer(cfg: TokenizerConfig, texts: Iterable[str] | None = None) -> QwenTokenizer:
    """Dispatch on `cfg.kind`; the caller saves the result with `QwenTokenizer.save(dir, cfg.name)`."""
    return KINDS[cfg.kind](cfg, texts)
