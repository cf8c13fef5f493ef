"""Run one benchmark over its samples in batches, resumable at the next unfinished batch.

The samples are put in a fixed order (longest prompt first, so a batch pads little) and cut into batches;
each finished batch is appended to `<task>.batches.jsonl` as one line (one write, flushed and fsynced), so
a preempted evaluation restarts at the first batch without a line — a torn last line is dropped. When every
batch is done the records go, in sample order, into `<task>.json` with the averages.

The model is behind `query(samples) -> outputs`: the stage binds it to a loaded model; the tests bind it to
oracle and constant answers.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qwen_hpc.evaluation.suite import Sample, Task
from qwen_hpc.utils.io import write_json

Query = Callable[[Sequence[Sample]], Sequence[str]]


@dataclass
class TaskRun:
    task: str
    complete: bool
    batches_done: int
    batches_total: int
    metrics: dict[str, float]
    records: list[dict[str, Any]]


def batch_plan(samples: Sequence[Sample], batch_size: int) -> list[list[int]]:
    """Sample indices per batch: longest prompts first (equal lengths keep their order). Samples that name a
    shared prompt prefix (`extra["prefix_group"]`: a subject's few-shot exemplars) are batched only with
    their group, so the prefix can be computed once per batch."""
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be >= 1")
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(samples):
        groups.setdefault(str(s.extra.get("prefix_group", "")), []).append(i)
    plan = []
    for members in groups.values():
        order = sorted(members, key=lambda i: (-len(samples[i].prompt_ids), i))
        plan += [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    return sorted(plan, key=lambda b: (-len(samples[b[0]].prompt_ids), b[0]))


def read_batches(path: Path, *, repair: bool = True) -> dict[int, dict[str, Any]]:
    """Finished batches of an earlier run; a torn last line (the job died mid-write) is ignored and, with
    `repair` (only the log's own writer may), cut off so the next append starts a fresh line."""
    if not path.is_file():
        return {}
    raw = path.read_bytes()
    complete = raw[: raw.rfind(b"\n") + 1]
    if repair and len(complete) != len(raw):
        with open(path, "r+b") as fh:
            fh.truncate(len(complete))
    done = {}
    for line in complete.decode("utf-8").splitlines():
        if line.strip():
            entry = json.loads(line)
            done[int(entry["batch"])] = entry
    return done


def _read_all(out_dir: Path, task: str, own: Path | None = None) -> dict[int, dict[str, Any]]:
    done: dict[int, dict[str, Any]] = {}
    for path in sorted(out_dir.glob(f"{task}.batches*.jsonl")):
        done.update(read_batches(path, repair=path == own))
    return done


def append_batch(path: Path, entry: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = (json.dumps(entry, ensure_ascii=False, sort_keys=True, default=str) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def run_task(
    task: Task,
    samples: Sequence[Sample],
    query: Query,
    out_dir: Path,
    *,
    batch_size: int,
    should_stop: Callable[[], bool] = lambda: False,
    on_batch: Callable[[int, int], None] | None = None,
    rank: int = 0,
    world_size: int = 1,
    sync: Callable[[], None] | None = None,
    writer: bool = True,
) -> TaskRun:
    """Evaluate `samples` (resuming from `out_dir/<task>.batches*.jsonl`); write `<task>.json` when done.

    With `world_size` > 1 every rank calls it: rank r runs batches b ≡ r (mod world size) into its own log,
    `sync()` (a barrier) waits for all, and rank 0 gathers the logs and writes `<task>.json`. `rank` and
    `world_size` are data-parallel: under tensor parallelism the ranks of one TP group share a rank, run
    the same batches together, and only the one with `writer` set writes the log and `<task>.json`.
    """
    out_dir = Path(out_dir)
    log_path = out_dir / (f"{task.name}.batches.jsonl" if rank == 0 else f"{task.name}.batches.rank{rank}.jsonl")
    plan = batch_plan(samples, batch_size)
    done = _read_all(out_dir, task.name, own=log_path if writer else None)
    for b, members in enumerate(plan):
        if b % world_size != rank:
            continue
        ids = [samples[i].id for i in members]
        if b in done:
            if done[b]["ids"] != ids:
                raise RuntimeError(
                    f"{log_path}: batch {b} holds {done[b]['ids'][:3]}…, this run's batch {b} is {ids[:3]}…: "
                    "the samples changed (evaluate.limit, data or tokenizer); remove the file to start over"
                )
            continue
        if should_stop():
            return TaskRun(task.name, False, len(done), len(plan), {}, [])
        batch = [samples[i] for i in members]
        outputs = list(query(batch))
        judged = task.judge(batch, outputs)
        records = [
            {
                "id": s.id,
                "group": s.group,
                "prompt": s.prompt,
                "output": out,
                "extracted": j.extracted,
                "gold": s.gold,
                "correct": bool(j.correct),
                **({"detail": j.detail} if j.detail else {}),
                **j.fields,
            }
            for s, out, j in zip(batch, outputs, judged, strict=True)
        ]
        done[b] = {"batch": b, "ids": ids, "records": records}
        if writer:
            append_batch(log_path, done[b])
        if on_batch is not None:
            on_batch(len(done), len(plan))
    if world_size > 1:
        if sync is not None:
            sync()
        done = _read_all(out_dir, task.name)
    if len(done) < len(plan) or rank != 0 or not writer:
        return TaskRun(task.name, len(done) == len(plan), len(done), len(plan), {}, [])
    by_id = {r["id"]: r for entry in done.values() for r in entry["records"]}
    records = [by_id[s.id] for s in samples]
    metrics = task.aggregate(records) if records else {"accuracy": 0.0}
    result = TaskRun(task.name, True, len(plan), len(plan), metrics, records)
    write_json(
        out_dir / f"{task.name}.json",
        {"task": task.name, "score": metrics.get("accuracy"), "metrics": metrics, "n": len(records),
         "records": records},
    )
    return result
