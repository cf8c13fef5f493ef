"""ReAct prompt, parser and loop (spec §9.2), driven by a scripted model."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from qwen_hpc.agents.loop import run_react
from qwen_hpc.agents.react import build_react_prompt, final_answer, parse_latest_plugin_call
from qwen_hpc.agents.tools import CALCULATOR, Tool, ToolError, ToolRegistry

SEARCH = Tool(
    name_for_model="quark_search",
    name_for_human="夸克搜索",
    description_for_model="夸克搜索是一个通用搜索引擎，可用于访问互联网、查询百科知识、了解时事新闻等。",
    parameters=({"name": "search_query", "description": "搜索关键词或短语", "required": True,
                 "schema": {"type": "string"}},),
    fn=lambda search_query: f"results for {search_query}",
)

# Written out by hand from spec §9.2 (react_prompt.md): TOOL_DESC + " Format the arguments as a JSON object.",
# tools joined by a blank line, names joined by ",", no trailing newline.
GOLDEN = (
    "Answer the following questions as best you can. You have access to the following tools:\n"
    "\n"
    "quark_search: Call this tool to interact with the 夸克搜索 API. What is the 夸克搜索 API useful for? "
    "夸克搜索是一个通用搜索引擎，可用于访问互联网、查询百科知识、了解时事新闻等。 Parameters: "
    '[{"name": "search_query", "description": "搜索关键词或短语", "required": true, "schema": {"type": '
    '"string"}}] Format the arguments as a JSON object.\n'
    "\n"
    "calculator: Call this tool to interact with the Calculator API. What is the Calculator API useful for? "
    "Evaluates an arithmetic expression (+ - * / // % ^, parentheses, sqrt, log, exp, sin, cos, tan, abs, "
    "round, floor, ceil, pi, e) and returns the exact result. Parameters: "
    '[{"name": "expression", "description": "the arithmetic expression to evaluate", "required": true, '
    '"schema": {"type": "string"}}] Format the arguments as a JSON object.\n'
    "\n"
    "Use the following format:\n"
    "\n"
    "Question: the input question you must answer\n"
    "Thought: you should always think about what to do\n"
    "Action: the action to take, should be one of [quark_search,calculator]\n"
    "Action Input: the input to the action\n"
    "Observation: the result of the action\n"
    "... (this Thought/Action/Action Input/Observation can be repeated zero or more times)\n"
    "Thought: I now know the final answer\n"
    "Final Answer: the final answer to the original input question\n"
    "\n"
    "Begin!\n"
    "\n"
    "Question: 现在给我画个五彩斑斓的黑。"
)


def test_prompt_equals_the_published_text() -> None:
    assert build_react_prompt("现在给我画个五彩斑斓的黑。", [SEARCH, CALCULATOR]) == GOLDEN
    qwen_agent = build_react_prompt("q", [SEARCH, CALCULATOR], names_separator=", ")
    assert "should be one of [quark_search, calculator]\n" in qwen_agent


def test_parser_follows_react_demo() -> None:
    text = 'Thought: add\nAction: calculator\nAction Input: {"expression": "2+2"}\n'
    call = parse_latest_plugin_call(text)
    assert call is not None
    assert (call.tool, call.arguments) == ("calculator", '{"expression": "2+2"}')
    assert call.text == 'Thought: add\nAction: calculator\nAction Input: {"expression": "2+2"}'
    # the last pair wins; an Observation already present bounds the input
    two = text + "Observation: 4\nThought: again\nAction: quark_search\nAction Input: {search_query: 'x'}\nObservation:"
    later = parse_latest_plugin_call(two)
    assert later is not None and later.tool == "quark_search" and later.arguments == "{search_query: 'x'}"
    assert parse_latest_plugin_call("Thought: I know\nFinal Answer: 4") is None
    assert final_answer("Thought: ok\nFinal Answer:  4 apples ") == "4 apples"


class ScriptedModel:
    """A 'model' that replays known assistant segments and records what it was asked to continue."""

    def __init__(self, segments: Sequence[str]) -> None:
        self.segments = list(segments)
        self.prefixes: list[str] = []

    def __call__(self, messages: list[dict[str, str]], assistant_prefix: str, stop: Sequence[str]) -> str:
        assert messages[-1]["role"] == "user" and messages[-1]["content"].endswith("Question: What is 17 * 23 + 1?")
        assert "Observation:" in stop
        self.prefixes.append(assistant_prefix)
        return self.segments.pop(0)


def test_loop_calls_tools_recovers_from_bad_calls_and_answers() -> None:
    model = ScriptedModel([
        "Thought: I should search.\nAction: web_search\nAction Input: {\"q\": \"17*23\"}\n",  # unknown tool
        " I must use the calculator.\nAction: calculator\nAction Input: {\"expr\": \"17*23\"}\n",  # bad argument
        " Fix the argument name.\nAction: calculator\nAction Input: {expression: '17 * 23 + 1'}",  # json5 + ok
        " I now know the final answer\nFinal Answer: 392",
    ])
    run = run_react(model, ToolRegistry([SEARCH, CALCULATOR]), "What is 17 * 23 + 1?")
    assert run.finish == "final_answer" and run.answer == "392"
    assert [s.tool for s in run.steps] == ["web_search", "calculator", "calculator"]
    assert [s.ok for s in run.steps] == [False, False, True]
    assert "there is no tool 'web_search'" in run.steps[0].observation
    assert "has no parameter expr" in run.steps[1].observation
    assert run.steps[2].observation == "392"
    # the observation is appended inside the same assistant turn, and generation resumes after "Thought:"
    assert model.prefixes[3].endswith("Action Input: {expression: '17 * 23 + 1'}\nObservation: 392\nThought:")
    assert run.text.endswith("Observation: 392\nThought: I now know the final answer\nFinal Answer: 392")


def test_loop_stops_at_the_step_limit() -> None:
    looping = ScriptedModel(["\nAction: calculator\nAction Input: {\"expression\": \"1\"}"] * 3)
    run = run_react(looping, ToolRegistry([CALCULATOR]), "What is 17 * 23 + 1?", max_steps=3)
    assert run.finish == "step_limit" and run.answer is None and len(run.steps) == 3


@pytest.mark.parametrize(("expr", "value"), [("2^10", "1024"), ("(1+2)*3/2", "4.5"), ("sqrt(16)", "4"),
                                              ("7 // 2 + 7 % 2", "4")])
def test_calculator(expr: str, value: str) -> None:
    assert CALCULATOR({"expression": expr}) == value


@pytest.mark.parametrize("expr", ["__import__('os').system('id')", "1/0", "9**9**9", "open('x')"])
def test_calculator_refuses_what_is_not_arithmetic(expr: str) -> None:
    with pytest.raises(ToolError):
        CALCULATOR({"expression": expr})
