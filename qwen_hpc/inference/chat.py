"""ChatML prompts exactly as Qwen-Chat was trained (report App. A.1.1; spec §7.2).

`<|im_start|>{role}\\n{content}<|im_end|>\\n` per turn, no BOS, the default system turn when none is given,
and `<|im_start|>assistant\\n` to ask for a reply. As in Qwen's `make_context`, the role, the newline and the
content are encoded separately as ordinary text (special-token text inside content stays plain text), and
the markers are the special ids themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

DEFAULT_SYSTEM = "You are a helpful assistant."
IM_START, IM_END = "<|im_start|>", "<|im_end|>"


def _with_system(messages: Sequence[dict[str, str]], system: str) -> list[dict[str, str]]:
    messages = list(messages)
    if not messages or messages[0]["role"] != "system":
        messages.insert(0, {"role": "system", "content": system})
    return messages


def render_chatml(
    messages: Sequence[dict[str, str]], *, add_generation_prompt: bool = True, system: str = DEFAULT_SYSTEM
) -> str:
    """The ChatML text of a conversation (what the exported chat template renders)."""
    text = "".join(f"{IM_START}{m['role']}\n{m['content']}{IM_END}\n" for m in _with_system(messages, system))
    return text + (f"{IM_START}assistant\n" if add_generation_prompt else "")


def chatml_ids(
    tokenizer: Any,
    messages: Sequence[dict[str, str]],
    *,
    add_generation_prompt: bool = True,
    system: str = DEFAULT_SYSTEM,
) -> list[int]:
    """Token ids of `render_chatml(...)`, built turn by turn as Qwen does."""
    newline = tokenizer.encode("\n")
    ids: list[int] = []
    for m in _with_system(messages, system):
        ids += [
            tokenizer.im_start_id,
            *tokenizer.encode(m["role"]),
            *newline,
            *tokenizer.encode(m["content"]),
        ]
        ids += [tokenizer.im_end_id, *newline]
    if add_generation_prompt:
        ids += [tokenizer.im_start_id, *tokenizer.encode("assistant"), *newline]
    return ids


def chat_stop_ids(tokenizer: Any) -> tuple[int, ...]:
    """Generation stops on <|im_end|>, <|im_start|> or <|endoftext|> (spec §7.2)."""
    return (tokenizer.im_end_id, tokenizer.im_start_id, tokenizer.eod_id)
