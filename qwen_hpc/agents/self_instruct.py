"""Self-instructed ReAct data (Qwen §3.4, spec §9.1): propose queries and ReAct traces over the registered
tools, keep those that pass rule filters, and write them as SFT conversations that mix into SFT.

A *proposer* yields (query, trace) pairs: `ModelProposer` asks a chat model, with a few accepted examples in
context, for a new query and then lets it answer through the ReAct loop with the real tools;
`TemplateProposer` fills query templates and writes the trace itself (the seed set, and what keeps the loop
productive on a toy model that cannot yet write traces). Every trace, whoever wrote it, is re-checked by
`check_trace`: it parses, each tool exists, each argument set fits the schema, each call executes and gives
the observation the trace shows, and a final answer is present. Kept + rejected-by-reason = proposed.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import json5

from qwen_hpc.agents.loop import Completer, call_tool, run_react
from qwen_hpc.agents.react import build_react_prompt, final_answer
from qwen_hpc.agents.tools import ToolError, ToolRegistry
from qwen_hpc.utils.io import write_text

_STEP = re.compile(
    r"Action: (?P<tool>.*?)\nAction Input: (?P<args>.*?)\nObservation: (?P<obs>.*?)\nThought:", re.S)


@dataclass(frozen=True)
class Sample:
    query: str
    trace: str  # the assistant turn: Thought/Action/Action Input/Observation …/Final Answer


def check_trace(tools: ToolRegistry, trace: str) -> str | None:
    """None when the trace passes every rule, else the first rule it breaks (the drop reason)."""
    steps = list(_STEP.finditer(trace))
    if "\nAction:" in trace and not steps:
        return "unparsable"
    for step in steps:
        name = step["tool"].strip()
        if name not in tools:
            return "unknown_tool"
        try:
            args = json5.loads(step["args"])
            tools[name].validate(args)
        except (ValueError, ToolError):
            return "invalid_arguments"
        observation, ok = call_tool(tools, name, step["args"])
        if not ok:
            return "execution_failed"
        if observation.strip() != step["obs"].strip():
            return "observation_mismatch"
    if final_answer(trace) in (None, ""):
        return "no_final_answer"
    return None


class TemplateProposer:
    """Arithmetic questions answered through the calculator, with the trace written from the real result."""

    TEMPLATES = (
        ("What is {a} {op} {b}?", "{a} {op} {b}"),
        ("计算 {a} {op} {b} 的结果。", "{a} {op} {b}"),
        ("If I have {a} items and {verb} {b}, how many do I get?", "{a} {op} {b}"),
    )
    OPS = (("+", "add"), ("-", "take away"), ("*", "multiply by"))

    def __init__(self, tools: ToolRegistry, seed: int = 0) -> None:
        if "calculator" not in tools:
            raise ValueError("the template proposer writes calculator traces: register the calculator")
        self.tools, self.rng = tools, random.Random(seed)

    def __iter__(self) -> Iterator[Sample]:
        while True:
            query_t, expr_t = self.rng.choice(self.TEMPLATES)
            op, verb = self.rng.choice(self.OPS)
            a, b = self.rng.randint(2, 999), self.rng.randint(2, 999)
            query, expr = query_t.format(a=a, b=b, op=op, verb=verb), expr_t.format(a=a, b=b, op=op)
            args = json.dumps({"expression": expr}, ensure_ascii=False)
            result, _ = call_tool(self.tools, "calculator", args)
            trace = (f"Thought: I should compute {expr} with the calculator.\nAction: calculator\n"
                     f"Action Input: {args}\nObservation: {result}\nThought: I now know the final answer\n"
                     f"Final Answer: {result}")
            yield Sample(query, trace)


class ModelProposer:
    """A chat model proposes a new query from accepted examples, then answers it through the ReAct loop."""

    def __init__(self, complete: Completer, tools: ToolRegistry, examples: Sequence[Sample], *,
                 seed: int = 0, shots: int = 3, max_steps: int = 4) -> None:
        self.complete, self.tools, self.examples = complete, tools, list(examples)
        self.rng, self.shots, self.max_steps = random.Random(seed), shots, max_steps

    def __iter__(self) -> Iterator[Sample]:
        while True:
            shots = self.rng.sample(self.examples, min(self.shots, len(self.examples)))
            listing = "\n".join(f"- {s.query}" for s in shots)
            ask = (f"Here are requests users made to an assistant with the tools {', '.join(self.tools.names())}:\n"
                   f"{listing}\nWrite one new request of the same kind. Reply with the request only.")
            query = self.complete([{"role": "user", "content": ask}], "", ("\n",)).strip()
            run = run_react(self.complete, self.tools, query, max_steps=self.max_steps)
            yield Sample(query, run.text)


@dataclass
class SelfInstructStats:
    proposed: int = 0
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict:
        assert self.kept + sum(self.dropped.values()) == self.proposed
        return {"proposed": self.proposed, "kept": self.kept, "dropped": dict(self.dropped)}


def collect(proposer: Iterator[Sample] | TemplateProposer | ModelProposer, tools: ToolRegistry, *,
            want: int, max_proposals: int) -> tuple[list[Sample], SelfInstructStats]:
    stats, kept, seen = SelfInstructStats(), [], set()
    for sample in proposer:
        if stats.proposed >= max_proposals or len(kept) >= want:
            break
        stats.proposed += 1
        reason = "empty_query" if not sample.query.strip() else None
        reason = reason or ("duplicate" if sample.query in seen else None) or check_trace(tools, sample.trace)
        if reason:
            stats.dropped[reason] += 1
            continue
        seen.add(sample.query)
        kept.append(sample)
        stats.kept += 1
    return kept, stats


def to_sft_record(sample: Sample, tools: ToolRegistry) -> dict:
    """The SFT `messages` format: the ReAct prompt as the user turn, the whole trace as the reply."""
    return {"messages": [{"role": "user", "content": build_react_prompt(sample.query, tools)},
                         {"role": "assistant", "content": sample.trace}]}


def write_sft_jsonl(samples: Sequence[Sample], tools: ToolRegistry, path: str | Path) -> Path:
    write_text(path, "".join(json.dumps(to_sft_record(s, tools), ensure_ascii=False) + "\n" for s in samples))
    return Path(path)
