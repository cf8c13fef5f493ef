"""Sandbox test fixtures: the isolation modes this machine offers, and tight limits that stop bombs fast."""

from __future__ import annotations

import pytest

from qwen_hpc.sandbox import SandboxLimits, isolation, run_python

TIGHT = SandboxLimits(cpu_s=2, wall_s=5, memory_mb=512, file_size_mb=1, nproc=16, output_bytes=64 << 10)


def available_modes() -> list[str]:
    """"auto" (bwrap where it works), plus "rlimits" when auto picked bwrap, so both paths get exercised."""
    modes = ["auto"]
    if isolation("auto").mode == "bwrap":
        try:
            isolation("rlimits")
            modes.append("rlimits")
        except RuntimeError:
            pass  # e.g. root with an interpreter other uids cannot read: rlimits mode refuses (tested)
    return modes


@pytest.fixture(params=available_modes())
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def still_works(mode: str):
    """After the test, an ordinary program must still run in the same mode (the sandbox recovered)."""
    yield
    after = run_python("print(6 * 7)", isolation_mode=mode)
    assert after.passed and after.stdout == "42\n", after
