"""ChatML exactly as Qwen-Chat was trained (report App. A.1.1; spec §7.2), and its SFT loss masks (§7.3).

A turn is `<|im_start|>{role}\\n{content}<|im_end|>\\n`; a conversation is its turns back to back, no BOS,
with the default system turn "You are a helpful assistant." when it has none; `<|im_start|>assistant\\n` asks
for a reply. As in Qwen's `make_context`, role, newline and content are encoded separately as ordinary text,
and the markers are the special ids themselves. Contents are encoded with special-token parsing OFF: a user
who types `<|im_end|>` gets the characters, never the marker, so no text can forge a turn boundary.

`encode_conversation` returns the ids together with where each turn's header, content and end lie, so that
`supervised` can derive the loss mask of every masking mode from the same spans:

- `paper` (report §3.1.2): the assistant's reply and its `<|im_end|>` are learned; system and user turns,
  and every turn header, are masked.
- `finetune_py` (the released `finetune.py`, spec §7.3, token for token): in every turn `<|im_start|>`,
  `<|im_end|>` and the trailing newline are learned; role name and the newline after it are masked; the
  content is learned in assistant turns only.
- `all`: every token.

Masks are *unshifted* (position i says whether token i is a target), as finetune.py stores labels; the
training sample shifts them (token i is predicted from tokens < i, so position 0 is never a target).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

DEFAULT_SYSTEM = "You are a helpful assistant."
IM_START, IM_END, ENDOFTEXT = "<|im_start|>", "<|im_end|>", "<|endoftext|>"
ROLES = ("system", "user", "assistant")
MASKINGS = ("paper", "finetune_py", "all")

# The same layout as a Jinja chat template (what `export-hf` writes for `transformers`' apply_chat_template).
CHATML_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if loop.first and message['role'] != 'system' -%}"
    "{{- '<|im_start|>system\\n" + DEFAULT_SYSTEM + "<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)


class ChatTokenizer(Protocol):
    """What ChatML needs from a tokenizer (`QwenTokenizer` has it): plain-text encoding and three ids."""

    im_start_id: int
    im_end_id: int
    eod_id: int

    def encode(self, text: str) -> list[int]: ...


@dataclass(frozen=True)
class Message:
    role: str
    content: str

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"role {self.role!r} must be one of {'|'.join(ROLES)}")
        if not isinstance(self.content, str):
            raise ValueError(f"content of a {self.role} turn must be a string, got {type(self.content).__name__}")


def as_messages(messages: Sequence[Message | Mapping[str, Any]]) -> list[Message]:
    """`Message`s from `Message`s or `{"role", "content"}` mappings."""
    return [m if isinstance(m, Message) else Message(str(m["role"]), m["content"]) for m in messages]


def with_system(messages: Sequence[Message | Mapping[str, Any]], system: str = DEFAULT_SYSTEM) -> list[Message]:
    """The conversation with `system` as its first turn unless it already starts with a system turn."""
    out = as_messages(messages)
    if not out or out[0].role != "system":
        out.insert(0, Message("system", system))
    return out


def render_chatml(
    messages: Sequence[Message | Mapping[str, Any]],
    *,
    add_generation_prompt: bool = True,
    system: str = DEFAULT_SYSTEM,
) -> str:
    """The ChatML text of a conversation (what the exported chat template renders)."""
    text = "".join(f"{IM_START}{m.role}\n{m.content}{IM_END}\n" for m in with_system(messages, system))
    return text + (f"{IM_START}assistant\n" if add_generation_prompt else "")


@dataclass(frozen=True)
class TurnSpan:
    """Positions of one turn in the ids: `[start]` = <|im_start|>, `[start+1, content)` = role + newline,
    `[content, end_marker)` = content, `end_marker` = <|im_end|>, `end_marker+1` = newline, `stop` = next turn."""

    role: str
    start: int
    content: int
    end_marker: int
    stop: int


@dataclass
class EncodedConversation:
    ids: list[int]
    turns: list[TurnSpan] = field(default_factory=list)
    prompt_start: int | None = None  # where a trailing `<|im_start|>assistant\n` generation prompt begins

    def __len__(self) -> int:
        return len(self.ids)


def _newline(tokenizer: ChatTokenizer) -> list[int]:
    return list(tokenizer.encode("\n"))


def encode_conversation(
    tokenizer: ChatTokenizer,
    messages: Sequence[Message | Mapping[str, Any]],
    *,
    add_generation_prompt: bool = False,
    system: str = DEFAULT_SYSTEM,
) -> EncodedConversation:
    """Token ids of `render_chatml(...)` built turn by turn as Qwen does, with every turn's spans."""
    newline = _newline(tokenizer)
    out = EncodedConversation(ids=[])
    ids = out.ids
    for m in with_system(messages, system):
        start = len(ids)
        ids += [tokenizer.im_start_id, *tokenizer.encode(m.role), *newline]
        content = len(ids)
        ids += tokenizer.encode(m.content)  # plain text: special-token parsing off
        end_marker = len(ids)
        ids += [tokenizer.im_end_id, *newline]
        out.turns.append(TurnSpan(m.role, start, content, end_marker, len(ids)))
    if add_generation_prompt:
        out.prompt_start = len(ids)
        ids += [tokenizer.im_start_id, *tokenizer.encode("assistant"), *newline]
    return out


def chatml_ids(
    tokenizer: ChatTokenizer,
    messages: Sequence[Message | Mapping[str, Any]],
    *,
    add_generation_prompt: bool = True,
    system: str = DEFAULT_SYSTEM,
) -> list[int]:
    """Token ids of `render_chatml(...)` (a prompt for generation by default)."""
    return encode_conversation(
        tokenizer, messages, add_generation_prompt=add_generation_prompt, system=system
    ).ids


def chat_stop_ids(tokenizer: ChatTokenizer) -> tuple[int, ...]:
    """Chat generation stops on <|im_end|>, <|im_start|> or <|endoftext|> (spec §7.2, §13)."""
    return (tokenizer.im_end_id, tokenizer.im_start_id, tokenizer.eod_id)


def supervised(conv: EncodedConversation, masking: str) -> list[bool]:
    """Per position: is this token a training target under `masking` (paper | finetune_py | all)?"""
    if masking not in MASKINGS:
        raise ValueError(f"masking={masking!r} must be one of {'|'.join(MASKINGS)}")
    n = len(conv.ids)
    if masking == "all":
        return [True] * n
    mask = [False] * n
    for turn in conv.turns:
        if masking == "finetune_py":
            # markers and the trailing newline of every turn; the reply itself in assistant turns
            for i in (turn.start, *range(turn.end_marker, turn.stop)):
                mask[i] = True
        if turn.role == "assistant":
            last = turn.end_marker + 1 if masking == "paper" else turn.stop
            for i in range(turn.content, last):
                mask[i] = True
    return mask


def truncate_at_turn(conv: EncodedConversation, max_tokens: int) -> EncodedConversation | None:
    """The longest prefix of whole turns that fits `max_tokens` and still ends with an assistant turn after
    a non-system turn; None when even the first exchange does not fit."""
    keep = [t for t in conv.turns if t.stop <= max_tokens]
    while keep and keep[-1].role != "assistant":
        keep.pop()
    if not any(t.role == "assistant" for t in keep):
        return None
    stop = keep[-1].stop
    return EncodedConversation(ids=conv.ids[:stop], turns=keep)
