"""PPO for the chat model (Qwen report §3.2.2; spec §8.2), with OpenRLHF's structure for what the paper leaves
open: per step, make experience (rollouts → scores → reference log-probs and values → per-token rewards →
GAE) and then update (clipped policy objective + PPO-ptx language-model loss, clipped value loss).

Four models: policy (from SFT, trained), reference (the same weights, frozen), value (from the reward model,
read at every position, trained) and reward (the reward model, frozen) or a rule (checkable embedded tasks).
Rollouts come from the project's KV-cache `Generator` (top-p 0.9, 2 per prompt); the log-probs used by the
ratio are recomputed by the training forward (OpenRLHF does the same), the generator's are kept for a
consistency metric. Reward per token = −kl_coef · (log π − log π_ref), plus the normalized sequence reward
on the last response token. For the first `value_warmup_steps` only the value model learns (the policy is
frozen, so its KL to the reference is exactly 0).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from qwen_hpc.alignment import embedded
from qwen_hpc.alignment.chatml import Message, chat_stop_ids, chatml_ids
from qwen_hpc.parallel.replicas import Replicas
from qwen_hpc.rlhf.config import PPOConfig
from qwen_hpc.rlhf.reward import RewardModel, causal_mask

# ------------------------------------------------------------------------------------------------ rewards


def rule_reward(task: embedded.ChatTask, reply: str, closed: bool) -> float:
    """A checkable reward for the embedded tasks: 1.0 for the right final reply closed with `<|im_end|>`;
    partial credit (0.2 closed, +0.3 the question's own equation, +0.5 its right result) so a weak policy
    has a gradient to climb."""
    score = 0.2 if closed else 0.0
    reply = reply.strip()
    if task.kind == "docstring":
        return score + (0.8 if reply == task.answer else 0.0)
    lhs = task.answer.split("=")[0].strip()
    if reply.startswith(lhs):
        score += 0.3
    want, got = embedded._RESULT.search(task.answer), embedded._RESULT.search(reply)
    if want and got and want.group(1) == got.group(1):
        score += 0.5
    return score


def rule_accuracy(task: embedded.ChatTask, reply: str) -> bool:
    return embedded.score_replies([task], [reply], [True]).get(f"{task.kind}_accuracy", 0.0) == 1.0


@dataclass
class RunningMoments:
    """Running mean/std of raw rewards (Welford); the normalized reward is (r − mean) / std."""

    count: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def update(self, values: Sequence[float]) -> None:
        for v in values:
            self.count += 1
            delta = v - self.mean
            self.mean += delta / self.count
            self.m2 += delta * (v - self.mean)

    @property
    def std(self) -> float:
        return math.sqrt(self.m2 / self.count) if self.count > 1 else 1.0

    def normalize(self, values: torch.Tensor) -> torch.Tensor:
        return (values - self.mean) / max(self.std, 1e-6)


# ------------------------------------------------------------------------------------------------ tensors


def sequence_logprobs(model: Any, tokens: torch.Tensor, vocab: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(log π(token_{t+1} | ≤ t), entropy at t) for t in [0, s−1): [b, s−1] each, real vocabulary only."""
    b, s = tokens.shape
    # runtime_gather_output: the whole vocabulary's logits on every TP rank (a no-op at TP = 1)
    logits = model(tokens, torch.arange(s)[None].expand(b, s), causal_mask(s),
                   runtime_gather_output=True)[:, :-1, :vocab].float()
    logp_all = F.log_softmax(logits, dim=-1)
    logp = logp_all.gather(-1, tokens[:, 1:, None]).squeeze(-1)
    entropy = -(logp_all.exp() * logp_all).sum(-1)
    return logp, entropy


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (x * mask).sum() / mask.sum().clamp(min=1)


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over the masked (response) positions of each row."""
    adv = torch.zeros_like(rewards)
    last = torch.zeros(rewards.shape[0])
    next_value = torch.zeros(rewards.shape[0])
    for t in reversed(range(rewards.shape[1])):
        m = mask[:, t]
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        last = torch.where(m, delta + gamma * lam * last, last)
        adv[:, t] = torch.where(m, last, torch.zeros_like(last))
        next_value = torch.where(m, values[:, t], next_value)
    return adv, adv + values


def whiten(advantages: torch.Tensor, mask: torch.Tensor, replicas: Replicas) -> torch.Tensor:
    """(A − mean) / std over the response tokens of every replica's rollouts (OpenRLHF whitens advantages)."""
    total, count = replicas.sum([(advantages * mask).sum().item(), mask.sum().item()])
    mean = total / max(count, 1)
    var = replicas.sum([(((advantages - mean) ** 2) * mask).sum().item()])[0] / max(count, 1)
    return (advantages - mean) / (math.sqrt(var) + 1e-8) * mask


# ------------------------------------------------------------------------------------------------ data


@dataclass
class Prompt:
    messages: tuple[Message, ...]
    task: embedded.ChatTask | None = None  # for the rule reward


def embedded_prompts(seed: int, count: int, *, held_out: bool) -> list[Prompt]:
    """Arithmetic and follow-up questions (the rule-checkable kinds of the SFT task set)."""
    tasks = embedded.generate(seed, count, held_out=held_out, weights=(0.6, 0.4, 0.0))
    return [Prompt(tuple(Message(m["role"], m["content"]) for m in t.messages[:-1]), t) for t in tasks]


def prompt_order(n: int, seed: int, epoch: int) -> list[int]:
    idx = list(range(n))
    random.Random(f"ppo-prompts-{seed}-{epoch}").shuffle(idx)
    return idx


def prompts_at(prompts: Sequence[Prompt], cursor: int, count: int, seed: int) -> list[Prompt]:
    """`count` prompts from position `cursor` of the seeded, per-epoch reshuffled prompt stream."""
    out = []
    for pos in range(cursor, cursor + count):
        epoch, within = divmod(pos, len(prompts))
        out.append(prompts[prompt_order(len(prompts), seed, epoch)[within]])
    return out


# ------------------------------------------------------------------------------------------------ step


@dataclass
class PPOModels:
    policy: Any  # GPTModel, trained
    reference: Any  # GPTModel, frozen
    value: RewardModel  # trained, read at every position
    reward: RewardModel | None  # frozen; None with the rule reward
    policy_opt: torch.optim.Optimizer
    value_opt: torch.optim.Optimizer


@dataclass
class Experience:
    tokens: torch.Tensor  # [n, s] prompt + response, right-padded
    mask: torch.Tensor  # [n, s-1] True where tokens[:, t+1] is a response token
    old_logp: torch.Tensor
    ref_logp: torch.Tensor
    old_values: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor
    metrics: dict = field(default_factory=dict)


class NonFiniteReward(FloatingPointError):
    pass


def every_reward(raw: torch.Tensor, replicas: Replicas, step: int) -> list[float]:
    """The step's raw rewards of every replica, in replica order; a non-finite one stops every replica."""
    every = [r for part in replicas.gather(raw.tolist()) for r in part]
    bad = [r for r in every if not math.isfinite(r)]
    if bad:
        raise NonFiniteReward(
            f"the reward model returned a non-finite reward ({bad[0]}) for {len(bad)} of "
            f"{len(every)} rollouts at PPO step {step}: stopping (check ppo.reward_checkpoint)"
        )
    return every


def make_experience(
    models: PPOModels,
    tokenizer: Any,
    prompts: Sequence[Prompt],
    cfg: PPOConfig,
    normalizer: RunningMoments,
    *,
    step: int,
    vocab: int,
    generator_cls: Any,
    sampling_cls: Any,
    replicas: Replicas | None = None,
) -> Experience:
    """One PPO batch of experience: sample replies, score them (rule or reward model, at the closing
    `<|im_end|>`), reference and old log-probs, values, KL-penalised rewards and GAE advantages.

    Kept as one function on purpose: the phases hand each other aligned per-token tensors (one row per
    reply, the same response mask), and each phase is timed into the step's metrics; split up, every piece
    would take and return the whole batch state.

    Data parallel over `replicas`: `prompts` is the step's whole batch and each replica rolls out, scores
    and evaluates its contiguous share; the reward normalizer sees every replica's rewards (in replica
    order, so its state is the same everywhere) and the advantages are whitened over the whole batch."""
    replicas = replicas or Replicas()
    prompts = replicas.share(prompts)
    n_each = cfg.samples_per_prompt
    t0 = time.perf_counter()
    prompt_ids = [chatml_ids(tokenizer, list(p.messages), system=cfg.system) for p in prompts]
    repeated = [ids for ids in prompt_ids for _ in range(n_each)]
    sampling = sampling_cls(
        max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, top_p=cfg.top_p,
        stop_token_ids=chat_stop_ids(tokenizer), seed=cfg.seed * 1_000_003 + step + 7_919 * replicas.rank,
    )
    gens = generator_cls(models.policy, tokenizer, vocab_size=vocab).generate_ids(repeated, sampling)
    t_rollout = time.perf_counter() - t0
    generated_tokens = sum(len(g.token_ids) for g in gens)

    t0 = time.perf_counter()
    closed = [g.finish_reason == "stop_token" and g.token_ids[-1] == tokenizer.im_end_id for g in gens]
    if models.reward is None:
        tasks = [p.task for p in prompts for _ in range(n_each)]
        raw = torch.tensor([rule_reward(t, g.text, c) for t, g, c in zip(tasks, gens, closed, strict=True)])
    else:
        # scored at the <|im_end|> closing the reply, as the reward model was trained
        seqs = [p + [i for i in g.token_ids if i not in chat_stop_ids(tokenizer)] + [tokenizer.im_end_id]
                for p, g in zip(repeated, gens, strict=True)]
        width = max(len(s) for s in seqs)
        toks = torch.full((len(seqs), width), tokenizer.eod_id, dtype=torch.long)
        for i, s in enumerate(seqs):
            toks[i, : len(s)] = torch.tensor(s)
        with torch.no_grad():
            raw = models.reward(toks, torch.tensor([len(s) - 1 for s in seqs])).float()
    normalizer.update(every_reward(raw, replicas, step))
    scores = normalizer.normalize(raw) if cfg.normalize_reward else raw
    t_score = time.perf_counter() - t0

    t0 = time.perf_counter()
    seqs = [p + g.token_ids for p, g in zip(repeated, gens, strict=True)]
    width = max(len(s) for s in seqs)
    tokens = torch.full((len(seqs), width), tokenizer.eod_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width - 1), dtype=torch.bool)
    for i, (p, s) in enumerate(zip(repeated, seqs, strict=True)):
        tokens[i, : len(s)] = torch.tensor(s)
        mask[i, len(p) - 1 : len(s) - 1] = True
    with torch.no_grad():
        old_logp, entropy = sequence_logprobs(models.policy, tokens, vocab)
        ref_logp, _ = sequence_logprobs(models.reference, tokens, vocab)
        old_values = models.value.values(tokens)[:, :-1]
    kl = (old_logp - ref_logp) * mask
    rewards = -cfg.kl_coef * kl
    last = torch.tensor([len(s) - 2 for s in seqs])
    rewards[torch.arange(len(seqs)), last] += scores
    advantages, returns = gae(rewards, old_values, mask, cfg.gamma, cfg.lam)
    advantages = whiten(advantages, mask, replicas)
    gen_lp = torch.cat([torch.tensor(g.logprobs) for g in gens])
    t_ref = time.perf_counter() - t0
    metrics = {
        "reward/raw": raw.mean().item(),
        "reward/normalized": scores.mean().item(),
        "reward/running_mean": normalizer.mean,
        "kl": (kl.sum() / mask.sum()).item(),
        "kl_per_sequence": (kl.sum(1)).mean().item(),
        "entropy": masked_mean(entropy, mask).item(),
        "response_length": mask.sum(1).float().mean().item(),
        "im_end_rate": sum(closed) / len(closed),
        "logprob_gap_generator": (gen_lp - old_logp[mask]).abs().max().item() if len(gen_lp) else 0.0,
        "time/rollout_s": t_rollout,
        "time/scoring_s": t_score,
        "time/reference_values_s": t_ref,
        "rollout_tokens_per_s": generated_tokens / max(t_rollout, 1e-9),
    }
    if replicas.size > 1:  # the whole batch's figures (each replica has the same number of rollouts)
        metrics = replicas.mean(metrics)
        metrics["rollout_tokens_per_s"] *= replicas.size  # the job's rate, all replicas together
    return Experience(tokens, mask, old_logp, ref_logp, old_values, advantages, returns, metrics)


