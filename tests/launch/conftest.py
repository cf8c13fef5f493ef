"""A small prepared run (data → tokenizer → tokens) shared by the Slurm launch tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_qwen

SMALL = [
    "logger=none",
    "data.embedded_max_docs_per_source=150",
    "data.embedded_max_chars_per_source=200000",
    "tokenizer.vocab_size=512",
]


@pytest.fixture(scope="session")
def prepared(require_slurm, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """data → tokenizer → tokens of a small run named `requeue`, made once; tests copy it into their root."""
    root = tmp_path_factory.mktemp("prepared")
    for stage in ("data", "tokenizer", "tokens"):
        run_qwen([stage, f"run.root={root}", "run.name=requeue", *SMALL, "launcher=debug"])
    return root
