"""Test data for the tokenizer tests: a small mixed-language corpus and round-trip probes."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

ENGLISH = (
    "The quick brown fox jumps over the lazy dog. It's a test; we'll see what they've done.\n"
    "Large language models are trained on trillions of tokens of text and code.\n"
)
CHINESE = "通义千问是阿里巴巴开发的大语言模型。我们在中文和英文数据上训练分词器，数字被拆成单个数字。\n"
CODE = 'def add(a, b):\n    """Return a + b."""\n    return a + b\n\n\nfor i in range(10):\n\tprint(add(i, 2023))\n'
EMOJI = "Emoji 🙂🚀 and flags 🇨🇳 🇺🇸; accents: café, naïve, Ångström.\n"
WHITESPACE = "tabs\tand  double  spaces \r\n windows line\n\n\n   indented\u3000full-width space\u00a0nbsp\n"

# Round-trip probes: deliberately include text unlike the training corpus (unseen scripts, rare bytes).
SAMPLES = {
    "english": ENGLISH,
    "chinese": CHINESE + "模型在2023年发布。",
    "code": CODE + "x = {'k': [1, 2, 3]}  # comment\n",
    "emoji": EMOJI + "👩‍👩‍👧‍👦 🧑🏽‍💻",
    "whitespace": WHITESPACE + " \t \n\r\n\u2028 end ",
    "mixed": "Qwen-7B 在 MMLU 上得分 56.7%（5-shot）. <b>bold</b> naïve Привет мир مرحبا שלום",
    "digits": "12345 and 2023年 and 3.14159 and 1,000,000",
}


def corpus_texts(repeat: int = 40) -> list[str]:
    """~40 KB of English, Chinese, code, emoji and odd whitespace, with some variation per copy."""
    base = [ENGLISH, CHINESE, CODE, EMOJI, WHITESPACE]
    return [f"{t}Document {i} of the corpus, number {i * 37}.\n" for i in range(repeat) for t in base]


def shared_root() -> Path:
    return Path(os.environ.get("QWEN_HPC_SHARED_ROOT", REPO_ROOT.parent / "shared"))
