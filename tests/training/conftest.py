"""Fixtures for the training tests: a gloo world of one and a two-source token blend."""

from __future__ import annotations

import os

import pytest
import torch

from qwen_hpc.launch.distributed import ensure_process_group

from .helpers import write_token_dataset


@pytest.fixture(scope="session", autouse=True)
def process_group() -> None:
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))  # the worker's share of the cores
    ensure_process_group("gloo")


@pytest.fixture(scope="session")
def blend(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, float]]:
    root = tmp_path_factory.mktemp("tokens")
    return [(write_token_dataset(root / "a", seed=0), 1.0), (write_token_dataset(root / "b", seed=1), 2.0)]
