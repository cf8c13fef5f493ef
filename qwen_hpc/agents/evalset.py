"""The project's tool-use evaluation set (`evalsets/tool_cases.yaml`), rendered as Qwen's
`evaluate_plugin.py` data: one ready-made ReAct prompt per case and, for positives, the gold ReAct output.

Each case offers up to five candidate tools (spec §9.3): the gold tool plus others drawn with a fixed seed,
so the set is the same on every machine.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from qwen_hpc.agents.react import build_react_prompt
from qwen_hpc.agents.tools import Tool

CANDIDATES = 5
DEFAULT_TOOL_CASES = resources.files("qwen_hpc.agents.evalsets") / "tool_cases.yaml"


@dataclass(frozen=True)
class ToolCase:
    id: str
    query: str
    prompt: str  # the ReAct prompt (the ChatML user turn)
    tool: str | None  # gold tool; None for a case that needs no tool
    response: str | None  # gold ReAct output for positives

    @property
    def positive(self) -> bool:
        return self.tool is not None


def gold_response(tool: Tool, args: dict) -> str:
    return (f"Thought: 我应该使用{tool.name_for_human}。\nAction: {tool.name_for_model}\n"
            f"Action Input: {json.dumps(args, ensure_ascii=False)}\nObservation:")


def load_tool_cases(path: str | Path | None = None, *, seed: int = 0) -> tuple[list[Tool], list[ToolCase]]:
    raw = yaml.safe_load(Path(str(path or DEFAULT_TOOL_CASES)).read_text(encoding="utf-8"))
    tools = [Tool(**{k: v for k, v in t.items() if k != "positive"} | {"parameters": tuple(t["parameters"])})
             for t in raw["tools"]]
    rng = random.Random(seed)
    cases: list[ToolCase] = []
    for tool, spec in zip(tools, raw["tools"], strict=True):
        for n, case in enumerate(spec["positive"]):
            tool.validate(case["args"])  # a gold call must fit its own schema
            others = rng.sample([t for t in tools if t is not tool], CANDIDATES - 1)
            offered = others[:]
            offered.insert(rng.randrange(CANDIDATES), tool)
            cases.append(ToolCase(f"{tool.name_for_model}/{n}", case["query"],
                                  build_react_prompt(case["query"], offered), tool.name_for_model,
                                  gold_response(tool, case["args"])))
    for n, query in enumerate(raw["negative"]):
        offered = rng.sample(tools, CANDIDATES)
        cases.append(ToolCase(f"negative/{n}", query, build_react_prompt(query, offered), None, None))
    return tools, cases
