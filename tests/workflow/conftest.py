"""The finished `tiny` DAG, built once per session by `snakemake --cores 2` and shared by the tests that
read it (test_dag_local.py) or plan against it without changing it (test_rerun_triggers.py)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.workflow.helpers import describe, snakemake, tiny_config


@pytest.fixture(scope="session")
def tiny_dag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("dag")
    start = time.perf_counter()
    proc = snakemake(workdir, "--cores", "2", *tiny_config())
    wall = time.perf_counter() - start
    assert proc.returncode == 0, describe(proc)
    (workdir / "wall_s.json").write_text(json.dumps({"tiny_dag_wall_s": round(wall, 1)}))
    print(f"tiny DAG wall time: {wall:.1f} s")
    return workdir