def ptx_loss(policy: Any, batch: torch.Tensor, vocab: int) -> torch.Tensor:
    logp, _ = sequence_logprobs(policy, batch, vocab)
    return -logp.mean()


def update(
    models: PPOModels, exp: Experience, cfg: PPOConfig, *, warmup: bool, vocab: int, ptx_batch: torch.Tensor | None,
    replicas: Replicas | None = None,
) -> dict[str, float]:
    """One PPO update over the experience: `ppo_epochs` passes, each split into mini-batches of
    `train_batch_size` rollouts (0: the whole batch) with one optimizer step each (OpenRLHF's
    train_batch_size: more optimizer steps from the same rollouts). Data parallel: `exp` is this replica's
    share and a mini-batch is the same slice of every replica's share; the losses are weighted by
    the replica's share of the mini-batch's response tokens (the ptx batch, whole on entry, is split over the
    replicas and added to every step) and the gradients summed over the replicas."""
    replicas = replicas or Replicas()
    t0 = time.perf_counter()
    n = exp.tokens.shape[0]
    per_step = cfg.train_batch_size // replicas.size if cfg.train_batch_size else n
    ptx_rows = None
    if not warmup and cfg.ptx_coef > 0 and ptx_batch is not None:
        ptx_rows = torch.stack(replicas.share(list(ptx_batch)))
    stats: dict[str, list[float]] = {"policy_loss": [], "value_loss": [], "clip_fraction": [], "ptx_loss": []}
    models.policy.train()
    models.value.train()
    starts = range(0, n, per_step)  # n is a multiple of per_step (PPOConfig and preflight check it)
    for _ in range(cfg.ppo_epochs):
        for first in starts:
            _minibatch_step(models, exp, slice(first, first + per_step), cfg, stats, warmup=warmup, vocab=vocab,
                            ptx_rows=ptx_rows, replicas=replicas)
    out = replicas.mean({k: sum(v) / len(v) for k, v in stats.items() if v})
    out["time/training_s"] = time.perf_counter() - t0
    out["value_warmup"] = float(warmup)
    out["optimizer_steps"] = float(cfg.ppo_epochs * len(starts))
    return out


