"""The ReAct loop: generate until a stop word, run the tool the text asks for, append its observation, go on.

The model is any `Completer`: given the ChatML messages and the assistant text so far, it continues the
assistant turn until one of the stop strings (spec §9.2 completion mode: the tool's result is appended
inside the same assistant turn). A bad call (unknown tool, arguments that do not parse or do not fit the
schema, a failing tool) becomes an `Observation: Error: …` the model can read and recover from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import json5

from qwen_hpc.agents.react import (
    STOP_WORDS,
    build_react_prompt,
    final_answer,
    observation_suffix,
    parse_latest_plugin_call,
)
from qwen_hpc.agents.tools import ToolError, ToolRegistry


class Completer(Protocol):
    def __call__(self, messages: list[dict[str, str]], assistant_prefix: str, stop: Sequence[str]) -> str: ...


@dataclass
class ToolStep:
    tool: str
    arguments: str
    observation: str
    ok: bool


@dataclass
class AgentRun:
    query: str
    prompt: str
    text: str  # the whole assistant turn: thoughts, actions, observations, final answer
    answer: str | None
    steps: list[ToolStep] = field(default_factory=list)
    finish: str = "final_answer"  # "final_answer" | "no_tool_call" | "step_limit"


def call_tool(tools: ToolRegistry, name: str, arguments: str) -> tuple[str, bool]:
    """(observation, ok) for one Action/Action Input pair."""
    try:
        tool = tools[name]
        args: Any = arguments
        if tool.args_format == "json" or arguments.lstrip().startswith("{"):
            try:
                args = json5.loads(arguments)
            except ValueError as exc:
                raise ToolError(f"Action Input is not valid JSON: {exc}") from None
        return tool(args), True
    except ToolError as exc:
        return f"Error: {exc}", False
    except Exception as exc:  # noqa: BLE001 - a tool's own failure is the model's observation
        return f"Error: {type(exc).__name__}: {exc}", False


def run_react(
    complete: Completer,
    tools: ToolRegistry,
    query: str,
    *,
    max_steps: int = 8,
    system: str = "You are a helpful assistant.",
) -> AgentRun:
    prompt = build_react_prompt(query, tools)
    messages = [{"role": "system", "content": system}, {"role": "user", "content": prompt}]
    run = AgentRun(query=query, prompt=prompt, text="", answer=None)
    for _ in range(max_steps):
        out = complete(messages, run.text, STOP_WORDS)
        run.text += out
        answer = final_answer(out)
        call = parse_latest_plugin_call(run.text) if answer is None else None
        if answer is not None or call is None:
            run.answer = answer if answer is not None else final_answer(run.text)
            run.finish = "final_answer" if run.answer is not None else "no_tool_call"
            return run
        observation, ok = call_tool(tools, call.tool, call.arguments)
        run.steps.append(ToolStep(call.tool, call.arguments, observation, ok))
        run.text = call.text + observation_suffix(observation)
    run.finish = "step_limit"
    return run


class GeneratorCompleter:
    """A `Completer` on the project's KV-cache generator: ChatML ids of the messages, then the assistant
    text so far, continued until a stop string or <|im_end|>."""

    def __init__(self, generator: Any, tokenizer: Any, sampling: Any) -> None:
        from qwen_hpc.alignment.chatml import chat_stop_ids

        self.generator, self.tokenizer = generator, tokenizer
        self.sampling = sampling
        self.stop_ids = chat_stop_ids(tokenizer)

    def __call__(self, messages: list[dict[str, str]], assistant_prefix: str, stop: Sequence[str]) -> str:
        from dataclasses import replace

        from qwen_hpc.alignment.chatml import chatml_ids

        ids = chatml_ids(self.tokenizer, messages) + self.tokenizer.encode(assistant_prefix)
        cfg = replace(self.sampling, stop_strings=tuple(stop), stop_token_ids=self.stop_ids)
        return self.generator.generate_ids([ids], cfg)[0].text
