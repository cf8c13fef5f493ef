"""PPO's arithmetic: GAE against a hand computation, the running reward normalizer, the rule reward and the
resumable prompt stream."""

from __future__ import annotations

import math

import pytest
import torch

from qwen_hpc.alignment import embedded
from qwen_hpc.rlhf.config import PPOConfig
from qwen_hpc.rlhf.ppo import RunningMoments, embedded_prompts, gae, prompts_at, rule_reward


def test_gae_matches_a_hand_computation_on_the_masked_positions() -> None:
    rewards = torch.tensor([[0.0, 0.1, 0.2, 1.0, 0.0]])
    values = torch.tensor([[9.0, 0.5, 0.4, 0.3, 9.0]])
    mask = torch.tensor([[False, True, True, True, False]])
    adv, ret = gae(rewards, values, mask, gamma=1.0, lam=0.5)
    d3 = 1.0 - 0.3
    d2 = 0.2 + 0.3 - 0.4
    d1 = 0.1 + 0.4 - 0.5
    a3, a2 = d3, d2 + 0.5 * d3
    a1 = d1 + 0.5 * a2
    assert torch.allclose(adv, torch.tensor([[0.0, a1, a2, a3, 0.0]]))
    assert torch.allclose(ret[mask], (adv + values)[mask])


def test_running_moments_match_the_batch_statistics() -> None:
    values = [0.5, 1.5, -2.0, 4.0, 0.25]
    m = RunningMoments()
    m.update(values[:2])
    m.update(values[2:])
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    assert math.isclose(m.mean, mean) and math.isclose(m.std, std)
    assert torch.allclose(m.normalize(torch.tensor([mean])), torch.tensor([0.0]))


def test_rule_reward_ranks_right_above_partial_above_wrong() -> None:
    task = embedded.generate(0, 1, held_out=True, weights=(1.0, 0.0, 0.0))[0]
    lhs = task.answer.split("=")[0].strip()
    wrong = f"{lhs} = {int(embedded._RESULT.search(task.answer).group(1)) + 1}."
    assert rule_reward(task, task.answer, True) == 1.0
    assert rule_reward(task, wrong, True) == 0.5
    assert rule_reward(task, "no idea", False) == 0.0


def test_the_prompt_stream_is_a_pure_function_of_the_cursor() -> None:
    prompts = embedded_prompts(3, 10, held_out=False)
    whole = prompts_at(prompts, 0, 25, seed=1)
    assert whole[7:19] == prompts_at(prompts, 7, 12, seed=1)
    assert sorted(id(p) for p in whole[:10]) == sorted(id(p) for p in prompts)


def test_a_seen_evaluation_larger_than_the_prompt_pool_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"train_prompts=8 must be >= 1 and seen_eval_prompts=9 in \[0, train_prompts\]"):
        PPOConfig(train_prompts=8, seen_eval_prompts=9)


def test_a_train_batch_that_does_not_divide_the_rollouts_is_rejected() -> None:
    assert PPOConfig(prompts_per_step=8, samples_per_prompt=4, train_batch_size=16).train_batch_size == 16
    with pytest.raises(ValueError, match=r"train_batch_size=12 must be 0 \(the whole batch\) or divide the step's 32 "
                                         r"rollouts \(prompts_per_step=8 x samples_per_prompt=4\)"):
        PPOConfig(prompts_per_step=8, samples_per_prompt=4, train_batch_size=12)