def _minibatch_step(
    models: PPOModels, exp: Experience, rows: slice, cfg: PPOConfig, stats: dict[str, list[float]], *,
    warmup: bool, vocab: int, ptx_rows: torch.Tensor | None, replicas: Replicas,
) -> None:
    """One optimizer step of the value model (and, after the warm-up, of the policy) on `rows` of the
    experience, accumulated over micro-batches of `micro_batch_size` sequences."""
    models.policy_opt.zero_grad(set_to_none=True)
    models.value_opt.zero_grad(set_to_none=True)
    total_tokens = replicas.sum([exp.mask[rows].sum().item()])[0]
    for start in range(rows.start, rows.stop, cfg.micro_batch_size):
        sl = slice(start, min(start + cfg.micro_batch_size, rows.stop))
        tokens, mask = exp.tokens[sl], exp.mask[sl]
        share = mask.sum() / max(total_tokens, 1.0)
        values = models.value.values(tokens)[:, :-1]
        clipped = exp.old_values[sl] + (values - exp.old_values[sl]).clamp(-cfg.value_clip, cfg.value_clip)
        v_loss = 0.5 * masked_mean(
            torch.max((values - exp.returns[sl]) ** 2, (clipped - exp.returns[sl]) ** 2), mask
        )
        (v_loss * share).backward()
        stats["value_loss"].append(v_loss.item())
        if warmup:
            continue
        logp, _ = sequence_logprobs(models.policy, tokens, vocab)
        ratio = (logp - exp.old_logp[sl]).exp()
        adv = exp.advantages[sl]
        surrogate = torch.min(ratio * adv, ratio.clamp(1 - cfg.eps_clip, 1 + cfg.eps_clip) * adv)
        p_loss = -masked_mean(surrogate, mask)
        (p_loss * share).backward()
        stats["policy_loss"].append(p_loss.item())
        stats["clip_fraction"].append(masked_mean(((ratio - 1).abs() > cfg.eps_clip).float(), mask).item())
    if ptx_rows is not None:
        loss = ptx_loss(models.policy, ptx_rows, vocab)
        (cfg.ptx_coef * loss / replicas.size).backward()
        stats["ptx_loss"].append(loss.item())
    replicas.sum_grads(models.value.parameters())
    if not warmup:
        replicas.sum_grads(models.policy.parameters())
    replicas.clip_grad_norm(models.value.parameters(), cfg.clip_grad)
    models.value_opt.step()
    if not warmup:
        replicas.clip_grad_norm(models.policy.parameters(), cfg.clip_grad)
        models.policy_opt.step()


