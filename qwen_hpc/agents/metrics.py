"""The paper's tool-use and code-interpreter metrics, as Qwen's `eval/evaluate_plugin.py` computes them
(spec §9.3–9.4).

`process_res` uses the *first* `Action:` / `Action Input:` / `Observation:` (Python's `str.find`, so a
missing marker is index -1), after appending a newline — on the model's output and on the gold alike.
Action inputs are compared canonically: json5 → `json.dumps(..., ensure_ascii=False, sort_keys=True)`, or
"" when they do not parse. Rouge-L runs over the tokenizer's tokens (each token's bytes decoded as UTF-8
with replacement, joined by single spaces) and splits on whitespace only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import json5
from rouge_score import rouge_scorer


@dataclass(frozen=True)
class ParsedReAct:
    action: str
    action_input: str  # canonical JSON, or ""


def _canonical(text: str) -> str:
    try:
        return json.dumps(json5.loads(text), ensure_ascii=False, sort_keys=True)
    except (ValueError, TypeError, RecursionError):
        return ""


def process_res(response: str) -> ParsedReAct:
    response += "\n"
    a, b, c = response.find("Action:"), response.find("Action Input:"), response.find("Observation:")
    action = response[a + len("Action:") : b].strip()
    action_input = response[b + len("Action Input:") : c].strip()
    return ParsedReAct(action=action, action_input=_canonical(action_input))


class _WhitespaceTokenizer:
    """rouge_score's default tokenizer lower-cases and drops non-alphanumerics; Qwen's script does not."""

    def tokenize(self, text: str) -> list[str]:
        return text.split()


def token_string(text: str, encode: Callable[[str], list[int]], token_bytes: Callable[[int], bytes]) -> str:
    return " ".join(token_bytes(t).decode("utf-8", errors="replace") for t in encode(text))


@dataclass(frozen=True)
class ToolUseScores:
    tool_selection: float  # % of positive cases
    tool_input_rouge_l: float  # mean F over all positive cases (0..1)
    false_positive: float  # % of negative cases
    positives: int
    negatives: int


def tool_use_scores(
    positives: Sequence[tuple[str, str]],
    negative_outputs: Sequence[str],
    *,
    encode: Callable[[str], list[int]],
    token_bytes: Callable[[int], bytes],
) -> ToolUseScores:
    """`positives` = (generated, gold) pairs; `negative_outputs` = generations for cases that need no tool."""
    scorer = rouge_scorer.RougeScorer(["rougeL"], tokenizer=_WhitespaceTokenizer())
    selected, rouge = 0, 0.0
    for generated, gold in positives:
        gen, ref = process_res(generated), process_res(gold)
        if "\nAction: " in generated and gen.action.lower() == ref.action.lower():
            selected += 1
        rouge += scorer.score(token_string(ref.action_input, encode, token_bytes),
                              token_string(gen.action_input, encode, token_bytes))["rougeL"].fmeasure
    false_pos = sum("\nAction: " in out for out in negative_outputs)
    n_pos, n_neg = len(positives), len(negative_outputs)
    return ToolUseScores(
        tool_selection=100.0 * selected / n_pos if n_pos else 0.0,
        tool_input_rouge_l=rouge / n_pos if n_pos else 0.0,
        false_positive=100.0 * false_pos / n_neg if n_neg else 0.0,
        positives=n_pos,
        negatives=n_neg,
    )


_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def numbers_in(text: str) -> list[float]:
    out = []
    for match in _NUMBER.findall(text):
        try:
            out.append(float(match.replace(",", "")))
        except ValueError:
            continue
    return out


def contains_number(text: str, gold: float, *, rel_tol: float = 1e-6) -> bool:
    return any(abs(x - gold) <= rel_tol * max(1.0, abs(gold)) for x in numbers_in(text))


def math_correct(execution_output: str, final_reply: str, gold: float) -> bool:
    """Spec §9.4: the gold number must appear in both the code's execution result and the final reply."""
    return contains_number(execution_output, gold) and contains_number(final_reply, gold)
