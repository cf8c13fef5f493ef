"""Qwen's byte-level BPE tokenizer (report §2.2): pattern, training, tiktoken files, encoding, indexed data.

Importing this package is cheap (tiktoken and numpy only); writing Megatron-Core indexed datasets needs
neither torch nor Megatron (the format is written with numpy and checked against Megatron in tests).
"""

from qwen_hpc.tokenizer.build import KINDS, build_tokenizer
from qwen_hpc.tokenizer.config import TokenizerConfig
from qwen_hpc.tokenizer.encoding import QwenTokenizer, TokenizerFiles
from qwen_hpc.tokenizer.pattern import QWEN_PAT_STR, special_token_names
from qwen_hpc.tokenizer.ranks import RanksFileError, read_ranks, write_ranks
from qwen_hpc.tokenizer.train import train_bpe

__all__ = [
    "KINDS",
    "QWEN_PAT_STR",
    "QwenTokenizer",
    "RanksFileError",
    "TokenizerConfig",
    "TokenizerFiles",
    "build_tokenizer",
    "read_ranks",
    "special_token_names",
    "train_bpe",
    "write_ranks",
]
