import ast
from pathlib import Path

import pytest

from qwen_hpc.tokenizer import KINDS, TokenizerConfig, build_tokenizer

from .helpers import corpus_texts


def test_defaults_are_valid():
    cfg = TokenizerConfig()
    assert (cfg.kind, cfg.vocab_size, cfg.num_extra_special, cfg.engine) == ("train", 4096, 205, "auto")


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"vocab_size": 100}, r"tokenizer\.vocab_size=100 must be >= 256 \(the byte alphabet\)"),
        ({"kind": "bpe"}, r"tokenizer\.kind='bpe' must be one of \['train', 'extend', 'load'\]"),
        ({"engine": "sentencepiece"}, r"tokenizer\.engine='sentencepiece'"),
        ({"num_extra_special": -1}, r"tokenizer\.num_extra_special=-1"),
        ({"max_train_chars": 0}, r"tokenizer\.max_train_chars=0 must be > 0, or -1"),
        ({"name": "../escape"}, r"tokenizer\.name='../escape'"),
        ({"name": ""}, r"tokenizer\.name=''"),
    ],
)
def test_validation_names_the_field(overrides, match):
    with pytest.raises(ValueError, match=match):
        TokenizerConfig(**overrides)


def test_structured_config_compatible():
    omegaconf = pytest.importorskip("omegaconf")
    schema = omegaconf.OmegaConf.structured(TokenizerConfig)
    merged = omegaconf.OmegaConf.merge(
        schema, omegaconf.OmegaConf.create({"vocab_size": 512, "max_train_chars": -1})
    )
    cfg = omegaconf.OmegaConf.to_object(merged)
    assert isinstance(cfg, TokenizerConfig) and cfg.vocab_size == 512
    with pytest.raises(ValueError, match="vocab_size=10 must be >= 256"):
        omegaconf.OmegaConf.to_object(omegaconf.OmegaConf.merge(schema, {"vocab_size": 10}))


def test_build_train():
    tok = build_tokenizer(
        TokenizerConfig(vocab_size=300, num_extra_special=4, max_train_chars=-1), corpus_texts(5)
    )
    assert tok.n_regular == 300 and tok.n_vocab == 307


@pytest.mark.parametrize("kind", ["extend", "load"])
def test_extend_and_load_need_a_ranks_file(kind, tmp_path):
    assert set(KINDS) == {"train", "extend", "load"}
    with pytest.raises(
        ValueError, match=f"tokenizer.ranks_file must name a .tiktoken file for tokenizer.kind='{kind}'"
    ):
        TokenizerConfig(kind=kind)
    missing = tmp_path / "nowhere.tiktoken"
    with pytest.raises(FileNotFoundError, match="nowhere.tiktoken"):
        build_tokenizer(TokenizerConfig(kind=kind, ranks_file=str(missing)), ["text"])


def test_relative_ranks_file_resolves_under_the_shared_folder(tmp_path, monkeypatch):
    from qwen_hpc.tokenizer.config import resolve_path

    (tmp_path / "tokenizers").mkdir()
    (tmp_path / "tokenizers" / "x.tiktoken").write_text("")
    monkeypatch.setenv("QWEN_HPC_SHARED_ROOT", str(tmp_path))
    assert resolve_path("tokenizers/x.tiktoken") == tmp_path / "tokenizers" / "x.tiktoken"
    with pytest.raises(FileNotFoundError, match="nor in the shared folder"):
        resolve_path("tokenizers/y.tiktoken")


FORBIDDEN = {"hydra", "omegaconf", "submitit", "snakemake", "wandb"}
FORBIDDEN_QWEN = {"qwen_hpc.cli", "qwen_hpc.stages", "qwen_hpc.launch"}


def test_domain_code_imports_point_down():
    package = Path(__file__).resolve().parents[2] / "qwen_hpc" / "tokenizer"
    for source in package.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in FORBIDDEN, f"{source.name} imports {name}"
                assert not any(name == f or name.startswith(f + ".") for f in FORBIDDEN_QWEN), (
                    f"{source.name}: {name}"
                )
