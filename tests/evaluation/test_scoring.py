"""Multiple-choice scoring: one left-padded forward per batch gives, for every question, the choice
log-probs `transformers` gives for that question alone; the toy-vocabulary fallback sums the tokens."""

from __future__ import annotations

import pytest
import torch

from qwen_hpc.evaluation.scoring import ChoiceTokens, choice_logprobs, choice_tokens
from tests.inference.helpers import hf_model, tiny_tokenizer


@pytest.fixture(scope="module")
def models():
    pytest.importorskip("transformers")
    from qwen_hpc.interop.hf_checkpoint import model_from_state, single_process_megatron
    from qwen_hpc.model.hf_convert import hf_to_megatron, model_config_from_hf

    hf = hf_model(seed=7, init=0.2)
    cfg = model_config_from_hf(hf.config.to_dict())
    with single_process_megatron():
        yield model_from_state(cfg, hf_to_megatron(hf.state_dict(), cfg)), hf


def _hf_logprobs(hf, prompt: list[int], conts: list[list[int]]) -> torch.Tensor:
    scores = []
    with torch.no_grad():
        for cont in conts:
            ids = torch.tensor([prompt + cont])
            logp = torch.log_softmax(hf(ids).logits[0].float(), dim=-1)
            scores.append(sum(logp[len(prompt) - 1 + j, t] for j, t in enumerate(cont)))
    return torch.log_softmax(torch.stack(scores), dim=-1)


def test_batched_single_token_choices_match_transformers(models) -> None:
    ours, hf = models
    tokens = ChoiceTokens(((5,), (9,), (11,), (40,)), (), (5, 9, 11, 40))
    prompts = [[3, 4, 5, 6, 7, 8, 9, 10], [12, 13], [20, 21, 22, 23, 24], [30]]
    batched = choice_logprobs(ours, prompts, tokens, pad_id=0)
    for row, prompt in enumerate(prompts):
        expected = _hf_logprobs(hf, prompt, [[5], [9], [11], [40]])
        torch.testing.assert_close(batched[row], expected, atol=1e-4, rtol=0)
        alone = choice_logprobs(ours, [prompt], tokens, pad_id=0)[0]
        torch.testing.assert_close(batched[row], alone, atol=1e-5, rtol=0)


def test_multi_token_choices_fall_back_to_summed_continuations(models) -> None:
    ours, hf = models
    tokens = ChoiceTokens(((5,), (9, 2), (11,), (40, 41, 42)), None, ())
    prompts = [[3, 4, 5, 6, 7, 8], [12, 13, 14]]
    got = choice_logprobs(ours, prompts, tokens, pad_id=0)
    for row, prompt in enumerate(prompts):
        torch.testing.assert_close(got[row], _hf_logprobs(hf, prompt, [[5], [9, 2], [11], [40, 41, 42]]),
                                   atol=1e-4, rtol=0)


def test_choice_tokens_share_a_common_prefix() -> None:
    tok = tiny_tokenizer()
    choices = [" A", " B", " C", " D"]
    found = choice_tokens(tok, choices)
    assert found.shared  # this small vocabulary splits " A" into " " + "A": the space is shared
    for last, choice in zip(found.last, choices, strict=True):
        assert [*found.shared, last] == tok.encode(choice)
    assert choice_tokens(tok, ["A", "B", "C", "D"]).shared == ()


def test_qwen_choice_ids_are_the_spec_ids(qwen_tokenizer) -> None:
    assert choice_tokens(qwen_tokenizer, [" A", " B", " C", " D"]).last == (362, 425, 356, 422)
    assert choice_tokens(qwen_tokenizer, ["A", "B", "C", "D"]).last == (32, 33, 34, 35)


def test_a_shared_few_shot_prefix_computed_once_gives_the_same_logprobs(models) -> None:
    from qwen_hpc.evaluation.scoring import shared_prefix_length

    ours, hf = models
    tokens = ChoiceTokens(((5,), (9,), (11,), (40,)), (), (5, 9, 11, 40))
    prefix = list(range(100, 130))
    prompts = [prefix + [3, 4, 5], prefix + [6], prefix + [7, 8, 9, 10, 11]]
    assert shared_prefix_length(prompts, 30) == 30 and shared_prefix_length(prompts, 31) == 0
    shared = choice_logprobs(ours, prompts, tokens, pad_id=0, prefix_len=30)
    torch.testing.assert_close(shared, choice_logprobs(ours, prompts, tokens, pad_id=0), atol=1e-5, rtol=0)
    torch.testing.assert_close(shared[1], _hf_logprobs(hf, prompts[1], [[5], [9], [11], [40]]), atol=1e-4, rtol=0)