def greedy_eval(policy: Any, tokenizer: Any, prompts: Sequence[Prompt], cfg: PPOConfig, *, vocab: int,
                generator_cls: Any, sampling_cls: Any, replicas: Replicas | None = None) -> dict[str, float]:
    """Mean rule reward and accuracy of greedy replies to held-out embedded prompts (each data-parallel
    replica replies to every size-th prompt; the scores are gathered)."""
    replicas = replicas or Replicas()
    sampling = sampling_cls(max_new_tokens=cfg.max_new_tokens, stop_token_ids=chat_stop_ids(tokenizer))
    mine = list(prompts[replicas.rank :: replicas.size])
    ids = [chatml_ids(tokenizer, list(p.messages), system=cfg.system) for p in mine]
    gens = generator_cls(policy, tokenizer, vocab_size=vocab).generate_ids(ids, sampling) if ids else []
    scored = []
    for p, g in zip(mine, gens, strict=True):
        closed = g.finish_reason == "stop_token" and g.token_ids[-1] == tokenizer.im_end_id
        scored.append((rule_reward(p.task, g.text, closed), rule_accuracy(p.task, g.text), closed))
    every = [s for part in replicas.gather(scored) for s in part]
    rewards, hits, closed = ([s[i] for s in every] for i in range(3))
    policy.train()
    return {"mean_reward": sum(rewards) / len(rewards), "accuracy": sum(hits) / len(hits),
            "im_end_rate": sum(closed) / len(closed), "prompts": float(len(prompts))}


Logger = Callable[[dict, int], None]
