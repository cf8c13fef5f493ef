"""Self-instructed ReAct data: rule filters with counted reasons, SFT records that the SFT reader takes."""

from __future__ import annotations

import json
from collections.abc import Sequence

from qwen_hpc.agents.self_instruct import (
    ModelProposer,
    Sample,
    TemplateProposer,
    check_trace,
    collect,
    write_sft_jsonl,
)
from qwen_hpc.agents.tools import CALCULATOR, ToolRegistry

TOOLS = ToolRegistry([CALCULATOR])
GOOD = ('Thought: compute\nAction: calculator\nAction Input: {"expression": "2+3"}\nObservation: 5\n'
        "Thought: I now know the final answer\nFinal Answer: 5")


def test_rules_name_the_first_broken_rule() -> None:
    assert check_trace(TOOLS, GOOD) is None
    assert check_trace(TOOLS, GOOD.replace("calculator\nAction Input", "abacus\nAction Input")) == "unknown_tool"
    assert check_trace(TOOLS, GOOD.replace('{"expression": "2+3"}', '{"expr": "2+3"}')) == "invalid_arguments"
    assert check_trace(TOOLS, GOOD.replace('"2+3"', '"2/0"')) == "execution_failed"
    assert check_trace(TOOLS, GOOD.replace("Observation: 5", "Observation: 6")) == "observation_mismatch"
    assert check_trace(TOOLS, GOOD.split("\nFinal Answer")[0]) == "no_final_answer"
    assert check_trace(TOOLS, "Thought: x\nAction: calculator\nFinal Answer: 1") == "unparsable"
    assert check_trace(TOOLS, "Thought: no tool needed\nFinal Answer: hello") is None


def test_template_loop_writes_sft_messages(tmp_path) -> None:
    kept, stats = collect(TemplateProposer(TOOLS, seed=1), TOOLS, want=20, max_proposals=100)
    assert len(kept) == 20 and stats.as_dict()["kept"] == 20
    assert stats.proposed == stats.kept + sum(stats.dropped.values())
    out = write_sft_jsonl(kept, TOOLS, tmp_path / "react.jsonl")
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 20
    first = records[0]["messages"]
    assert [m["role"] for m in first] == ["user", "assistant"]
    assert first[0]["content"].startswith("Answer the following questions as best you can.")
    assert first[0]["content"].endswith(f"Question: {kept[0].query}")
    assert first[1]["content"] == kept[0].trace


class Flaky:
    """A 'model' whose proposals are sometimes broken, as a toy model's are."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self, messages: list[dict[str, str]], prefix: str, stop: Sequence[str]) -> str:
        if "Write one new request" in messages[-1]["content"]:
            self.n += 1
            return ["What is 6 * 7?", "What is 6 * 7?", "What is 1 / 0?", ""][self.n % 4]
        question = messages[-1]["content"].rsplit("Question: ", 1)[1]
        if "Observation:" in prefix:
            observed = prefix.rsplit("Observation: ", 1)[1].split("\n")[0]
            return " I now know the final answer\nFinal Answer: " + observed
        expr = question.removeprefix("What is ").removesuffix("?")
        return f'I will calculate.\nAction: calculator\nAction Input: {{"expression": "{expr}"}}\n'


def test_model_proposals_are_filtered_and_counted() -> None:
    seeds = [Sample("What is 2 + 3?", GOOD)]
    kept, stats = collect(ModelProposer(Flaky(), TOOLS, seeds), TOOLS, want=10, max_proposals=8)
    assert [s.query for s in kept] == ["What is 6 * 7?"]
    assert kept[0].trace.endswith("Final Answer: 42")
    assert stats.proposed == 8 and stats.kept == 1
    assert stats.dropped["duplicate"] >= 2 and stats.dropped["empty_query"] == 2
    # the 1/0 call errors; the trace shows the error as its observation, so re-execution fails
    assert stats.dropped["execution_failed"] == 2
