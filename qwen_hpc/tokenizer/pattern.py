"""Qwen's pre-tokenization pattern and special-token names (Qwen technical report §2.2; spec §2.3-§2.4).

The pattern is the 2023 (non-possessive) cl100k_base pattern with one change: cl100k's `\\p{N}{1,3}`
alternative becomes `\\p{N}`, so every digit is its own pre-token ("12345" -> 5 tokens, as in LLaMA).
Because tiktoken and rustbpe both compile it with Rust's `fancy-regex`, training and encoding split text
identically by construction.

Special tokens follow the regular BPE ranks: `<|endoftext|>` (end of document), `<|im_start|>`,
`<|im_end|>` (ChatML), then `<|extra_0|>` ... reserved and unused. With the official 151,643 ranks that
gives ids 151643, 151644, 151645 and 205 extras, 151,851 in all.
"""

from __future__ import annotations

QWEN_PAT_STR = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)"
    r"|[^\r\n\p{L}\p{N}]?\p{L}+"
    r"|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+"
    r"|\s+(?!\S)"
    r"|\s+"
)

# cl100k_base's own (2023, non-possessive) pattern: the same except `\p{N}{1,3}`. Used only to measure
# cl100k-style vocabularies (which hold 2-/3-digit tokens) fairly in the compression report.
CL100K_PAT_STR = QWEN_PAT_STR.replace(r"|\p{N}|", r"|\p{N}{1,3}|", 1)

ENDOFTEXT = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
NUM_EXTRA_SPECIAL = 205  # <|extra_0|> ... <|extra_204|> in the released tokenizer


def special_token_names(num_extra: int = NUM_EXTRA_SPECIAL) -> list[str]:
    """`<|endoftext|>`, `<|im_start|>`, `<|im_end|>`, then `<|extra_0|>` ... `<|extra_{num_extra-1}|>`."""
    if num_extra < 0:
        raise ValueError(f"num_extra={num_extra} must be >= 0")
    return [ENDOFTEXT, IM_START, IM_END] + [f"<|extra_{i}|>" for i in range(num_extra)]
