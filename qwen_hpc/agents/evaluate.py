"""Score a chat model on the tool-use set the way `evaluate_plugin.py` does (spec §9.3): the ReAct prompt as
the user turn, greedy, no Observation stop word (generation runs to <|im_end|>), then the paper's metrics."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict

from qwen_hpc.agents.evalset import ToolCase
from qwen_hpc.agents.metrics import ToolUseScores, process_res, tool_use_scores

# messages of each case -> the model's reply to each (batched by the caller's generator)
ChatBatch = Callable[[list[list[dict[str, str]]]], list[str]]


def tool_use_records(cases: Sequence[ToolCase], outputs: Sequence[str]) -> list[dict]:
    records = []
    for case, out in zip(cases, outputs, strict=True):
        gen = process_res(out)
        record = {"id": case.id, "query": case.query, "positive": case.positive, "output": out,
                  "action": gen.action, "action_input": gen.action_input, "gold_tool": case.tool,
                  "called_tool": "\nAction: " in out}
        if case.positive and case.response is not None:
            gold = process_res(case.response)
            record["gold_action_input"] = gold.action_input
            record["correct_tool"] = record["called_tool"] and gen.action.lower() == gold.action.lower()
        records.append(record)
    return records


def evaluate_tool_use(
    chat: ChatBatch, cases: Sequence[ToolCase], *, encode: Callable[[str], list[int]],
    token_bytes: Callable[[int], bytes], batch_size: int = 8,
) -> tuple[ToolUseScores, list[dict]]:
    outputs: list[str] = []
    for start in range(0, len(cases), batch_size):
        batch = cases[start : start + batch_size]
        outputs += chat([[{"role": "user", "content": c.prompt}] for c in batch])
    positives = [(out, c.response) for c, out in zip(cases, outputs, strict=True) if c.positive]
    negatives = [out for c, out in zip(cases, outputs, strict=True) if not c.positive]
    scores = tool_use_scores(positives, negatives, encode=encode, token_bytes=token_bytes)
    return scores, tool_use_records(cases, outputs)


def scores_dict(scores: ToolUseScores) -> dict:
    return asdict(scores)
