"""The embedded SFT task set: deterministic, right answers, a held-out split no training question shares (at
any turn), the arithmetic levels in their shares, and per-level scores."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from qwen_hpc.alignment import embedded


def _equation(reply: str) -> tuple[int, str, int, int]:
    a, op, b, r = re.fullmatch(r"(\d+) ([+-]) (\d+) = (-?\d+)\.", reply).groups()
    return int(a), op, int(b), int(r)


def _questions(task: embedded.ChatTask) -> list[str]:
    return [m["content"] for m in task.messages if m["role"] == "user"]


def test_arithmetic_is_right_at_every_level_and_split_by_question() -> None:
    train = embedded.generate(0, 600, held_out=False, weights=(1.0, 0.0, 0.0))
    heldout = embedded.generate(0, 200, held_out=True, weights=(1.0, 0.0, 0.0))
    assert [t.answer for t in train] == [t.answer for t in embedded.generate(0, 600, held_out=False,
                                                                            weights=(1.0, 0.0, 0.0))]
    for task in train + heldout:
        turns = [(q["content"], r["content"]) for q, r in zip(task.messages[::2], task.messages[1::2], strict=True)]
        assert 1 <= len(turns) <= embedded.MAX_QUESTIONS and task.answer == turns[-1][1]
        for question, reply in turns:
            a, op, b, r = _equation(reply)
            assert r == (a + b if op == "+" else a - b) and r >= 0 and question == f"What is {a} {op} {b}?"
    assert Counter(len(t.messages) // 2 for t in train).keys() == set(range(1, embedded.MAX_QUESTIONS + 1))
    # no question of a held-out conversation is asked in a training one, at any turn
    assert not {q for t in train for q in _questions(t)} & {q for t in heldout for q in _questions(t)}
    levels = Counter(embedded.arithmetic_level(q) for t in train for q in _questions(t))
    shares = {level: levels[level] / levels.total() for level in embedded.LEVELS}
    assert shares == pytest.approx(dict(zip(embedded.LEVELS, embedded.LEVEL_SHARES, strict=True)), abs=0.05)
    assert embedded.arithmetic_level("What is 37 + 48?") == "2_digit"
    assert embedded.arithmetic_level("What is 37 - 5?") == "2_1_digit"
    assert embedded.arithmetic_level("What is 7 + 5?") == "1_digit"
    assert embedded.arithmetic_level("What does `x` do?") is None


def test_follow_ups_use_the_previous_result() -> None:
    for task in embedded.generate(1, 50, held_out=False, weights=(0.0, 1.0, 0.0)):
        first = _equation(task.messages[1]["content"])
        a, op, b, r = _equation(task.answer)
        assert a == first[3] and 1 <= b <= 9 and r == (a + b if op == "+" else a - b) and r >= 0


def test_scores_per_kind_and_per_level() -> None:
    tasks = [embedded.ChatTask("arithmetic", ({"role": "user", "content": q}, {"role": "assistant", "content": a}),
                               a, True)
             for q, a in (("What is 7 + 5?", "7 + 5 = 12."), ("What is 37 + 5?", "37 + 5 = 42."),
                          ("What is 37 + 48?", "37 + 48 = 85."), ("What is 3 - 2?", "3 - 2 = 1."))]
    scores = embedded.score_replies(tasks, ["7 + 5 = 12.", "37 + 5 = 41.", "37 + 48 = 85", "3 - 2 = 11."],
                                    [True, True, False, True])
    assert scores["arithmetic_accuracy"] == 0.5 and scores["arithmetic_count"] == 4
    assert scores["arithmetic/1_digit_accuracy"] == 0.5 and scores["arithmetic/1_digit_count"] == 2
    assert scores["arithmetic/2_1_digit_accuracy"] == 0.0 and scores["arithmetic/2_digit_accuracy"] == 1.0
    assert scores["im_end_rate"] == 0.75
