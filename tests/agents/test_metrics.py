"""The paper's tool-use metrics as evaluate_plugin.py computes them (spec §9.3)."""

from __future__ import annotations

from qwen_hpc.agents.metrics import math_correct, process_res, tool_use_scores


def _encoding():
    # a byte-level BPE of our own: Rouge-L over tokens needs only encode + token bytes
    from qwen_hpc.tokenizer.encoding import QwenTokenizer

    ranks = {bytes([i]): i for i in range(256)}
    return QwenTokenizer(ranks, {"<|endoftext|>": 256, "<|im_start|>": 257, "<|im_end|>": 258})


GOLD = 'Thought: 我需要搜索。\nAction: quark_search\nAction Input: {"search_query": "北京 天气"}\nObservation:'


def test_process_res_uses_first_markers_and_canonical_json() -> None:
    parsed = process_res("Thought: x\nAction: Quark_Search \nAction Input: {search_query: '北京 天气'}\n")
    assert parsed.action == "Quark_Search"
    assert parsed.action_input == '{"search_query": "北京 天气"}'
    assert process_res("no tool here").action_input == ""
    assert process_res("Action: a\nAction Input: {not json\nObservation: x").action_input == ""


def test_oracle_scores_perfect_and_wrong_tools_score_zero() -> None:
    tok = _encoding()
    encode, token_bytes = tok.encode, lambda t: tok.decode_bytes([t])
    oracle = tool_use_scores([(GOLD, GOLD)] * 3, ["Thought: 不需要工具。\nFinal Answer: 你好"] * 2,
                             encode=encode, token_bytes=token_bytes)
    assert (oracle.tool_selection, oracle.tool_input_rouge_l, oracle.false_positive) == (100.0, 1.0, 0.0)
    wrong = GOLD.replace("quark_search", "image_gen").replace("北京 天气", "上海")
    scores = tool_use_scores([(wrong, GOLD), (GOLD, GOLD)], [GOLD, "Final Answer: ok"],
                             encode=encode, token_bytes=token_bytes)
    assert scores.tool_selection == 50.0 and scores.false_positive == 50.0
    assert 0.5 < scores.tool_input_rouge_l < 1.0  # the wrong case shares the key, not the value
    # a case with no "\nAction: " counts against selection even if the words appear
    assert tool_use_scores([("Action: quark_search", GOLD)], [], encode=encode,
                           token_bytes=token_bytes).tool_selection == 0.0


def test_math_correctness_needs_the_number_in_both_places() -> None:
    assert math_correct("392\n", "The answer is 392.", 392)
    assert not math_correct("391\n", "The answer is 392.", 392)
    assert not math_correct("392", "I do not know", 392)
    assert math_correct("1,234.50", "It costs 1234.5 dollars", 1234.5)
