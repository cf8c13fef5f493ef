"""The ReAct prompt and parser exactly as Qwen published them (spec §9.2).

`build_react_prompt` fills `react_prompt.md`'s `REACT_PROMPT` (no trailing newline) with one `TOOL_DESC`
line per tool, joined by a blank line; the filled prompt is the *user* turn of a ChatML conversation with
the default system prompt. `parse_latest_plugin_call` is `react_demo.py`'s rule: the last `Action` /
`Action Input` pair wins, and a stop word the generator swallowed is put back before cutting.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from qwen_hpc.agents.tools import CODE_ARGS, JSON_ARGS, Tool

TOOL_DESC = (
    "{name_for_model}: Call this tool to interact with the {name_for_human} API. What is the "
    "{name_for_human} API useful for? {description_for_model} Parameters: {parameters}"
)

REACT_PROMPT = """Answer the following questions as best you can. You have access to the following tools:

{tool_descs}

Use the following format:

Question: the input question you must answer
Thought: you should always think about what to do
Action: the action to take, should be one of [{tool_names}]
Action Input: the input to the action
Observation: the result of the action
... (this Thought/Action/Action Input/Observation can be repeated zero or more times)
Thought: I now know the final answer
Final Answer: the final answer to the original input question

Begin!

Question: {query}"""

# Generation pauses where the tool's result belongs (spec §9.2: both spellings are stop words).
STOP_WORDS = ("Observation:", "Observation:\n")
FINAL_ANSWER = "Final Answer:"


def tool_description(tool: Tool) -> str:
    """One TOOL_DESC line; the suffix follows the tool's `args_format` (JSON object or fenced code)."""
    line = TOOL_DESC.format(
        name_for_model=tool.name_for_model,
        name_for_human=tool.name_for_human,
        description_for_model=tool.description_for_model,
        parameters=json.dumps(list(tool.parameters), ensure_ascii=False),
    )
    return line + (CODE_ARGS if tool.args_format == "code" else JSON_ARGS)


def build_react_prompt(query: str, tools: Iterable[Tool], *, names_separator: str = ",") -> str:
    """react_prompt.md's prompt. `names_separator=", "` gives react_demo.py's / Qwen-Agent's spelling."""
    tools = list(tools)
    return REACT_PROMPT.format(
        tool_descs="\n\n".join(tool_description(t) for t in tools),
        tool_names=names_separator.join(t.name_for_model for t in tools),
        query=query,
    )


@dataclass(frozen=True)
class PluginCall:
    tool: str
    arguments: str  # the raw Action Input text; json5 turns it into arguments
    text: str  # the generated text up to (not including) "\nObservation:"


def parse_latest_plugin_call(text: str) -> PluginCall | None:
    """react_demo.py's `parse_latest_plugin_call`: None when the text holds no Action/Action Input pair."""
    i, j, k = text.rfind("\nAction:"), text.rfind("\nAction Input:"), text.rfind("\nObservation:")
    if not 0 <= i < j:
        return None
    if k < j:  # the generator stopped on (and dropped) the stop word: put it back
        text = text.rstrip() + "\nObservation:"
        k = text.rfind("\nObservation:")
    return PluginCall(
        tool=text[i + len("\nAction:") : j].strip(),
        arguments=text[j + len("\nAction Input:") : k].strip(),
        text=text[:k],
    )


def final_answer(text: str) -> str | None:
    """The text after the last `Final Answer:`, or None."""
    at = text.rfind(FINAL_ANSWER)
    return None if at < 0 else text[at + len(FINAL_ANSWER) :].strip()


def observation_suffix(result: str) -> str:
    """What is appended after a tool call before generation continues in the same assistant turn."""
    return f"\nObservation: {result}\nThought:"
