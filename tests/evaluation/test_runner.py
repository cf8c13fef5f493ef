"""Resume: a preempted evaluation continues at the next unfinished sample batch, never from scratch."""

from __future__ import annotations

import json

import pytest

from qwen_hpc.evaluation.gsm8k import Gsm8k
from qwen_hpc.evaluation.runner import batch_plan, read_batches, run_task
from qwen_hpc.evaluation.suite import Sample


def _samples(n: int) -> list[Sample]:
    return [Sample(str(i), f"q{i}", [1] * (1 + i % 5), str(i % 7)) for i in range(n)]


class Counting:
    """A model stand-in that answers the gold on even ids, counts every sample it was asked."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def __call__(self, batch):
        self.asked += [s.id for s in batch]
        return [f"The answer is {s.gold if int(s.id) % 2 == 0 else 99}" for s in batch]


def test_preempted_run_resumes_at_the_next_unfinished_batch(tmp_path) -> None:
    samples, task = _samples(23), Gsm8k()
    plan = batch_plan(samples, 4)
    assert len(plan) == 6 and sorted(i for b in plan for i in b) == list(range(23))
    first, stops = Counting(), iter([False, False, False, True])
    part = run_task(task, samples, first, tmp_path, batch_size=4, should_stop=lambda: next(stops))
    assert not part.complete and part.batches_done == 3 and len(first.asked) == 12
    assert not (tmp_path / "gsm8k.json").exists()
    second = Counting()
    done = run_task(task, samples, second, tmp_path, batch_size=4)
    assert done.complete and sorted(first.asked + second.asked, key=int) == [s.id for s in samples]
    assert not set(first.asked) & set(second.asked), "a finished batch was evaluated again"
    fresh = run_task(task, samples, Counting(), tmp_path / "fresh", batch_size=4)
    assert done.records == fresh.records and done.metrics == fresh.metrics
    assert done.metrics["accuracy"] == pytest.approx(12 / 23)
    written = json.loads((tmp_path / "gsm8k.json").read_text())
    assert [r["id"] for r in written["records"]] == [s.id for s in samples]
    assert set(written["records"][0]) >= {"prompt", "output", "extracted", "gold", "correct"}


def test_a_torn_last_line_is_dropped_and_that_batch_rerun(tmp_path) -> None:
    samples, task = _samples(8), Gsm8k()
    run_task(task, samples, Counting(), tmp_path, batch_size=4)
    log = tmp_path / "gsm8k.batches.jsonl"
    lines = log.read_bytes().splitlines(keepends=True)
    log.write_bytes(lines[0] + lines[1][: len(lines[1]) // 2])  # the job died while writing batch 1
    assert list(read_batches(log)) == [0] and log.read_bytes() == lines[0]
    again = Counting()
    run_task(task, samples, again, tmp_path, batch_size=4)
    assert len(again.asked) == 4


def test_changed_samples_are_refused(tmp_path) -> None:
    run_task(Gsm8k(), _samples(8), Counting(), tmp_path, batch_size=4, should_stop=iter([False, True]).__next__)
    with pytest.raises(RuntimeError, match="the samples changed"):
        run_task(Gsm8k(), _samples(9)[1:], Counting(), tmp_path, batch_size=4)


def test_a_model_parallel_rank_that_is_not_the_writer_computes_but_writes_nothing(tmp_path) -> None:
    """The ranks of one TP/PP replica run every batch together; only the writer appends logs and the result,
    and a preempted replica resumes from the writer's log on every rank alike."""
    samples, task = _samples(10), Gsm8k()
    follower, stops = Counting(), iter([False, True])
    part = run_task(task, samples, follower, tmp_path, batch_size=4, writer=False, should_stop=lambda: next(stops))
    assert not part.complete and len(follower.asked) == 4 and list(tmp_path.iterdir()) == []
    writer = Counting()
    done = run_task(task, samples, writer, tmp_path, batch_size=4)
    assert done.complete and len(writer.asked) == 10
    again = Counting()  # a follower of the finished replica: every batch is done, nothing recomputed or written
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    late = run_task(task, samples, again, tmp_path, batch_size=4, writer=False)
    assert late.complete and again.asked == [] and late.records == []
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
