import json

import pytest

from qwen_hpc.tokenizer.encoding import QwenTokenizer, TokenizerFiles, read_special_tokens
from qwen_hpc.tokenizer.pattern import special_token_names

from .helpers import SAMPLES


def test_special_tokens_follow_the_regular_ranks(tiny_tokenizer):
    n = tiny_tokenizer.n_regular
    assert n == 600
    assert (tiny_tokenizer.eod_id, tiny_tokenizer.im_start_id, tiny_tokenizer.im_end_id) == (n, n + 1, n + 2)
    assert tiny_tokenizer.n_vocab == n + 208 == len(tiny_tokenizer)
    assert list(tiny_tokenizer.special_tokens) == special_token_names()
    assert tiny_tokenizer.special_tokens["<|extra_204|>"] == n + 207


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_round_trip(tiny_tokenizer, name):
    assert tiny_tokenizer.decode(tiny_tokenizer.encode(SAMPLES[name])) == SAMPLES[name]


def test_special_token_text_is_plain_text_by_default(tiny_tokenizer):
    tok = tiny_tokenizer
    text = 'print("<|endoftext|>") <|im_start|>user'
    plain = tok.encode(text)
    assert tok.eod_id not in plain and tok.im_start_id not in plain
    assert tok.decode(plain) == text
    allowed = tok.encode(text, allowed_special={"<|endoftext|>"})
    assert allowed.count(tok.eod_id) == 1 and tok.im_start_id not in allowed
    everything = tok.encode(text, allowed_special="all")
    assert tok.eod_id in everything and tok.im_start_id in everything
    assert tok.encode("<|im_end|>", allowed_special="all") == [tok.im_end_id]
    assert tok.decode(everything) == text


def test_nfc_normalization(tiny_tokenizer):
    assert tiny_tokenizer.encode("cafe\u0301") == tiny_tokenizer.encode("caf\u00e9")
    assert tiny_tokenizer.decode(tiny_tokenizer.encode("cafe\u0301")) == "caf\u00e9"


def test_encode_batch_matches_encode(tiny_tokenizer):
    texts = list(SAMPLES.values()) + ["<|endoftext|>"]
    assert tiny_tokenizer.encode_batch(texts) == [tiny_tokenizer.encode(t) for t in texts]


def test_save_and_load(tmp_path, tiny_tokenizer):
    files = tiny_tokenizer.save(tmp_path / "tok", "tiny")
    assert files == TokenizerFiles(
        tmp_path / "tok" / "tiny.tiktoken", tmp_path / "tok" / "special_tokens.json"
    )
    assert sorted(p.name for p in (tmp_path / "tok").iterdir()) == ["special_tokens.json", "tiny.tiktoken"]
    specials = json.loads(files.special_tokens.read_text())
    assert specials == tiny_tokenizer.special_tokens and list(specials)[0] == "<|endoftext|>"
    for loaded in (
        QwenTokenizer.from_files(files.ranks, files.special_tokens),
        QwenTokenizer.from_files(files.ranks),  # default layout gives the same ids
        files.load(),
    ):
        assert loaded.special_tokens == tiny_tokenizer.special_tokens
        assert loaded.mergeable_ranks == tiny_tokenizer.mergeable_ranks
        for text in SAMPLES.values():
            assert loaded.encode(text) == tiny_tokenizer.encode(text)


def test_fewer_extras(trained_ranks):
    tok = QwenTokenizer(trained_ranks, num_extra_special=2)
    assert tok.n_vocab == 600 + 5 and "<|extra_1|>" in tok.special_tokens


def test_bad_special_tokens(trained_ranks, tmp_path):
    with pytest.raises(ValueError, match="collides with a regular rank"):
        QwenTokenizer(trained_ranks, {"<|endoftext|>": 5, "<|im_start|>": 600, "<|im_end|>": 601})
    with pytest.raises(ValueError, match="lack"):
        QwenTokenizer(trained_ranks, {"<|endoftext|>": 600})
    bad = tmp_path / "special_tokens.json"
    bad.write_text('["<|endoftext|>"]')
    with pytest.raises(ValueError, match="special_tokens.json: expected a JSON object"):
        read_special_tokens(bad)


def test_ranks_without_all_bytes_are_rejected():
    with pytest.raises(ValueError, match="256 single bytes"):
        QwenTokenizer({b"a": 0, b"b": 1})


# ---------------------------------------------------------------- the released Qwen vocabulary (spec §2)


def test_official_special_ids(qwen_official):
    tok = qwen_official
    assert (tok.eod_id, tok.im_start_id, tok.im_end_id) == (151643, 151644, 151645)
    assert tok.n_vocab == 151851 and tok.n_regular == 151643
    assert tok.special_tokens["<|extra_0|>"] == 151646 and tok.special_tokens["<|extra_204|>"] == 151850


def test_official_encodings(qwen_official):
    tok = qwen_official
    assert len(tok.encode("通义千问是阿里巴巴开发的大语言模型")) == 10
    assert tok.encode('print("<|endoftext|>")') == [1350, 9639, 91, 8691, 723, 427, 91, 82598]
    assert tok.encode('print("<|endoftext|>")', allowed_special="all") == [1350, 445, 151643, 899]
    assert [tok.encode(s) for s in ("\n", "system", "user", "assistant")] == [[198], [8948], [872], [77091]]
    assert len(tok.encode("12345")) == 5
    assert [tok.decode([i]) for i in tok.encode("2023年")] == ["2", "0", "2", "3", "年"]
    for text in SAMPLES.values():
        assert tok.decode(tok.encode(text)) == text
