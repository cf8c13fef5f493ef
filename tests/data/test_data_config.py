"""Config validation names the field; missing sources fail before any job is submitted."""

from __future__ import annotations

from pathlib import Path

import pytest

from qwen_hpc.data import DataConfig, MissingSourcesError, SourceConfig, ValidationConfig, check_sources

from .helpers import jsonl_source, write_lines


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"format": "xml"}, "format"),
        ({"text_unit": "sentence"}, "text_unit"),
        ({"upsample": 0.0}, "upsample"),
        ({"text_key": ""}, "text_key"),
        ({"paths": []}, "paths"),
        ({"name": "bad/name"}, "name"),
    ],
)
def test_source_config_errors_name_the_field(kwargs: dict, field: str) -> None:
    args = {"name": "web", "paths": ["x.jsonl"], **kwargs}
    with pytest.raises(ValueError, match=rf"\.{field}\b"):
        SourceConfig(**args)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"shard_max_docs": 0}, "data.shard_max_docs"),
        ({"min_chars": -1}, "data.min_chars"),
        ({"task_mb": -1}, "data.task_mb"),
        ({"min_chars": 10, "max_chars": 5}, "data.max_chars"),
        ({"embedded_max_docs_per_source": 0}, "data.embedded_max_docs_per_source"),
        ({"embedded_corpus": False}, "data.sources"),
        ({"sources": [SourceConfig(name="a", paths=["x"]), SourceConfig(name="a", paths=["y"])]}, "unique"),
        ({"sources": [SourceConfig(name="code", paths=["x"])]}, "embedded corpus"),
    ],
)
def test_data_config_errors_name_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        DataConfig(**kwargs)


def test_validation_fraction_bounds() -> None:
    with pytest.raises(ValueError, match="data.validation.fraction"):
        ValidationConfig(fraction=1.0)


def test_missing_sources_are_listed_before_submission(tmp_path: Path) -> None:
    write_lines(tmp_path / "ok.jsonl", [{"text": "x"}])
    (tmp_path / "adir").mkdir()
    cfg = DataConfig(
        sources=[
            jsonl_source("good", tmp_path / "ok.jsonl", tmp_path / "*.jsonl"),
            jsonl_source("bad", tmp_path / "nope.jsonl", tmp_path / "nothing" / "*.jsonl", tmp_path / "adir"),
        ],
        embedded_corpus=False,
    )
    with pytest.raises(MissingSourcesError) as info:
        check_sources(cfg)
    message = str(info.value)
    assert str(tmp_path / "nope.jsonl") in message and "does not exist" in message
    assert str(tmp_path / "nothing" / "*.jsonl") in message and "matches no file" in message
    assert str(tmp_path / "adir") in message and "is a directory" in message
    assert "good" not in message
    assert isinstance(info.value, ValueError) and isinstance(info.value, FileNotFoundError)
    check_sources(DataConfig(sources=cfg.sources[:1], embedded_corpus=False))  # all present: no error


def test_structured_config_round_trip() -> None:
    """The lead's stage config subclasses DataConfig as an OmegaConf structured config: keep that working."""
    omegaconf = pytest.importorskip("omegaconf")
    OmegaConf = omegaconf.OmegaConf
    base = OmegaConf.structured(DataConfig)
    user = {
        "sources": [{"name": "zh", "paths": ["a/*.jsonl"], "upsample": 2}],
        "normalize": {"casefold": True},
    }
    cfg = OmegaConf.to_object(OmegaConf.merge(base, user))
    assert isinstance(cfg, DataConfig) and isinstance(cfg.sources[0], SourceConfig)
    assert cfg.sources[0].upsample == 2.0 and cfg.normalize.casefold and cfg.sources[0].format == "jsonl"
    with pytest.raises(omegaconf.errors.ValidationError):
        OmegaConf.merge(base, {"shard_max_docs": "many"})
    with pytest.raises(ValueError, match="format"):
        OmegaConf.to_object(
            OmegaConf.merge(base, {"sources": [{"name": "x", "paths": ["p"], "format": "csv"}]})
        )
    with pytest.raises(omegaconf.errors.MissingMandatoryValue):
        OmegaConf.to_object(OmegaConf.merge(base, {"sources": [{"paths": ["p"]}]}))
