"""The authored tool-use set: its size and shape, and oracle/never-call/always-call scores."""

from __future__ import annotations

from qwen_hpc.agents.evalset import CANDIDATES, load_tool_cases
from qwen_hpc.agents.evaluate import evaluate_tool_use
from qwen_hpc.tokenizer.encoding import QwenTokenizer

TOK = QwenTokenizer({bytes([i]): i for i in range(256)}, {"<|endoftext|>": 256, "<|im_start|>": 257,
                                                          "<|im_end|>": 258})


def _score(reply):
    tools, cases = load_tool_cases()
    by_prompt = {c.prompt: c for c in cases}

    def chat(batch):
        return [reply(by_prompt[messages[-1]["content"]]) for messages in batch]

    return evaluate_tool_use(chat, cases, encode=TOK.encode, token_bytes=lambda t: TOK.decode_bytes([t]))


def test_the_set_has_100_positive_cases_over_10_tools_and_negatives() -> None:
    tools, cases = load_tool_cases()
    positives = [c for c in cases if c.positive]
    assert len(tools) >= 10 and len(positives) >= 100 and len(cases) - len(positives) >= 20
    assert {c.tool for c in positives} == {t.name_for_model for t in tools}
    for case in cases:
        assert case.prompt.endswith(f"Question: {case.query}")
        assert case.prompt.count(": Call this tool to interact with the ") == CANDIDATES
        if case.positive:
            assert f"{case.tool}: Call this tool" in case.prompt
    assert load_tool_cases()[1] == cases  # deterministic


def test_oracle_never_and_always_call() -> None:
    oracle, records = _score(lambda c: c.response if c.positive else "Thought: 不需要工具。\nFinal Answer: 好的")
    assert (oracle.tool_selection, oracle.tool_input_rouge_l, oracle.false_positive) == (100.0, 1.0, 0.0)
    assert all(r["correct_tool"] for r in records if r["positive"])
    never, _ = _score(lambda c: "Final Answer: 我不知道")
    assert (never.tool_selection, never.tool_input_rouge_l, never.false_positive) == (0.0, 0.0, 0.0)
    always, _ = _score(lambda c: 'Thought: 查一下\nAction: web_search\nAction Input: {"query": "x"}\nObservation:')
    assert always.false_positive == 100.0
    assert 5.0 < always.tool_selection < 15.0  # web_search is 9 of the 100 positives
