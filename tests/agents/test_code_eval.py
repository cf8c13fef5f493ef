"""The code-interpreter benchmark: cases load (math from the data root), oracle code scores 100 %, wrong
code scores 0 %, and executability counts cells."""

from __future__ import annotations

import pytest

from qwen_hpc.agents.code_eval import code_scores, load_code_cases, run_code_case, series_match

ORACLE_CODE = {
    "line_profit": "import pandas as pd\nimport matplotlib.pyplot as plt\ndf = pd.read_csv('sales.csv')\n"
                   "plt.plot(df.month, df.revenue - df.cost)",
    "scatter_math_physics": "import pandas as pd\nimport matplotlib.pyplot as plt\n"
                            "d = pd.read_csv('scores.csv', sep=';')\nplt.scatter(d['math'], d['physics'])",
    "pens_sold": "import pandas as pd\no = pd.read_csv('orders.csv')\nprint(o[o['product'] == 'pen'].units.sum())",
}


def scripted(code: str, answer: str):
    steps = iter([f"Let me run code.\nAction: code_interpreter\nAction Input: ```py\n{code}\n```",
                  f" I now know the final answer\nFinal Answer: {answer}"])
    return lambda messages, prefix, stop: next(steps)


def test_cases_load_with_and_without_the_data_root(data_root) -> None:
    cases, skipped = load_code_cases(data_root)
    by_cat = {c: [x for x in cases if x.category == c] for c in ("math", "vis_easy", "vis_hard", "analysis")}
    assert len(by_cat["math"]) == 80 and not skipped
    assert by_cat["math"][0].answer == 18.0  # GSM8K test #0: Janet's ducks
    assert all(float(c.answer).is_integer() or c.answer is not None for c in by_cat["math"])
    assert len(by_cat["vis_easy"]) + len(by_cat["vis_hard"]) == 8 and len(by_cat["analysis"]) == 6
    offline, skipped = load_code_cases(None)
    assert not [c for c in offline if c.category == "math"] and len(skipped) == 2


def test_series_matching() -> None:
    fig = [{"series": [{"kind": "bar", "y": [13.0, 22.0, 14.0, 14.0]}]}]
    assert series_match(fig, {"kind": "bar", "values": [22, 13, 14, 14], "unordered": True})
    assert not series_match(fig, {"kind": "bar", "values": [22, 13, 14, 14]})
    assert not series_match(fig, {"kind": "line", "values": [13, 22, 14, 14]})


@pytest.mark.slow
def test_oracle_and_wrong_code() -> None:
    cases = {c.id: c for c in load_code_cases(None)[0]}
    results = [run_code_case(scripted(code, "41"), cases[i]) for i, code in ORACLE_CODE.items()]
    assert all(r.correct for r in results), [(r.id, r.text) for r in results if not r.correct]
    wrong = run_code_case(scripted("import matplotlib.pyplot as plt\nplt.plot([1, 2])\nundefined", "no"),
                          cases["line_profit"])
    assert not wrong.correct and (wrong.cells, wrong.cells_ok) == (1, 0)
    scores = code_scores([*results, wrong])
    assert scores["executable_all"] == pytest.approx(100 * 3 / 4)
    assert scores["correct_analysis"] == 100.0 and scores["correct_vis_hard"] == 50.0 and scores["correct_vis_easy"] == 100.0
