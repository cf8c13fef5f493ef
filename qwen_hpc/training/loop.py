"""Pretraining loop: Megatron-Core model, DDP, optimizer and schedules, resumable (Qwen report §2.4; spec §4).

`pretrain` reads top to bottom as: set up (parallel state, seed, model, optimizer, LR schedule, data,
resume) → per step {stop flag → train step → eval? → save? → log} → final save. AdamW (β 0.9/0.95, ε 1e-8),
cosine decay to 10 % of the peak LR after a linear warmup (Megatron's `OptimizerParamScheduler`), gradient
clipping at 1.0 and weight decay 0.1 are the report's settings, carried by `OptimizerConfig`.

Precision: `auto` trains in BF16 with FP32 master weights (Megatron's Float16 optimizer) on CUDA, as the
report does, and in FP32 on the CPU (which has no fast BF16). On CPU the whole call runs inside
`cpu_shims()`. Resuming gives the same losses as an uninterrupted run: the sample order, the LR schedule,
the optimizer state and the RNG states all come back from the checkpoint.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch.distributed as dist
from megatron.core import parallel_state as ps
from megatron.core.distributed import (
    DistributedDataParallel,
    DistributedDataParallelConfig,
    finalize_model_grads,
)
from megatron.core.optimizer import OptimizerConfig as MegatronOptimizerConfig
from megatron.core.optimizer import get_megatron_optimizer
from megatron.core.optimizer_param_scheduler import OptimizerParamScheduler
from megatron.core.pipeline_parallel import get_forward_backward_func
from megatron.core.transformer.module import Float16Module

from qwen_hpc.compat.megatron_cpu import model_parallel_seed
from qwen_hpc.model.builder import build_model, padded_vocab_size, select_kernels, transformer_config
from qwen_hpc.model.config import ModelConfig
from qwen_hpc.parallel import (
    any_rank,
    compute_device,
    memory_metrics,
    model_parallel,
    params_dtype,
    resolve_precision,
    world_size,
)
from qwen_hpc.tracking.base import NullTracker, Tracker
from qwen_hpc.training import checkpoint as ckpt
from qwen_hpc.training.config import OptimizerConfig, TrainConfig, check_parallel_layout
from qwen_hpc.training.data import Blend, MicroBatchIterator, build_datasets
from qwen_hpc.training.step import (
    NonFiniteGuard,
    StepContext,
    causal_mask,
    evaluate_loss,
    train_step,
)

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    status: str  # "completed" | "preempted" | "failed"
    iteration: int
    consumed_samples: int
    first_loss: Optional[float]  # noqa: UP045
    last_loss: Optional[float]  # noqa: UP045
    checkpoint: Optional[str]  # noqa: UP045
    resumed_from: Optional[int]  # noqa: UP045
    metrics: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Objective:
    """How a training run averages its loss and what its samples carry (pretraining: the defaults).

    `per_token_loss`: the loss is the mean over the loss-masked tokens of the whole global batch (micro-batches
    and data-parallel ranks together, Megatron's `calculate_per_token_loss`), not the mean of micro-batch means;
    what SFT needs, where micro-batches hold different numbers of supervised tokens.
    `attention_masks`: samples bring their own `attention_mask` (packed conversations).
    """

    per_token_loss: bool = False
    attention_masks: bool = False


@dataclass
class _Run:
    """Everything `pretrain` builds before its first step."""

    step: StepContext
    model: Any  # unwrapped GPTModel: what checkpoints save
    train_iter: MicroBatchIterator
    valid: Any
    state: ckpt.TrainingState
    resumed_from: int | None
    ckpt_root: Path
    flops_per_step: float
    world_size: int
    tracker: Tracker
    metrics: dict = field(default_factory=dict)


def _build_optimizer(ddp: Any, train: TrainConfig, optim: OptimizerConfig, bf16: bool) -> tuple[Any, Any]:
    config = MegatronOptimizerConfig(
        optimizer="adam",  # decoupled weight decay: AdamW
        lr=optim.lr,
        min_lr=optim.min_lr,
        weight_decay=optim.weight_decay,
        adam_beta1=optim.beta1,
        adam_beta2=optim.beta2,
        adam_eps=optim.eps,
        clip_grad=optim.clip_grad,
        bf16=bf16,
        params_dtype=params_dtype(bf16),
        use_distributed_optimizer=train.use_distributed_optimizer,
    )
    optimizer = get_megatron_optimizer(config, [ddp])
    return optimizer, build_scheduler(optimizer, train, optim)


def build_scheduler(optimizer: Any, train: TrainConfig, optim: OptimizerConfig) -> OptimizerParamScheduler:
    """Linear warmup to the peak LR, then `optim.decay_style` to `min_lr` over the decay length.

    `decay_style=constant` keeps the peak LR after warmup (the schedule later Code/Math stages may use).
    """
    return OptimizerParamScheduler(
        optimizer,
        init_lr=0.0,
        max_lr=optim.lr,
        min_lr=optim.min_lr,
        lr_warmup_steps=optim.warmup_iters,
        lr_decay_steps=optim.resolved_decay_iters(train.train_iters),
        lr_decay_style=optim.decay_style,
        start_wd=optim.weight_decay,
        end_wd=optim.weight_decay,
        wd_incr_steps=train.train_iters,
        wd_incr_style="constant",
    )


def build_stage_model(
    model_cfg: ModelConfig, train: TrainConfig, n_vocab: int
) -> tuple[Any, Any, bool, str, Any]:
    """(GPTModel, TransformerConfig, bf16, why, kernels) of this rank's pipeline stage, with the precision
    and kernels the run uses; shared by training and evaluation so both build the same model."""
    bf16, why = resolve_precision(train.precision)
    kernels = select_kernels()
    tp, pp = train.tensor_model_parallel_size, train.pipeline_model_parallel_size
    config = transformer_config(
        model_cfg, tp=tp, pp=pp, params_dtype=params_dtype(bf16), bf16=bf16, kernels=kernels
    )
    model_parallel_seed(train.seed + 100 * ps.get_pipeline_model_parallel_rank())
    model = build_model(
        model_cfg,
        padded_vocab_size(n_vocab, model_cfg, tp),
        pre_process=ps.is_pipeline_first_stage(ignore_virtual=True),
        post_process=ps.is_pipeline_last_stage(ignore_virtual=True),
        backend=kernels.backend,
        config=config,
    )
    return model, config, bf16, why, kernels


def build_training_model(
    model_cfg: ModelConfig, train: TrainConfig, n_vocab: int, *, objective: Objective | None = None
) -> tuple[Any, Any, Any, bool]:
    """(GPTModel, DDP-wrapped model, TransformerConfig, bf16) for this rank's pipeline stage."""
    objective = objective or Objective()
    model, config, bf16, why, kernels = build_stage_model(model_cfg, train, n_vocab)
    # before DDP is built: it reads the switch to decide how gradients are scaled
    config.calculate_per_token_loss = objective.per_token_loss
    if objective.attention_masks:
        if kernels.backend == "te":
            raise ValueError(
                "per-sample attention masks (packed conversations) need the local attention backend; "
                "Transformer Engine's causal attention ignores them: use padded sequences instead"
            )
        config.masked_softmax_fusion = False  # the fused kernel applies only the causal triangle
    wrapped = Float16Module(config, model) if bf16 else model
    ddp_config = DistributedDataParallelConfig(
        grad_reduce_in_fp32=bf16,
        overlap_grad_reduce=False,
        use_distributed_optimizer=train.use_distributed_optimizer,
        check_for_nan_in_grad=False,  # non-finite losses are skipped by the loop instead
    )
    ddp = DistributedDataParallel(config=config, ddp_config=ddp_config, module=wrapped)
    config.no_sync_func = ddp.no_sync
    config.finalize_model_grads_func = finalize_model_grads
    if dist.get_rank() == 0:
        log.info("precision: %s (%s)", "bf16 + fp32 master weights" if bf16 else "fp32", why)
        log.info("kernels: %s", kernels.describe())
    return model, ddp, config, bf16


def _setup(
    model_cfg: ModelConfig,
    train: TrainConfig,
    optim: OptimizerConfig,
    datasets: Callable[[], tuple[Any, Any]],
    *,
    n_vocab: int,
    out_dir: Path,
    tracker: Tracker,
    init_checkpoint: Path | None = None,
    objective: Objective,
) -> _Run:
    world = dist.get_world_size()
    model, ddp, config, bf16 = build_training_model(model_cfg, train, n_vocab, objective=objective)
    optimizer, scheduler = _build_optimizer(ddp, train, optim, bf16)
    config.grad_scale_func = optimizer.scale_loss
    if dist.get_rank() == 0:
        inner = type(getattr(optimizer, "chained_optimizers", [optimizer])[0].optimizer)
        log.info(
            "optimizer: %s.%s (Megatron uses TE/Apex FusedAdam when importable, else torch AdamW)",
            inner.__module__,
            inner.__name__,
        )
    device = compute_device()
    dp, dp_rank = ps.get_data_parallel_world_size(), ps.get_data_parallel_rank()
    step = StepContext(
        ddp_model=ddp,
        optimizer=optimizer,
        scheduler=scheduler,
        forward_backward=get_forward_backward_func(),
        num_microbatches=train.num_microbatches(world),
        micro_batch_size=train.micro_batch_size,
        seq_length=model_cfg.seq_length,
        mask=causal_mask(model_cfg.seq_length, device),
        device=device,
    )
    ckpt_root = out_dir / "checkpoints"
    loaded = ckpt.load_checkpoint(ckpt_root, model=model, optimizer=optimizer, scheduler=scheduler)
    state = loaded[1] if loaded else ckpt.TrainingState()
    if loaded:
        log.info("resumed from %s (iteration %d)", loaded[0], state.iteration)
    else:
        if init_checkpoint is not None:  # weights only, resharded to this layout; a fresh run otherwise
            _check_init_rows(init_checkpoint, padded_vocab_size(n_vocab, model_cfg, train.tensor_model_parallel_size))
            path, iteration = ckpt.load_weights(init_checkpoint, model)
            log.info("initial weights from %s (iteration %d)", path, iteration)
        # Iteration i (1-based) uses the scheduler's LR at step i: warmup starts at lr/warmup, not at 0,
        # and the last iteration reaches min_lr. The offset is part of the saved scheduler state.
        scheduler.step(increment=1)
    train_ds, valid_ds = datasets()
    is_logger = (
        ps.is_pipeline_last_stage(ignore_virtual=True)
        and dp_rank == 0
        and ps.get_tensor_model_parallel_rank() == 0
    )
    tokens_per_step = train.global_batch_size * model_cfg.seq_length
    return _Run(
        step=step,
        model=model,
        train_iter=MicroBatchIterator(
            train_ds,
            micro_batch_size=train.micro_batch_size,
            dp_rank=dp_rank,
            dp_size=dp,
            consumed_samples=state.consumed_samples,
        ),
        valid=valid_ds,
        state=state,
        resumed_from=state.iteration if loaded else None,
        ckpt_root=ckpt_root,
        flops_per_step=model_cfg.flops_per_token(padded_vocab_size(n_vocab, model_cfg, 1)) * tokens_per_step,
        world_size=world,
        tracker=tracker if is_logger else NullTracker(),
    )


def _check_init_rows(init_checkpoint: Path, rows: int) -> None:
    """The initial checkpoint must embed as many rows as this run (its tokenizer and TP padding)."""
    theirs = ckpt.checkpoint_vocab_rows(ckpt.resolve_checkpoint(init_checkpoint))
    if theirs != rows:
        raise ValueError(
            f"init_checkpoint {init_checkpoint} embeds {theirs} vocabulary rows, this run {rows} (its tokenizer "
            f"padded for TP={ps.get_tensor_model_parallel_world_size()}): train on the checkpoint's tokenizer, "
            "or import it with import_hf tp=<this run's TP>"
        )


def _evaluate(run: _Run, train: TrainConfig) -> dict[str, float]:
    if run.valid is None or train.eval_iters == 0:
        return {}
    it = MicroBatchIterator(
        run.valid,
        micro_batch_size=train.micro_batch_size,
        dp_rank=ps.get_data_parallel_rank(),
        dp_size=ps.get_data_parallel_world_size(),
    )
    result = evaluate_loss(run.step, it, train.eval_iters)
    return {"val_loss": result["loss"], "val_ppl": result["perplexity"]}


def _save(run: _Run, train: TrainConfig) -> str:
    path = ckpt.save_checkpoint(
        run.ckpt_root,
        run.state,
        model=run.model,
        optimizer=run.step.optimizer,
        scheduler=run.step.scheduler,
        keep_last=train.keep_last_checkpoints,
    )
    return str(path)


def _step_metrics(run: _Run, train: TrainConfig, outcome: Any, seconds: float) -> dict[str, float]:
    tokens_per_s = train.global_batch_size * run.step.seq_length / seconds
    metrics = {
        "loss": outcome.loss,
        "lr": outcome.lr,
        "grad_norm": outcome.grad_norm if outcome.grad_norm is not None else float("nan"),
        "tokens_per_s": tokens_per_s,
        "consumed_samples": run.state.consumed_samples,
        "iteration_time_s": seconds,
        "loss_tokens_per_s": outcome.tokens / seconds,  # tokens that carry loss (SFT: supervised tokens)
        "skipped_steps": run.state.skipped_steps,
        "update_skipped": 0.0 if outcome.finite else 1.0,
    }
    if train.peak_flops_per_device > 0:
        metrics["mfu"] = run.flops_per_step / (seconds * run.world_size * train.peak_flops_per_device)
    metrics.update(memory_metrics())
    return metrics


def pretrain(
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    optim_cfg: OptimizerConfig,
    blend: Blend,
    *,
    eod_id: int,
    n_vocab: int,
    out_dir: Path,
    tracker: Tracker,
    should_stop: Callable[[], bool],
    extra_state: dict | None = None,
    index_cache_dir: Optional[Path] = None,  # noqa: UP045
    init_checkpoint: Optional[Path] = None,  # noqa: UP045
) -> TrainResult:
    """Train (or resume) to `train_cfg.train_iters`; every rank calls this with the same arguments.

    Preconditions: the torch.distributed default group is initialised (`ensure_process_group`). This call
    initialises and tears down Megatron's parallel state. `extra_state` is stored in every checkpoint.
    `init_checkpoint` (a checkpoint directory or root, any parallel layout) gives the initial weights of a
    run that has no checkpoint of its own yet: continued pretraining, or comparing layouts from one init.
    """
    cache_dir = index_cache_dir or Path(out_dir) / "index_cache"

    def datasets() -> tuple[Any, Any]:
        return build_datasets(model_cfg, train_cfg, blend, eod_id=eod_id, n_vocab=n_vocab, cache_dir=cache_dir)

    return train_model(
        model_cfg,
        train_cfg,
        optim_cfg,
        datasets,
        n_vocab=n_vocab,
        out_dir=out_dir,
        tracker=tracker,
        should_stop=should_stop,
        extra_state=extra_state,
        init_checkpoint=init_checkpoint,
    )


def train_model(
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    optim_cfg: OptimizerConfig,
    datasets: Callable[[], tuple[Any, Any]],
    *,
    n_vocab: int,
    out_dir: Path,
    tracker: Tracker,
    should_stop: Callable[[], bool],
    extra_state: dict | None = None,
    init_checkpoint: Optional[Path] = None,  # noqa: UP045
    objective: Optional[Objective] = None,  # noqa: UP045
) -> TrainResult:
    """The training loop for any objective: `datasets()` (called on every rank once the model exists) gives
    the (train, valid) datasets whose items are dicts of `tokens`, `labels`, `loss_mask`, `position_ids`
    (and `attention_mask` with `objective.attention_masks`), read in order by `MicroBatchIterator`.
    `pretrain` and SFT both run here; see `pretrain` for the rest of the contract."""
    check_parallel_layout(train_cfg, optim_cfg, world_size(), model=model_cfg)
    with model_parallel(train_cfg.tensor_model_parallel_size, train_cfg.pipeline_model_parallel_size):
        run = _setup(
            model_cfg,
            train_cfg,
            optim_cfg,
            datasets,
            n_vocab=n_vocab,
            out_dir=Path(out_dir),
            tracker=tracker,
            init_checkpoint=Path(init_checkpoint) if init_checkpoint is not None else None,
            objective=objective or Objective(),
        )
        run.state.extra = {**run.state.extra, **(extra_state or {})}
        return _loop(run, train_cfg, should_stop)


def _loop(run: _Run, train: TrainConfig, should_stop: Callable[[], bool]) -> TrainResult:
    """Per step: stop flag → step → eval? → save? → log."""
    state, guard = run.state, NonFiniteGuard(train.max_consecutive_nonfinite, total=run.state.skipped_steps)
    first = last = None
    saved_at, checkpoint = (state.iteration, None) if run.resumed_from is not None else (-1, None)
    times: list[float] = []

    def result(status: str, **metrics: Any) -> TrainResult:
        run.metrics.update(metrics, skipped_steps=state.skipped_steps)
        if times:
            run.metrics.setdefault("median_iteration_time_s", sorted(times)[len(times) // 2])
        return TrainResult(
            status,
            state.iteration,
            state.consumed_samples,
            first,
            last,
            checkpoint,
            run.resumed_from,
            run.metrics,
        )

    while state.iteration < train.train_iters:
        if any_rank(bool(should_stop())):
            if saved_at != state.iteration:
                checkpoint = _save(run, train)
            log.warning("stop requested: checkpoint at iteration %d, exiting as preempted", state.iteration)
            return result("preempted")
        t0 = time.perf_counter()
        outcome = train_step(run.step, run.train_iter)
        seconds = time.perf_counter() - t0
        state.iteration += 1
        state.consumed_samples += train.global_batch_size
        must_stop = guard.update(outcome.finite)
        state.skipped_steps = guard.total
        if must_stop:
            message = (
                f"{guard.consecutive} consecutive non-finite steps, the last at iteration {state.iteration}"
            )
            log.error("stopping: %s (loss %s)", message, outcome.loss)
            return result("failed", error=message)
        if outcome.finite:
            first, last = (outcome.loss if first is None else first), outcome.loss
        else:
            log.warning("%s at iteration %d: optimizer step skipped", outcome.skip_reason, state.iteration)
        times.append(seconds)
        metrics = _step_metrics(run, train, outcome, seconds)
        if train.eval_interval and state.iteration % train.eval_interval == 0:
            run.metrics.update(_evaluate(run, train))
            metrics.update({k: run.metrics[k] for k in ("val_loss", "val_ppl") if k in run.metrics})
        if train.save_interval and state.iteration % train.save_interval == 0:
            checkpoint, saved_at = _save(run, train), state.iteration
        if state.iteration % train.log_interval == 0 or "val_loss" in metrics:
            run.tracker.log(metrics, step=state.iteration)
    if not (train.eval_interval and state.iteration % train.eval_interval == 0 and "val_loss" in run.metrics):
        run.metrics.update(_evaluate(run, train))
    if saved_at != state.iteration:
        checkpoint = _save(run, train)
    elif checkpoint is None:
        checkpoint = str(run.ckpt_root / ckpt.iter_name(state.iteration))
    return result("completed")
