import os
import subprocess
import sys

import pytest
import tiktoken

from qwen_hpc.tokenizer.pattern import QWEN_PAT_STR
from qwen_hpc.tokenizer.ranks import validate_ranks
from qwen_hpc.tokenizer.train import _collect, available_engines, cap_chars, train_bpe

from .helpers import REPO_ROOT, SAMPLES, corpus_texts


def as_encoding(ranks: dict[bytes, int]) -> tiktoken.Encoding:
    return tiktoken.Encoding("t", pat_str=QWEN_PAT_STR, mergeable_ranks=ranks, special_tokens={})


def assert_bpe_table(ranks: dict[bytes, int], vocab_size: int) -> None:
    """Bytes at 0..255, contiguous ranks, each later token the concatenation of two earlier ones."""
    validate_ranks(ranks, contiguous=True)
    assert len(ranks) == vocab_size
    assert all(ranks[bytes([b])] == b for b in range(256))
    for token, rank in ranks.items():
        if rank >= 256:
            assert any(
                ranks.get(token[:k], rank) < rank and ranks.get(token[k:], rank) < rank
                for k in range(1, len(token))
            ), token


def test_trained_ranks_are_a_tiktoken_table(trained_ranks):
    assert_bpe_table(trained_ranks, 600)
    enc = as_encoding(trained_ranks)
    assert enc.n_vocab == 600


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_round_trip_is_exact(trained_ranks, name):
    enc = as_encoding(trained_ranks)
    text = SAMPLES[name]
    ids = enc.encode_ordinary(text)
    assert enc.decode(ids) == text
    assert len(ids) < len(text.encode("utf-8")) or name in ("emoji", "mixed")  # something was merged


def test_digits_are_never_merged(trained_ranks):
    # The corpus is full of multi-digit numbers ("2023", "Document 12"), yet no token holds two digits.
    assert not [t for t in trained_ranks if sum(ch.isdigit() for ch in t.decode("utf-8", "replace")) > 1]
    enc = as_encoding(trained_ranks)
    assert len(enc.encode_ordinary("12345")) == 5
    assert [enc.decode([i]) for i in enc.encode_ordinary("2023")] == ["2", "0", "2", "3"]


def test_training_is_deterministic_across_processes(trained_ranks):
    # rustbpe's hash maps are randomly seeded per process; the result must not depend on it.
    code = (
        "from tests.tokenizer.helpers import corpus_texts; from qwen_hpc.tokenizer.train import train_bpe;"
        "r = train_bpe(corpus_texts(), 600); print(sorted(r.items(), key=lambda kv: kv[1])[-5:])"
    )
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2")
    }
    assert outs == {str(sorted(trained_ranks.items(), key=lambda kv: kv[1])[-5:]) + "\n"}
    assert train_bpe(corpus_texts(), 600) == trained_ranks


def test_python_engine_matches_rustbpe():
    pytest.importorskip("rustbpe")
    texts = corpus_texts(20)
    assert train_bpe(texts, 500, engine="python") == train_bpe(texts, 500, engine="rustbpe")


def test_tiktoken_reproduces_the_trainers_segmentation():
    rustbpe = pytest.importorskip("rustbpe")
    trainer = rustbpe.Tokenizer()
    trainer.train_from_iterator(iter(corpus_texts()), 600, pattern=QWEN_PAT_STR)
    ranks = train_bpe(corpus_texts(), 600, engine="rustbpe")
    enc = as_encoding(ranks)
    for text in SAMPLES.values():
        assert enc.encode_ordinary(text) == trainer.encode(text)


def test_hf_engine_gives_a_valid_table():
    pytest.importorskip("tokenizers")
    ranks = train_bpe(corpus_texts(20), 500, engine="hf")
    assert_bpe_table(ranks, 500)
    enc = as_encoding(ranks)
    for text in SAMPLES.values():
        assert enc.decode(enc.encode_ordinary(text)) == text


def test_python_engine_is_always_available():
    assert available_engines()[-1] == "python"
    ranks = train_bpe(corpus_texts(5), 300, engine="python")
    assert_bpe_table(ranks, 300)


def test_runs_out_of_pairs_gracefully():
    ranks = train_bpe(["abab abab"], 1000, engine="python")
    assert 256 < len(ranks) < 1000
    validate_ranks(ranks, contiguous=True)


def test_repeated_bytes_from_different_merges_are_dropped():
    # Should two merges ever yield the same bytes ("ab"+"c", "a"+"bc"), the table keeps the first rank,
    # stays contiguous, and training goes on to fill vocab_size.
    ranks = _collect([b"ab", b"abc", b"abc", b"de", b"fg"], 259)
    assert [t for t, r in sorted(ranks.items(), key=lambda kv: kv[1])][256:] == [b"ab", b"abc", b"de"]


def test_max_chars_caps_the_training_text():
    texts = ["zq" * 500, "xy" * 500]
    ranks = train_bpe(texts, 260, engine="python", max_chars=1000)
    assert b"zq" in ranks and b"xy" not in ranks
    assert list(cap_chars(["abc", "def"], 4)) == ["abc", "d"]
    assert list(cap_chars(["abc"], -1)) == ["abc"]


def test_training_text_is_nfc_normalized():
    ranks = train_bpe(["cafe\u0301 " * 50], 262, engine="python")
    assert "é".encode() in ranks and "e\u0301".encode() not in ranks


def test_bad_arguments():
    with pytest.raises(ValueError, match="vocab_size=100 must be >= 256"):
        train_bpe(["x"], 100)
    with pytest.raises(ValueError, match="engine='fast'"):
        train_bpe(["x"], 300, engine="fast")
    with pytest.raises(ValueError, match="no training text"):
        train_bpe(["", ""], 300)
    with pytest.raises(TypeError, match="#1 is bytes"):
        train_bpe(["ok", b"bytes"], 300)
