import regex

from qwen_hpc.tokenizer.pattern import QWEN_PAT_STR, special_token_names

# Spec §2.3, verbatim.
SPEC_PAT = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
CL100K_2023 = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""


def split(text: str) -> list[str]:
    return regex.findall(QWEN_PAT_STR, text)


def test_pattern_is_the_spec_string():
    assert QWEN_PAT_STR == SPEC_PAT
    # ... which is the 2023 cl100k pattern with \p{N}{1,3} replaced by \p{N}
    assert QWEN_PAT_STR.replace(r"\p{N}|", r"\p{N}{1,3}|") == CL100K_2023


def test_every_digit_is_its_own_pretoken():
    assert split("12345") == ["1", "2", "3", "4", "5"]
    assert split("2023年") == ["2", "0", "2", "3", "年"]
    assert split("x=３.14") == ["x", "=", "３", ".", "1", "4"]  # full-width digits are \p{N} too


def test_contractions_and_whitespace():
    assert split("I'm here, you'LL see") == ["I", "'m", " here", ",", " you", "'LL", " see"]
    assert split("a  b\n\n c") == ["a", " ", " b", "\n\n", " c"]


def test_special_token_names():
    names = special_token_names()
    assert names[:3] == ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    assert names[3] == "<|extra_0|>" and names[-1] == "<|extra_204|>"
    assert len(names) == 208 and len(set(names)) == 208
    assert special_token_names(0) == names[:3]
