"""The reward model (Qwen report §3.2.1; spec §8.1): a Qwen `GPTModel` with a scalar head, trained with the
pairwise Bradley–Terry loss −log σ(r_chosen − r_rejected), the chosen and rejected sequences of a pair in
one batch.

Which token: the reward is the head applied to the final hidden state (after the last RMSNorm) at the
`<|im_end|>` that closes the judged assistant reply. That token has attended to the whole prompt and the
whole reply, it exists in every ChatML conversation whatever its length, and (unlike `<|endoftext|>`) it is
what the policy emits when it ends a turn, so PPO's rollouts are scored at the same token as training pairs.
The paper only says "a pooling layer ... at a specific end token" (UNCONFIRMED which).

The same module with the head read at every position is PPO's value model.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from qwen_hpc.alignment.chatml import DEFAULT_SYSTEM, Message, encode_conversation
from qwen_hpc.parallel.replicas import Replicas
from qwen_hpc.rlhf import state as rstate
from qwen_hpc.rlhf.preference import PreferencePair


class RewardModel(torch.nn.Module):
    """`lm` (a Megatron `GPTModel`) + `head` (hidden → 1). The hidden states come from a forward hook on the
    decoder (its output is after the final RMSNorm); the LM logits are computed and ignored."""

    def __init__(self, lm: Any, hidden_size: int, *, seed: int = 0):
        super().__init__()
        self.lm = lm
        self.head = torch.nn.Linear(hidden_size, 1)
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():  # OpenRLHF: std 1/sqrt(hidden+1), zero bias
            self.head.weight.copy_(torch.randn(self.head.weight.shape, generator=gen) / math.sqrt(hidden_size + 1))
            self.head.bias.zero_()
        self._hidden: torch.Tensor | None = None
        lm.decoder.register_forward_hook(self._keep)

    def _keep(self, _module: Any, _inputs: Any, output: Any) -> None:
        self._hidden = output[0] if isinstance(output, tuple) else output

    def values(self, tokens: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """[b, s] head outputs at every position (causal: position t sees tokens ≤ t)."""
        b, s = tokens.shape
        positions = torch.arange(s)[None].expand(b, s)
        mask = attention_mask if attention_mask is not None else causal_mask(s)
        self.lm(tokens, positions, mask)
        hidden = self._hidden
        self._hidden = None
        return self.head(hidden.transpose(0, 1).float()).squeeze(-1)

    def forward(self, tokens: torch.Tensor, ends: torch.Tensor) -> torch.Tensor:
        """[b] rewards read at position `ends[i]` of row i."""
        return self.values(tokens).gather(1, ends[:, None]).squeeze(1)


def causal_mask(s: int) -> torch.Tensor:
    return torch.triu(torch.ones(s, s, dtype=torch.bool), diagonal=1)[None, None]


def lm_weights(model: Any) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.state_dict().items() if isinstance(v, torch.Tensor)}


def reward_payload(model: RewardModel) -> dict[str, Any]:
    return {"lm": lm_weights(model.lm), "head": model.head.state_dict()}


def lm_from_state(model_cfg: Any, state: dict[str, torch.Tensor]) -> Any:
    """A `GPTModel` holding `state`: whole at TP = 1; at TP > 1 (Megatron's parallel state) this rank's
    shard, `state` being the shard that the same TP rank saved (`rlhf.state` checks the TP size)."""
    from megatron.core import parallel_state as ps

    from qwen_hpc.interop.hf_checkpoint import model_from_state
    from qwen_hpc.model.builder import build_model

    tp = ps.get_tensor_model_parallel_world_size() if ps.model_parallel_is_initialized() else 1
    if tp == 1:
        return model_from_state(model_cfg, state)
    model = build_model(model_cfg, state["embedding.word_embeddings.weight"].shape[0] * tp, backend="local", tp=tp)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("_extra_state")]
    if missing or unexpected:
        raise ValueError(f"an RLHF checkpoint shard does not fit the model: missing {missing[:5]}, unexpected "
                         f"{list(unexpected)[:5]}")
    return model


def build_reward_model(model_cfg: Any, payload: dict[str, Any]) -> RewardModel:
    """A RewardModel holding a checkpoint's `lm` and `head` (call inside `model_parallel`)."""
    rm = RewardModel(lm_from_state(model_cfg, payload["lm"]), model_cfg.hidden_size)
    rm.head.load_state_dict(payload["head"])
    return rm


# ------------------------------------------------------------------------------------------------ encoding


@dataclass
class EncodedPair:
    chosen: list[int]
    rejected: list[int]
    kind: str


def encode_reply(
    tokenizer: Any, prompt: Sequence[Message], reply: str, *, seq_length: int, system: str = DEFAULT_SYSTEM
) -> tuple[list[int], bool]:
    """(ids ending at the reply's closing `<|im_end|>`, truncated?). Too long: the oldest tokens are cut, so
    the end token and the reply survive."""
    conv = encode_conversation(tokenizer, [*prompt, Message("assistant", reply)], system=system)
    ids = conv.ids[: conv.turns[-1].end_marker + 1]
    return (ids[-seq_length:], True) if len(ids) > seq_length else (ids, False)


def encode_pairs(
    tokenizer: Any, pairs: Sequence[PreferencePair], *, seq_length: int, system: str = DEFAULT_SYSTEM
) -> tuple[list[EncodedPair], int]:
    out, truncated = [], 0
    for p in pairs:
        c, tc = encode_reply(tokenizer, p.prompt, p.chosen, seq_length=seq_length, system=system)
        r, tr = encode_reply(tokenizer, p.prompt, p.rejected, seq_length=seq_length, system=system)
        truncated += int(tc or tr)
        out.append(EncodedPair(c, r, p.kind))
    return out, truncated


def batch_tensors(seqs: Sequence[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded [b, s] tokens and the index of each row's last real token (its end token)."""
    width = max(len(s) for s in seqs)
    tokens = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    for i, s in enumerate(seqs):
        tokens[i, : len(s)] = torch.tensor(s)
    return tokens, torch.tensor([len(s) - 1 for s in seqs])


def pair_rewards(model: RewardModel, pairs: Sequence[EncodedPair], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(r_chosen, r_rejected): both halves of every pair in one forward batch."""
    tokens, ends = batch_tensors([p.chosen for p in pairs] + [p.rejected for p in pairs], pad_id)
    rewards = model(tokens, ends)
    return rewards[: len(pairs)], rewards[len(pairs) :]


def bradley_terry_loss(chosen: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
    return -F.logsigmoid(chosen - rejected).mean()


@torch.no_grad()
def pairwise_accuracy(
    model: RewardModel, pairs: Sequence[EncodedPair], pad_id: int, *, batch_size: int = 32,
    replicas: Replicas | None = None,
) -> dict[str, float]:
    """Share of pairs with r_chosen > r_rejected, overall and per kind; the mean margin. With data-parallel
    `replicas`, each scores every size-th pair and the results are gathered (the same numbers everywhere)."""
    replicas = replicas or Replicas()
    was_training = model.training
    model.eval()
    mine = list(range(replicas.rank, len(pairs), replicas.size))
    scored: list[tuple[int, str, bool, float]] = []
    try:
        for start in range(0, len(mine), batch_size):
            chunk = [pairs[i] for i in mine[start : start + batch_size]]
            rc, rr = pair_rewards(model, chunk, pad_id)
            for i, p, c, r in zip(mine[start : start + batch_size], chunk, rc.tolist(), rr.tolist(), strict=True):
                scored.append((i, p.kind or "all", c > r, c - r))
    finally:
        model.train(was_training)
    if replicas.any(not all(math.isfinite(m) for *_, m in scored)):
        raise FloatingPointError("the reward model returned a non-finite reward")
    hits: dict[str, list[bool]] = {}
    margins: list[float] = []
    for _, kind, hit, margin in sorted(s for part in replicas.gather(scored) for s in part):
        hits.setdefault(kind, []).append(hit)
        margins.append(margin)
    every = [h for v in hits.values() for h in v]
    out = {"accuracy": sum(every) / max(len(every), 1), "pairs": float(len(every))}
    out["mean_margin"] = sum(margins) / max(len(margins), 1)
    if len(hits) > 1:
        out.update({f"accuracy/{k}": sum(v) / len(v) for k, v in sorted(hits.items())})
    return out


# ------------------------------------------------------------------------------------------------ training


@dataclass
class RMTrainSettings:
    lr: float
    batch_size: int  # pairs per optimizer step
    micro_batch_size: int  # pairs per forward
    epochs: int
    seed: int
    save_interval: int
    clip_grad: float
    weight_decay: float
    log_interval: int = 1


@dataclass
class RMResult:
    status: str  # completed | preempted
    step: int
    steps: int
    checkpoint: str | None
    resumed_from: int | None
    first_loss: float | None = None
    last_loss: float | None = None
    metrics: dict = field(default_factory=dict)


def _order(n: int, seed: int, epoch: int) -> list[int]:
    idx = list(range(n))
    random.Random(f"rm-order-{seed}-{epoch}").shuffle(idx)
    return idx


def _accumulate(
    model: RewardModel, mine: Sequence[EncodedPair], batch_pairs: int, micro_batch_size: int, pad_id: int,
    step: int, replicas: Replicas,
) -> tuple[float, float]:
    """Backward over this replica's pairs of the step, each weighted by its share of the whole batch; the
    gradients (and the loss sum and hits) summed over the replicas. A non-finite loss on any replica stops
    every replica (the others would wait in the next collective)."""
    loss_sum, hits, bad = 0.0, 0, None
    for start in range(0, len(mine), micro_batch_size):
        micro = mine[start : start + micro_batch_size]
        rc, rr = pair_rewards(model, micro, pad_id)
        loss = bradley_terry_loss(rc, rr)
        bad = bad if torch.isfinite(loss) else loss.item()
        (loss * len(micro) / batch_pairs).backward()
        loss_sum += loss.item() * len(micro)
        hits += int((rc > rr).sum())
    if replicas.any(bad is not None):
        where = "" if bad is not None else " (on another data-parallel replica)"
        raise FloatingPointError(f"non-finite reward-model loss at step {step}: {bad}{where}")
    replicas.sum_grads(model.parameters())
    loss_sum, hits = replicas.sum([loss_sum, hits])
    return loss_sum, hits


def train_reward_model(
    model: RewardModel,
    train: Sequence[EncodedPair],
    settings: RMTrainSettings,
    *,
    pad_id: int,
    ckpt_root: Path,
    should_stop: Callable[[], bool],
    log: Callable[[dict, int], None],
    replicas: Replicas | None = None,
) -> RMResult:
    """Constant-LR AdamW over `epochs` passes of seeded-shuffled pairs; resumes from `ckpt_root`'s latest
    checkpoint (weights, optimizer, cursor, RNG) to the same losses as an uninterrupted run.

    Data parallel over `replicas`: each takes its contiguous share of every batch (in micro-batches of
    `micro_batch_size`), the loss is weighted by the pair's share of the whole batch and the gradients are
    summed over the replicas, so the step is the one-process step (to float rounding) and the weights stay
    identical; the first replica writes the checkpoints."""
    replicas = replicas or Replicas()
    per_epoch = len(train) // settings.batch_size
    if per_epoch < 1:
        raise ValueError(f"{len(train)} training pairs are fewer than one batch of {settings.batch_size}")
    steps = per_epoch * settings.epochs
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=settings.lr, betas=(0.9, 0.95), eps=1e-8, weight_decay=settings.weight_decay
    )
    step, resumed_from, first, last = 0, None, None, None
    found = rstate.latest(ckpt_root)
    if found is not None:
        payload = rstate.load(found)
        model.lm.load_state_dict(payload["lm"], strict=False)
        model.head.load_state_dict(payload["head"])
        optimizer.load_state_dict(payload["optimizer"])
        rstate.set_rng_state(payload["rng"])
        step = resumed_from = payload["step"]
        first, last = payload.get("first_loss"), payload.get("last_loss")
    model.train()

    def checkpoint() -> str:
        where = ckpt_root / rstate.iter_name(step)
        if replicas.checkpoint_writer:
            payload = {**reward_payload(model), "optimizer": optimizer.state_dict(), "rng": rstate.rng_state()}
            where = rstate.save(ckpt_root, step, {**payload, "first_loss": first, "last_loss": last})
        replicas.barrier()  # whole on disk before any replica goes on (or exits)
        return str(where)

    saved_at, path = (step if resumed_from is not None else -1), (str(found) if found else None)
    while step < steps:
        if replicas.any(should_stop()):
            if saved_at != step:
                path = checkpoint()
            return RMResult("preempted", step, steps, path, resumed_from, first, last)
        t0 = time.perf_counter()
        epoch, within = divmod(step, per_epoch)
        order = _order(len(train), settings.seed, epoch)
        batch = [train[i] for i in order[within * settings.batch_size : (within + 1) * settings.batch_size]]
        mine = replicas.share(batch)
        optimizer.zero_grad(set_to_none=True)
        loss_sum, hits = _accumulate(model, mine, len(batch), settings.micro_batch_size, pad_id, step + 1, replicas)
        grad_norm = replicas.clip_grad_norm(model.parameters(), settings.clip_grad)
        optimizer.step()
        step += 1
        loss_value = loss_sum / len(batch)
        first = loss_value if first is None else first
        last = loss_value
        if step % settings.log_interval == 0:
            log(
                {"loss": loss_value, "train_accuracy": hits / len(batch), "grad_norm": float(grad_norm),
                 "lr": settings.lr, "epoch": epoch, "step_time_s": time.perf_counter() - t0},
                step,
            )
        if settings.save_interval and step % settings.save_interval == 0:
            path, saved_at = checkpoint(), step
    if saved_at != step:
        path = checkpoint()
    return RMResult("completed", step, steps, path, resumed_from, first, last)
