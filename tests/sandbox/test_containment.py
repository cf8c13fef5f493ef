"""Hostile programs are stopped, reported with a reason, and leave the sandbox working for the next run.

Each test runs under every isolation mode this machine offers (`sandbox` fixture: one sandbox per run, a warm pool, rlimits only) and, via `still_works`,
runs an ordinary program afterwards.
"""

from __future__ import annotations

import os
import signal
import socket
import tempfile
from dataclasses import replace
from pathlib import Path

import pytest

from qwen_hpc.sandbox import Status
from qwen_hpc.sandbox.slots import leftover_processes
from tests.sandbox.conftest import TIGHT, Sandbox

pytestmark = pytest.mark.usefixtures("still_works")


def test_fork_bomb(sandbox: Sandbox) -> None:
    iso = sandbox.iso
    if os.geteuid() == 0 and not iso.own_uid:
        pytest.skip(f"no own uid in {iso.mode} mode here ({iso.reason}): root ignores RLIMIT_NPROC")
    code = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    result = sandbox(code, limits=replace(TIGHT, wall_s=5))
    assert result.status is Status.TIMEOUT, result
    assert "time limit" in result.reason
    assert not leftover_processes()  # nothing of the bomb survived the run

    plain = sandbox("import os\nwhile True:\n    os.fork()\n", limits=replace(TIGHT, wall_s=5))
    assert plain.status in (Status.FAILED, Status.TIMEOUT), plain
    assert plain.reason


@pytest.mark.parametrize("code", [
    "x = bytearray(16 << 30)",
    "hog = []\nwhile True:\n    hog.append(bytearray(32 << 20))",
])
def test_memory_bomb(sandbox: Sandbox, code: str) -> None:
    result = sandbox(code, limits=TIGHT)
    assert result.status is Status.MEMORY, result
    assert "MemoryError" in result.reason and "512 MiB" in result.reason


def test_infinite_loop_hits_cpu_limit(sandbox: Sandbox) -> None:
    limits = replace(TIGHT, cpu_s=1)  # the CPU limit must fire first, even on a busy machine
    result = sandbox("while True:\n    pass\n", limits=limits)
    assert result.status is Status.TIMEOUT and "CPU time limit 1s" in result.reason, result


def test_sleeping_forever_hits_wall_limit(sandbox: Sandbox) -> None:
    result = sandbox("import time\ntime.sleep(3600)", limits=replace(TIGHT, wall_s=3))
    assert result.status is Status.TIMEOUT and "wall time limit 3s" in result.reason, result


def test_writing_outside_the_work_dir(sandbox: Sandbox, tmp_path: Path) -> None:
    tmp_path.chmod(0o777)  # even a directory anyone may write to stays out of reach
    targets = [tmp_path / "escaped.txt", Path.cwd() / "escaped-from-sandbox.txt"]
    if sandbox.iso.readonly_root:  # rlimits mode has no mount namespace: /tmp itself stays world-writable
        targets.append(Path(tempfile.gettempdir()) / f"escaped-from-sandbox-{os.getpid()}.txt")
    code = "\n".join([
        "import os",
        "open('inside.txt', 'w').write('ok')",
        "for target in " + repr([str(t) for t in targets]) + ":",
        "    try:",
        "        open(target, 'w').write('escaped')",
        "        print('WROTE', target)",
        "    except OSError as error:",
        "        print('refused', type(error).__name__)",
        "open('/etc/sandbox-escape', 'w')",
    ])
    result = sandbox(code, limits=TIGHT)
    assert not any(t.exists() for t in targets)
    assert "WROTE" not in result.stdout and result.stdout.count("refused") == len(targets), result
    assert result.status is Status.FAILED and "/etc/sandbox-escape" in result.reason, result


def test_network_is_unreachable(sandbox: Sandbox) -> None:
    iso = sandbox.iso
    if not iso.network_isolated:
        pytest.skip(f"no network isolation in {iso.mode} mode here: {iso.reason}")
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    code = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=3).sendall(b'leak')\n"
    result = sandbox(code, limits=TIGHT)
    server.setblocking(False)  # a connection would sit completed in the backlog by now
    with pytest.raises(BlockingIOError):
        server.accept()
    server.close()
    assert result.status is Status.FAILED and result.exception in ("ConnectionRefusedError", "OSError"), result

    dns = sandbox("import socket\nsocket.create_connection(('pypi.org', 443), timeout=3)", limits=TIGHT)
    assert dns.status is Status.FAILED and dns.exception in ("gaierror", "OSError", "TimeoutError"), dns


def test_parent_environment_secret_is_not_visible(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "qwen-hpc-sandbox-secret-5f3a9c"
    monkeypatch.setenv("QWEN_HPC_TEST_SECRET", secret)
    code = "\n".join([
        "import os",
        "print(dict(os.environ))",
        f"for pid in ({os.getpid()}, os.getppid(), 1):",
        "    try:",
        "        print(open(f'/proc/{pid}/environ', 'rb').read())",
        "    except OSError as error:",
        "        print('refused', pid, type(error).__name__)",
    ])
    result = sandbox(code, limits=TIGHT)
    assert result.passed, result
    assert secret not in result.stdout + result.stderr
    assert "QWEN_HPC_TEST_SECRET" not in result.stdout


def test_killing_the_parent(sandbox: Sandbox) -> None:
    iso = sandbox.iso
    parent = os.getpid()
    code = "\n".join([
        "import os, signal",
        f"for how, pid in (('parent', {parent}), ('ppid', os.getppid()), ('all', -1)):",
        "    try:",
        "        assert os.getuid() != 0 or os.getpid() < 10, 'not contained: refuse to kill(-1)'",
        "        os.kill(pid, signal.SIGKILL)",
        "        print('sent', how)",
        "    except OSError as error:",
        "        print('refused', how, type(error).__name__)",
        "print('done')",
    ])
    if not (iso.mode == "bwrap" or iso.own_uid):
        pytest.skip("without namespaces or an own uid, kill(-1) would reach the test runner itself")
    result = sandbox(code, limits=TIGHT)
    os.kill(parent, 0)  # we are alive
    assert "refused parent" in result.stdout, result
    assert result.status in (Status.PASSED, Status.KILLED), result


def test_one_gigabyte_of_stdout_is_cut_off(sandbox: Sandbox) -> None:
    code = "import sys\nchunk = b'x' * (1 << 20)\nfor _ in range(1024):\n    sys.stdout.buffer.write(chunk)\n"
    result = sandbox(code, limits=TIGHT)
    assert result.status is Status.OUTPUT_LIMIT, result
    assert "stdout exceeded 65536 bytes" in result.reason
    assert result.stdout_truncated and len(result.stdout) == TIGHT.output_bytes  # stopped for output, not time


def test_signals_are_reported(sandbox: Sandbox) -> None:
    result = sandbox("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)", limits=TIGHT)
    assert result.status is Status.KILLED and "SIGSEGV" in result.reason, result
    assert signal.SIGSEGV.name in result.reason



def test_daemons_left_behind_are_killed(sandbox: Sandbox) -> None:
    code = "\n".join([
        "import os, sys, time",
        "if os.fork() == 0:",
        "    os.setsid()",
        "    if os.fork() == 0:",
        "        time.sleep(3600)",
        "    os._exit(0)",
        "print('parent done')",
    ])
    result = sandbox(code, limits=TIGHT)
    assert result.passed and result.stdout == "parent done\n", result
    if sandbox.iso.own_uid:
        assert not leftover_processes()
