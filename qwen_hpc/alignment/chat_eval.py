"""Does the fine-tuned model chat? Greedy replies to held-out conversations of the embedded task set,
scored by `embedded.score_replies`: the share of replies closed with `<|im_end|>` and per-kind accuracy.

The prompt is the conversation up to its last user turn plus `<|im_start|>assistant\\n`; generation stops
on `<|im_end|>`, `<|im_start|>` or `<|endoftext|>` (spec §7.2, §13). Greedy decoding, as Qwen's chat
evaluation scripts do.
"""

from __future__ import annotations

from typing import Any

from qwen_hpc.alignment.chatml import DEFAULT_SYSTEM, chat_stop_ids, chatml_ids
from qwen_hpc.alignment.embedded import ChatTask, score_replies


def heldout_replies(
    generator: Any,
    tokenizer: Any,
    tasks: list[ChatTask],
    *,
    system: str = DEFAULT_SYSTEM,
    max_new_tokens: int = 48,
    batch_size: int = 32,
) -> tuple[list[str], list[bool]]:
    """(reply text, closed with <|im_end|>?) per task, greedy."""
    from qwen_hpc.inference.generate import SamplingConfig

    sampling = SamplingConfig(max_new_tokens=max_new_tokens, stop_token_ids=chat_stop_ids(tokenizer))
    replies: list[str] = []
    closed: list[bool] = []
    for start in range(0, len(tasks), batch_size):
        chunk = tasks[start : start + batch_size]
        prompts = [chatml_ids(tokenizer, list(t.messages[:-1]), system=system) for t in chunk]
        for gen in generator.generate_ids(prompts, sampling):
            replies.append(gen.text)
            closed.append(gen.finish_reason == "stop_token" and gen.token_ids[-1] == tokenizer.im_end_id)
    return replies, closed


def evaluate_heldout(
    model: Any, tokenizer: Any, tasks: list[ChatTask], *, system: str = DEFAULT_SYSTEM, max_new_tokens: int = 48
) -> tuple[dict[str, float], list[dict]]:
    """(scores, one record per task with prompt, expected and actual reply) for a loaded unsharded model."""
    from qwen_hpc.inference.generate import Generator

    generator = Generator(model, tokenizer)
    replies, closed = heldout_replies(generator, tokenizer, tasks, system=system, max_new_tokens=max_new_tokens)
    records = [
        {"kind": t.kind, "question": t.messages[-2]["content"], "expected": t.answer, "reply": r, "closed": c}
        for t, r, c in zip(tasks, replies, closed, strict=True)
    ]
    return score_replies(tasks, replies, closed), records
