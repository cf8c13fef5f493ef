from __future__ import annotations

import tiktoken

from qwen_hpc.tokenizer.encoding import QwenTokenizer
from qwen_hpc.utils.io import read_json


def test_tokenizer_stage_writes_a_tiktoken_vocabulary(small_run) -> None:
    out = small_run.stage("tokenizer")
    tok = QwenTokenizer.from_files(out / "qwen_tiny.tiktoken", out / "special_tokens.json")
    assert isinstance(tok.encoding, tiktoken.Encoding)
    n_regular = len((out / "qwen_tiny.tiktoken").read_text().splitlines())
    assert n_regular == 768
    assert (tok.eod_id, tok.im_start_id, tok.im_end_id) == (n_regular, n_regular + 1, n_regular + 2)
    assert tok.n_vocab == n_regular + 208
    text = "def f(x):\n    return x ** 2  # 12345 通义千问 🙂"
    assert tok.decode(tok.encode(text)) == text
    digits = tok.encode("12345")
    assert len(digits) == 5
    marker = read_json(out / "_SUCCESS.json")
    assert marker["metrics"]["n_vocab"] == tok.n_vocab
