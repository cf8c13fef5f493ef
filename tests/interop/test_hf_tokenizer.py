"""The exported tokenizer: `AutoTokenizer` loads it with no custom code, encodes like our tiktoken encoder,
decodes back, renders the exact ChatML layout (spec §7.2), and reads back into the same ranks."""

from __future__ import annotations

from pathlib import Path

import pytest

from qwen_hpc.alignment.chatml import chatml_ids, render_chatml
from qwen_hpc.interop.hf_tokenizer import tokenizer_files, tokenizer_from_hf
from qwen_hpc.tokenizer import QwenTokenizer
from tests.inference.helpers import MULTILINGUAL, tiny_tokenizer
from tests.tokenizer.helpers import SAMPLES

transformers = pytest.importorskip("transformers")
CONVERSATION = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Hello!"},
    {"role": "assistant", "content": "Hello! How can I assist you today?"},
    {"role": "user", "content": "通义千问是什么？"},
]
EXPECTED = (
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "<|im_start|>user\nHello!<|im_end|>\n"
    "<|im_start|>assistant\nHello! How can I assist you today?<|im_end|>\n"
    "<|im_start|>user\n通义千问是什么？<|im_end|>\n"
    "<|im_start|>assistant\n"
)


def _export(tokenizer: QwenTokenizer, path: Path):
    path.mkdir(parents=True, exist_ok=True)
    for name, text in tokenizer_files(tokenizer, model_max_length=128).items():
        (path / name).write_text(text, encoding="utf-8")
    return transformers.AutoTokenizer.from_pretrained(path)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory):
    return _export(tiny_tokenizer(), tmp_path_factory.mktemp("tok"))


def test_same_ids_as_tiktoken_on_multilingual_text(exported) -> None:
    ours = tiny_tokenizer()
    for text in [MULTILINGUAL, *SAMPLES.values()]:
        ids = ours.encode(text)
        assert exported.encode(text, add_special_tokens=False) == ids
        assert exported.decode(ids) == ours.decode(ids)
    assert len(exported) == ours.n_vocab
    assert exported.convert_tokens_to_ids("<|im_end|>") == ours.im_end_id
    assert exported.eos_token == "<|endoftext|>" and exported.bos_token is None


def test_chat_template_renders_exact_chatml(exported) -> None:
    text = exported.apply_chat_template(CONVERSATION, tokenize=False, add_generation_prompt=True)
    assert text == EXPECTED == render_chatml(CONVERSATION)
    assert render_chatml(CONVERSATION[1:]) == EXPECTED  # the default system turn is added
    no_prompt = exported.apply_chat_template(CONVERSATION[:3], tokenize=False, add_generation_prompt=False)
    assert no_prompt == render_chatml(CONVERSATION[:3], add_generation_prompt=False)
    ours = tiny_tokenizer()
    ids = chatml_ids(ours, CONVERSATION)
    assert ours.decode(ids) == EXPECTED
    assert ids[0] == ours.im_start_id and ids.count(ours.im_end_id) == 4 and ids.count(ours.im_start_id) == 5


def test_tokenizer_json_reads_back_into_the_same_ranks(tmp_path: Path) -> None:
    ours = tiny_tokenizer()
    _export(ours, tmp_path)
    back = tokenizer_from_hf(tmp_path / "tokenizer.json")
    assert back.mergeable_ranks == ours.mergeable_ranks and back.special_tokens == ours.special_tokens


def test_official_qwen_vocabulary_exports_exactly(tmp_path: Path, qwen_tiktoken_path: Path) -> None:
    ours = QwenTokenizer.from_files(qwen_tiktoken_path)
    hf = _export(ours, tmp_path)
    assert len(hf) == 151851
    assert hf.encode("通义千问是阿里巴巴开发的大语言模型", add_special_tokens=False) == ours.encode(
        "通义千问是阿里巴巴开发的大语言模型"
    )
    for text in [MULTILINGUAL, *SAMPLES.values()]:
        assert hf.encode(text, add_special_tokens=False) == ours.encode(text)
