"""The sandbox runs ordinary programs faithfully: output, exit codes, exceptions, files, stdin, limits."""

from __future__ import annotations

import importlib
import os
import sys

import pytest

from qwen_hpc.sandbox import SandboxConfig, SandboxLimits, SandboxPool, Status, isolation, run_many
from tests.sandbox.conftest import TIGHT, Sandbox


def test_isolation_is_reported(sandbox: Sandbox) -> None:
    iso = sandbox.iso
    assert iso.mode in ("bwrap", "rlimits")
    assert iso.reason
    result = sandbox("print('hi')")
    assert result.isolation == iso.mode
    assert (result.status, result.stdout, result.completed) == (Status.PASSED, "hi\n", True)


def test_exception_exit_code_and_early_exit_are_told_apart(sandbox: Sandbox) -> None:
    failed = sandbox("def f():\n    assert 1 == 2, 'nope'\nf()\n")
    assert failed.status is Status.FAILED and failed.exception == "AssertionError"
    assert failed.reason == "AssertionError: nope"
    assert 'main.py", line 2, in f' in failed.stderr and "<string>" not in failed.stderr

    exit3 = sandbox("import sys\nsys.exit(3)")
    assert (exit3.status, exit3.returncode, exit3.reason) == (Status.FAILED, 3, "exit status 3")

    early = sandbox("import os\nos._exit(0)\nraise SystemExit(1)")
    assert early.status is Status.PASSED and not early.completed


def test_files_stdin_and_imports_from_the_work_dir(sandbox: Sandbox) -> None:
    code = "import sys, helper\nprint(helper.VALUE, open('data/in.txt').read(), sys.stdin.read())"
    result = sandbox(code, files={"helper.py": "VALUE = 7\n", "data/in.txt": b"bytes"}, stdin="typed")
    assert result.passed and result.stdout == "7 bytes typed\n", result
    with pytest.raises(ValueError, match="outside the sandbox"):
        sandbox("pass", files={"../escape.py": "x"})


def test_file_size_limit(sandbox: Sandbox) -> None:
    result = sandbox("open('big', 'wb').write(b'x' * (2 << 20))", limits=TIGHT)
    assert result.status is Status.FAILED and "File too large" in result.reason, result


def test_run_many_keeps_order_in_parallel() -> None:
    programs = [f"import time\ntime.sleep({0.2 if i % 2 else 0})\nprint({i})" for i in range(8)]
    results = run_many(programs, workers=4)
    assert [r.stdout for r in results] == [f"{i}\n" for i in range(8)]


def test_config_validates_and_builds_limits() -> None:
    config = SandboxConfig(cpu_s=3, wall_s=6, workers=2)
    assert config.limits == SandboxLimits(cpu_s=3, wall_s=6)
    with pytest.raises(ValueError, match="memory_mb"):
        SandboxConfig(memory_mb=0)
    with pytest.raises(ValueError, match="sandbox.isolation"):
        SandboxConfig(isolation="docker")
    with pytest.raises(ValueError, match="sandbox.workers"):
        SandboxConfig(workers=0)


def test_site_packages_on_request(sandbox: Sandbox) -> None:
    with_site = sandbox("import numpy\nprint(numpy.arange(3).sum())", site_packages=True)
    assert with_site.passed and with_site.stdout == "3\n", with_site
    without = sandbox("import numpy")
    assert without.status is Status.FAILED and without.exception == "ModuleNotFoundError"


def test_probe_falls_back_when_a_flag_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    iso_module = importlib.import_module("qwen_hpc.sandbox.isolation")  # the package's `isolation` is the function
    if isolation("auto").mode != "bwrap":
        pytest.skip(f"bwrap unavailable here: {isolation('auto').reason}")
    monkeypatch.setattr(iso_module, "OPTIONAL_BWRAP_FLAGS", (*iso_module.OPTIONAL_BWRAP_FLAGS, "--no-such-flag"))
    found, why = iso_module._probe_bwrap(isolation("auto").python)
    assert found is not None and "--no-such-flag" not in found.flags
    assert "without" in why and "--no-such-flag" in why and "after failures" in why

    monkeypatch.setattr(iso_module.shutil, "which", lambda name: None)
    assert iso_module._probe_bwrap(isolation("auto").python) == (None, "bwrap not found on PATH")


def test_an_interpreter_under_tmp_is_bound_back_over_the_sandbox_tmpfs() -> None:
    """A clone and its venv under /tmp (an open folder there): the sandbox's empty /tmp must not hide the
    interpreter, or no sandbox starts and every code test skips with "no safe sandbox"."""
    import shutil
    import subprocess
    import tempfile
    from pathlib import Path

    iso_module = importlib.import_module("qwen_hpc.sandbox.isolation")
    if isolation("auto").mode != "bwrap":
        pytest.skip(f"bwrap unavailable here: {isolation('auto').reason}")
    folder = Path(tempfile.mkdtemp(prefix="qwen-hpc-venv-", dir="/tmp"))
    try:
        folder.chmod(0o755)  # open to other users: no closed ancestor, so nothing else rebinds it
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder / "venv")], check=True)
        python = str(folder / "venv" / "bin" / "python")
        found, why = iso_module._probe_bwrap(python)
        assert found is not None, why
        prefix = iso_module.bwrap_prefix(found)
        bind = prefix.index(str(folder / "venv"))
        assert prefix[bind - 1] == "--ro-bind" and bind > prefix.index("/tmp")  # after the tmpfs over /tmp
    finally:
        shutil.rmtree(folder)


def test_rlimits_mode_refuses_to_run_as_root() -> None:
    """A root program outside namespaces could kill(-1) every process on the machine: never run one."""
    from qwen_hpc.sandbox.isolation import reachable_by_others

    if os.geteuid() != 0 or reachable_by_others(sys.executable):
        pytest.skip("only root with an interpreter other uids cannot reach must be refused")
    with pytest.raises(RuntimeError, match="will not run model-written code as root"):
        isolation("rlimits")


def test_pool_replaces_a_dead_worker() -> None:
    auto = isolation("auto")
    if auto.mode != "bwrap" or not auto.own_uid:
        pytest.skip(f"no pool here: {auto.reason}")
    with SandboxPool(auto, workers=1) as pool:
        assert pool.run("print(1)").stdout == "1\n"
        dead = pool._all[0]
        os.killpg(dead.proc.pid, 9)
        dead.proc.wait()
        result = pool.run("print(2)")
        assert result.passed and result.stdout == "2\n", result
        assert pool._all and pool._all[0] is not dead
