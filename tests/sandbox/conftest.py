"""Sandbox test fixtures: every way this machine can run a program (one sandbox per run, a warm pool,
rlimits only), and tight limits that stop bombs fast."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from qwen_hpc.sandbox import Isolation, SandboxLimits, SandboxPool, SandboxResult, isolation, run_python

# wall_s is generous so that a busy CI machine never turns an expected verdict into a wall-time timeout;
# tests of the wall limit itself lower it
TIGHT = SandboxLimits(cpu_s=2, wall_s=60, memory_mb=512, file_size_mb=1, nproc=16, output_bytes=64 << 10)


@dataclass
class Sandbox:
    """Runs a program one particular way; `iso` is the isolation it gets."""

    name: str
    iso: Isolation
    pool: SandboxPool | None = None

    def __call__(self, code: str, **kwargs: Any) -> SandboxResult:
        if self.pool is not None:
            return self.pool.run(code, **kwargs)
        return run_python(code, isolation_mode="rlimits" if self.name == "rlimits" else "auto", **kwargs)


def available() -> list[str]:
    """"single" (bwrap where it works, else rlimits), "pool" with bwrap + own uid, and "rlimits" too when
    bwrap is the default and rlimits mode is allowed here (root needs an interpreter other uids can read)."""
    names = ["single"]
    try:
        auto = isolation("auto")
    except RuntimeError:
        return names  # `_sandbox_available` skips with the reason
    if auto.mode == "bwrap":
        if auto.own_uid:
            names.append("pool")
        try:
            isolation("rlimits")
            names.append("rlimits")
        except RuntimeError:
            pass  # refusing is tested in test_containment
    return names


@pytest.fixture(autouse=True)
def _sandbox_available(request: pytest.FixtureRequest) -> None:
    """No bwrap and no safe rlimits mode (root with an interpreter other uids cannot read): skip, saying so."""
    if request.node.name.startswith("test_rlimits_mode_refuses"):
        return
    try:
        auto = isolation("auto")
    except RuntimeError as error:
        if os.environ.get("QWEN_HPC_REQUIRE_BWRAP"):
            pytest.fail(f"QWEN_HPC_REQUIRE_BWRAP is set but: {error}")
        pytest.skip(f"no safe sandbox on this machine: {error}")
    if os.environ.get("QWEN_HPC_REQUIRE_BWRAP") and auto.mode != "bwrap":
        pytest.fail(f"QWEN_HPC_REQUIRE_BWRAP is set but the sandbox runs in {auto.mode} mode: {auto.reason}")


@pytest.fixture(scope="session")
def _pool() -> Iterator[SandboxPool | None]:
    try:
        auto = isolation("auto")
    except RuntimeError:
        auto = None
    if auto is None or auto.mode != "bwrap" or not auto.own_uid:
        yield None
        return
    with SandboxPool(auto, workers=2) as pool:
        yield pool


@pytest.fixture(params=available())
def sandbox(request: pytest.FixtureRequest, _pool: SandboxPool | None) -> Sandbox:
    name = request.param
    iso = isolation("rlimits" if name == "rlimits" else "auto")
    return Sandbox(name, iso, _pool if name == "pool" else None)


@pytest.fixture
def still_works(sandbox: Sandbox) -> Iterator[None]:
    """After the test, an ordinary program must still run the same way (the sandbox recovered)."""
    yield
    after = sandbox("print(6 * 7)")
    assert after.passed and after.stdout == "42\n", after
