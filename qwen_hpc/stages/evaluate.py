"""Stage `evaluate`: validation perplexity of the pretrained model on the held-out split of its blend."""

from __future__ import annotations

from qwen_hpc.config.schema import QwenConfig
from qwen_hpc.stages.base import StageContext, StageResult

NAME = "evaluate"
DESCRIPTION = "validation perplexity of the latest pretrain checkpoint on the held-out split"
CONFIG_KEYS = ("evaluate",)
UPSTREAM = ("pretrain",)
DISTRIBUTED = True


def run(cfg: QwenConfig, ctx: StageContext) -> StageResult:
    from qwen_hpc.evaluation.perplexity import validation_perplexity
    from qwen_hpc.stages.tokens import read_blend
    from qwen_hpc.utils.io import write_json

    blend, eod_id, n_vocab = read_blend(ctx.stage_path("tokens"))
    scores = validation_perplexity(
        cfg.model,
        cfg.pretrain.train,
        blend,
        eod_id=eod_id,
        n_vocab=n_vocab,
        checkpoint_dir=ctx.stage_path("pretrain") / "checkpoints",
        eval_iters=cfg.evaluate.eval_iters,
        micro_batch_size=cfg.evaluate.micro_batch_size,
        index_cache_dir=ctx.stage_dir / "index_cache",
    )
    if ctx.rank == 0:
        write_json(ctx.stage_dir / "perplexity.json", scores)
        ctx.tracker.log({f"val/{k}": v for k, v in scores.items()})
    return StageResult(
        "completed", metrics=scores, outputs={"scores": str(ctx.stage_dir / "perplexity.json")}
    )
