"""`evaluate.sandbox` in Hydra: typed, validated with the key named, and what the code tasks run with."""

from __future__ import annotations

import pytest

from qwen_hpc.config.compose import ConfigError, load
from qwen_hpc.evaluation.code_exec import check_programs
from qwen_hpc.evaluation.tasks import TaskSettings, build_task
from qwen_hpc.sandbox import SandboxConfig, SandboxLimits, Status


def test_evaluate_sandbox_block_reaches_the_code_tasks() -> None:
    _, typed = load(["evaluate.sandbox.wall_s=3", "evaluate.sandbox.cpu_s=2", "evaluate.sandbox.workers=2"])
    sandbox = typed.evaluate.sandbox
    assert isinstance(sandbox, SandboxConfig)
    assert sandbox.limits == SandboxLimits(cpu_s=2, wall_s=3)
    task = build_task("humaneval", TaskSettings(sandbox=sandbox))
    assert task.sandbox is sandbox and task.isolation_mode == "auto"

    # the limits are the program's, unchanged (no timeout override): a sleeper stops at 3 s of wall time
    result, = check_programs(["import time\ntime.sleep(60)"], None, limits=sandbox.limits, workers=1)
    assert result.status is Status.TIMEOUT and "wall time limit 3s" in result.reason


def test_bad_sandbox_values_name_the_key() -> None:
    with pytest.raises(ConfigError, match="sandbox.isolation"):
        load(["evaluate.sandbox.isolation=docker"])
    with pytest.raises(ConfigError, match="memory_mb"):
        load(["evaluate.sandbox.memory_mb=0"])
