"""One training step and one evaluation pass through Megatron-Core's pipeline schedules (Qwen report §2.4).

The objective is next-token cross-entropy (labels are the inputs shifted by one, spec §3.3), averaged over
the tokens of each micro-batch and then over the micro-batches of a global batch. Gradient accumulation
across micro-batches, the pipeline schedule and the data-parallel gradient all-reduce are Megatron's
(`get_forward_backward_func`, `DistributedDataParallel`); this module supplies the forward step, the loss
reduction across ranks and the non-finite guard (loss and gradient norm), and keeps them out of the loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
import torch.distributed as dist
from megatron.core import parallel_state as ps

from qwen_hpc.parallel import comm_device
from qwen_hpc.training.data import MicroBatchIterator


def causal_mask(seq_length: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Boolean `[1, 1, s, s]` mask, True above the diagonal (= masked out).

    Always passed explicitly: Megatron's default mask is created on CUDA.
    """
    return torch.triu(torch.ones(seq_length, seq_length, dtype=torch.bool, device=device), diagonal=1)[
        None, None
    ]


def _loss_func(
    loss_mask: torch.Tensor, output_tensor: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, dict]:
    # output_tensor: per-token cross-entropy [b, s] from GPTModel(labels=...).
    mask = loss_mask.reshape(-1).float()
    loss_sum = torch.sum(output_tensor.float().reshape(-1) * mask)
    num_tokens = mask.sum().to(torch.int)
    # Megatron divides loss_sum by num_tokens and by the number of micro-batches before backward.
    report = torch.stack([loss_sum.detach().double(), num_tokens.detach().double()])
    return loss_sum, num_tokens, {"lm loss": report}


def forward_step(mask: torch.Tensor, device: torch.device, data_iterator: Any, model: Any) -> tuple[Any, Any]:
    """The `forward_step_func` Megatron's schedules call once per micro-batch on every pipeline stage."""
    batch = {k: v.to(device, non_blocking=True) for k, v in next(data_iterator).items()}
    # packed conversations bring their own block-diagonal mask [b, 1, s, s]; otherwise the shared causal one
    mask = batch.get("attention_mask", mask)
    output = model(batch["tokens"], batch["position_ids"], mask, labels=batch["labels"])
    return output, partial(_loss_func, batch["loss_mask"])


def reduce_loss(forward_data: list[dict]) -> tuple[float, float]:
    """(summed loss, token count) of a global batch, identical on every rank.

    Only the last pipeline stage holds losses; of its tensor-parallel ranks (which hold identical values)
    rank 0 contributes, so one all-reduce over the world sums exactly the data-parallel replicas.
    """
    total = torch.zeros(2, dtype=torch.float64, device=comm_device())
    if ps.is_pipeline_last_stage(ignore_virtual=True) and ps.get_tensor_model_parallel_rank() == 0:
        for item in forward_data:
            total += item["lm loss"].detach().to(total.device, torch.float64)
    if dist.is_initialized():
        dist.all_reduce(total)
    return float(total[0]), float(total[1])


@dataclass
class StepOutcome:
    loss: float
    tokens: float
    grad_norm: float | None
    updated: bool
    lr: float = 0.0  # the learning rate this step used

    @property
    def finite(self) -> bool:
        """False when the loss or the gradient norm is inf/NaN: such a step made no update."""
        return math.isfinite(self.loss) and (self.grad_norm is None or math.isfinite(self.grad_norm))

    @property
    def skip_reason(self) -> str:
        if not math.isfinite(self.loss):
            return "non-finite loss"
        return "non-finite gradient norm" if not self.finite else ""


@dataclass
class StepContext:
    """What every step needs: the DDP-wrapped model, optimizer, scheduler and schedule arguments."""

    ddp_model: Any
    optimizer: Any
    scheduler: Any
    forward_backward: Any
    num_microbatches: int
    micro_batch_size: int
    seq_length: int
    mask: torch.Tensor
    device: torch.device

    def run_schedule(self, data_iterator: Any, *, forward_only: bool) -> list[dict]:
        return self.forward_backward(
            forward_step_func=partial(forward_step, self.mask, self.device),
            data_iterator=data_iterator,
            model=[self.ddp_model],
            num_microbatches=self.num_microbatches,
            seq_length=self.seq_length,
            micro_batch_size=self.micro_batch_size,
            forward_only=forward_only,
        )


def global_grad_norm(optimizer: Any) -> float:
    """L2 norm of the whole model's gradient (every TP/PP shard, after the data-parallel reduction), read
    before any update. Megatron's optimizer steps clip with a non-finite norm and write NaN weights (only a
    loss-scaled FP16 run checks for inf there), so the caller must look first. `prepare_grads` copies the
    reduced model gradients to the optimizer's main gradients; `step` repeats that copy, which is idempotent
    (BF16 and FP32 runs have no loss scaler that a second call would apply twice)."""
    optimizer.prepare_grads()
    return float(optimizer.get_grad_norm())


def train_step(ctx: StepContext, data_iterator: Any) -> StepOutcome:
    """Forward/backward over one global batch; optimizer and LR step only when the loss and the gradient
    norm are finite (a skipped step leaves weights, optimizer moments and LR schedule untouched)."""
    ctx.ddp_model.zero_grad_buffer()
    ctx.optimizer.zero_grad()
    loss_sum, tokens = reduce_loss(ctx.run_schedule(data_iterator, forward_only=False))
    loss = loss_sum / max(tokens, 1.0)
    lr = float(ctx.optimizer.param_groups[0]["lr"])
    if not math.isfinite(loss):
        return StepOutcome(loss, tokens, None, updated=False, lr=lr)
    norm = global_grad_norm(ctx.optimizer)
    if not math.isfinite(norm):
        return StepOutcome(loss, tokens, norm, updated=False, lr=lr)
    updated, grad_norm, _ = ctx.optimizer.step()
    grad_norm = norm if grad_norm is None else grad_norm  # clip_grad=0: the step reports no norm
    if updated:
        ctx.scheduler.step(increment=1)
    return StepOutcome(loss, tokens, None if grad_norm is None else float(grad_norm), bool(updated), lr)


@torch.no_grad()
def evaluate_loss(ctx: StepContext, data_iterator: MicroBatchIterator, num_batches: int) -> dict[str, float]:
    """Mean token loss over `num_batches` global batches (forward only) and its perplexity."""
    ctx.ddp_model.eval()
    loss_sum = tokens = 0.0
    try:
        for _ in range(num_batches):
            batch_loss, batch_tokens = reduce_loss(ctx.run_schedule(data_iterator, forward_only=True))
            loss_sum += batch_loss
            tokens += batch_tokens
    finally:
        ctx.ddp_model.train()
    loss = loss_sum / max(tokens, 1.0)
    return {"loss": loss, "perplexity": math.exp(min(loss, 700.0)), "tokens": tokens}


@dataclass
class NonFiniteGuard:
    """Counts skipped (non-finite) steps; `update` returns True once `limit` come in a row."""

    limit: int
    consecutive: int = 0
    total: int = 0

    def update(self, finite: bool) -> bool:
        if finite:
            self.consecutive = 0
            return False
        self.consecutive += 1
        self.total += 1
        return self.consecutive >= self.limit
