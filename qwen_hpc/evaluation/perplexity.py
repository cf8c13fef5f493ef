"""Validation perplexity of a pretraining checkpoint (Qwen report §2.4: the held-out language-modelling loss).

Perplexity = exp(mean next-token cross-entropy) over the validation split of the *same* blend, split and
seed as training, so the tokens are ones the model never trained on. Only the model weights are read from
the checkpoint (no optimizer state), through the same `dist_checkpointing` loader training uses.
"""

from __future__ import annotations

import logging
from pathlib import Path

from megatron.core import parallel_state as ps
from megatron.core.pipeline_parallel import get_forward_backward_func
from megatron.core.transformer.module import Float16Module

from qwen_hpc.model.config import ModelConfig
from qwen_hpc.parallel import compute_device, model_parallel
from qwen_hpc.training import checkpoint as ckpt
from qwen_hpc.training.config import TrainConfig
from qwen_hpc.training.data import Blend, MicroBatchIterator, SplitSizes, build_datasets, split_sizes
from qwen_hpc.training.loop import build_stage_model
from qwen_hpc.training.step import StepContext, causal_mask, evaluate_loss

log = logging.getLogger(__name__)


def validation_perplexity(
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    blend: Blend,
    *,
    eod_id: int,
    n_vocab: int,
    checkpoint_dir: Path,
    eval_iters: int,
    micro_batch_size: int,
    index_cache_dir: Path | None = None,
) -> dict[str, float]:
    """{"loss", "perplexity", "tokens", "iteration"} on `eval_iters × micro_batch_size × dp` validation samples.

    Every rank calls it; the torch.distributed default group must be initialised (as for `pretrain`).
    """
    if eval_iters <= 0 or micro_batch_size <= 0:
        raise ValueError(f"eval_iters={eval_iters} and micro_batch_size={micro_batch_size} must be positive")
    checkpoint_dir = Path(checkpoint_dir)
    with model_parallel(train_cfg.tensor_model_parallel_size, train_cfg.pipeline_model_parallel_size):
        return _evaluate(
            model_cfg,
            train_cfg,
            blend,
            eod_id,
            n_vocab,
            checkpoint_dir,
            eval_iters,
            micro_batch_size,
            index_cache_dir,
        )


def _evaluate(
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    blend: Blend,
    eod_id: int,
    n_vocab: int,
    checkpoint_dir: Path,
    eval_iters: int,
    micro_batch_size: int,
    index_cache_dir: Path | None,
) -> dict[str, float]:
    model, config, bf16, _, _ = build_stage_model(model_cfg, train_cfg, n_vocab)
    path, iteration = ckpt.load_weights(checkpoint_dir, model)
    log.info("evaluating %s (iteration %d)", path, iteration)
    dp, dp_rank = ps.get_data_parallel_world_size(), ps.get_data_parallel_rank()
    sizes = SplitSizes(train=split_sizes(train_cfg).train, valid=eval_iters * micro_batch_size * dp)
    cache_dir = index_cache_dir or checkpoint_dir.parent / "index_cache"
    _, valid = build_datasets(
        model_cfg, train_cfg, blend, eod_id=eod_id, n_vocab=n_vocab, cache_dir=cache_dir, sizes=sizes
    )
    if valid is None:
        raise ValueError(f"train.split={train_cfg.split!r} has no validation part")
    device = compute_device()
    ctx = StepContext(
        ddp_model=Float16Module(config, model) if bf16 else model,
        optimizer=None,
        scheduler=None,
        forward_backward=get_forward_backward_func(),
        num_microbatches=1,
        micro_batch_size=micro_batch_size,
        seq_length=model_cfg.seq_length,
        mask=causal_mask(model_cfg.seq_length, device),
        device=device,
    )
    data = MicroBatchIterator(valid, micro_batch_size=micro_batch_size, dp_rank=dp_rank, dp_size=dp)
    result = evaluate_loss(ctx, data, eval_iters)
    return {**result, "iteration": iteration}
