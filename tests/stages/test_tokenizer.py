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


def test_tokenizer_stage_writes_a_compression_report(small_run) -> None:
    """Figure 3 style: tokens per source relative to the reference, for ours and each ranks file found."""
    out = small_run.stage("tokenizer")
    report = read_json(out / "compression.json")
    assert (out / "compression.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    sources = set(report["sources"])
    assert sources and set(report["relative"]["qwen_tiny"]) == sources
    found = [n for n in ("cl100k_base", "qwen") if n in report["tokenizers"]]
    if not found:  # no shared folder: ours alone, and its own reference; both files and the reference listed
        assert report["reference"] == "qwen_tiny"
        assert set(report["skipped"]) == {
            "tokenizers/cl100k_base.tiktoken", "tokenizers/qwen.tiktoken", "reference cl100k_base"
        }
        return
    assert found == ["cl100k_base", "qwen"] and report["reference"] == "cl100k_base"
    for src in sources:
        ref = report["tokenizers"]["cl100k_base"][src]["tokens"]
        assert report["relative"]["cl100k_base"][src] == 1.0
        assert report["relative"]["qwen_tiny"][src] == round(
            report["tokenizers"]["qwen_tiny"][src]["tokens"] / ref, 4
        )
        # On English prose and code Qwen's vocabulary is cl100k's plus single digits: close to 1.
        assert 0.95 <= report["relative"]["qwen"][src] <= 1.15
        # A 768-token vocabulary needs far more tokens than a 100k one, even in-sample.
        assert report["relative"]["qwen_tiny"][src] > 1.5
