"""Sandboxed execution of model-written code (HumanEval/MBPP checks, later the code interpreter).

Each run is a separate process with CPU-time, wall-time, address-space, file-size and process-count
limits, a fresh private directory, a scrubbed environment, no network and no write access outside its
directory; bubblewrap namespaces when they work here, rlimits always. `isolation()` says what is active.
`run_python` is one sandbox per call; `run_many` / `SandboxPool` keep warm sandboxes and fork per run.
"""

from qwen_hpc.sandbox.config import SandboxConfig
from qwen_hpc.sandbox.isolation import Isolation, isolation
from qwen_hpc.sandbox.limits import SandboxLimits
from qwen_hpc.sandbox.pool import SandboxPool
from qwen_hpc.sandbox.process import SandboxProcess, spawn_python
from qwen_hpc.sandbox.result import SandboxResult, Status
from qwen_hpc.sandbox.runner import run_many, run_python

__all__ = ["Isolation", "SandboxConfig", "SandboxLimits", "SandboxPool", "SandboxProcess", "SandboxResult",
           "Status", "isolation", "run_many", "run_python", "spawn_python"]
