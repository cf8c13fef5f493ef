"""The body of the stages that run the pretraining loop (`pretrain`, `code_pretrain`): one place for what
they share, so a fix to it reaches both. Not a stage: the stage modules import it as they import `base`."""

from __future__ import annotations

from pathlib import Path

from qwen_hpc.config.schema import QwenConfig
from qwen_hpc.model.config import ModelConfig
from qwen_hpc.stages.base import StageContext, StageResult
from qwen_hpc.training.config import OptimizerConfig, TrainConfig


def train_stage(cfg: QwenConfig, ctx: StageContext, model: ModelConfig, train: TrainConfig,
                optimizer: OptimizerConfig, blend: tuple[list, int, int], init: Path | None,
                metrics: dict) -> StageResult:
    """The body every pretraining-loop stage shares (pretrain, code_pretrain): the folder describes itself
    (export_hf and init_checkpoint read it alone), the index caches are built in their own process, then
    `training.loop.pretrain`; `metrics` are the stage's own additions to the result's."""
    from qwen_hpc import outputs
    from qwen_hpc.interop.folder import write_folder_description
    from qwen_hpc.launch.array import spawn_apart
    from qwen_hpc.training.index_cache import prepare_index_caches
    from qwen_hpc.training.loop import pretrain

    pairs, eod_id, n_vocab = blend
    if ctx.rank == 0:
        files = outputs.tokenizer_files(ctx.stage_path("tokenizer"), cfg.tokenizer.name)
        write_folder_description(ctx.stage_dir, model, files if files.ranks.is_file() else None)
    # GPTDataset's index caches: their own single-process CPU step, before distributed training starts
    cache_dir = ctx.stage_dir / "index_cache"
    prepare_index_caches(model, train, pairs, eod_id=eod_id, n_vocab=n_vocab, cache_dir=cache_dir,
                         submit=spawn_apart)
    wandb_id_file = ctx.stage_dir / "wandb_run_id"
    extra = {
        "config_hash": ctx.config_hash,
        "wandb_run_id": wandb_id_file.read_text().strip() if wandb_id_file.exists() else None,
    }
    result = pretrain(model, train, optimizer, pairs, eod_id=eod_id, n_vocab=n_vocab, out_dir=ctx.stage_dir,
                      tracker=ctx.tracker, should_stop=ctx.should_stop, extra_state=extra,
                      index_cache_dir=cache_dir, init_checkpoint=init)
    if result.status == "failed":
        raise RuntimeError(f"stage {ctx.name} failed at iteration {result.iteration}: {result.metrics}")
    summary = {
        "iteration": result.iteration,
        "consumed_samples": result.consumed_samples,
        "first_loss": result.first_loss,
        "last_loss": result.last_loss,
        "resumed_from": result.resumed_from,
        "world_size": ctx.world_size,
        **metrics,
    }
    summary.update({k: v for k, v in result.metrics.items() if k not in summary})
    recorded = {"checkpoints": str(outputs.checkpoints_dir(ctx.stage_dir)), "checkpoint": str(result.checkpoint)}
    return StageResult(result.status, metrics=summary, outputs=recorded)
