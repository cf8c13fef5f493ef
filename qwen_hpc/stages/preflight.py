"""Checks that must pass before a job is submitted: a missing input or an impossible parallel layout is a
config error, not a job failure (or a hung 512-GPU allocation)."""

from __future__ import annotations

from qwen_hpc.config.schema import QwenConfig


class PreflightError(ValueError):
    pass


def job_world_size(cfg: QwenConfig, stage: str) -> int:
    """Tasks the stage's job will have: nodes × tasks per node after the stage's resource overrides
    (the debug launcher runs the stage in this process: one task, or every task of the `srun` step it is
    part of — `sbatch --ntasks=N slurm/stage.sbatch` — whose world is the allocation's)."""
    from qwen_hpc.launch.distributed import srun_world_size
    from qwen_hpc.launch.submit import effective_launcher

    launcher = effective_launcher(cfg.launcher, getattr(cfg, stage).resources)
    if launcher.kind == "debug":
        return srun_world_size() or 1
    return launcher.nodes * launcher.tasks_per_node


def check_training_layout(stage: str, cfg: QwenConfig) -> None:
    """TP/PP/DP of `pretrain` and `sft` (and of `evaluate`, which loads the model in the same layout)."""
    from qwen_hpc.training.config import check_model_parallel, check_parallel_layout

    train, world = cfg.pretrain.train, None
    try:
        world = job_world_size(cfg, stage)
        if stage == "pretrain":
            check_parallel_layout(train, cfg.pretrain.optimizer, world, model=cfg.model)
        elif stage == "sft":
            check_parallel_layout(cfg.sft.train, cfg.sft.optimizer, world, model=cfg.model)
        else:
            check_model_parallel(cfg.model, train)
            if world % train.model_parallel_size:
                raise ValueError(
                    f"world size {world} must be divisible by train.tensor_model_parallel_size="
                    f"{train.tensor_model_parallel_size} × train.pipeline_model_parallel_size="
                    f"{train.pipeline_model_parallel_size}"
                )
    except ValueError as exc:
        raise PreflightError(
            f"parallel layout of stage {stage} (world size {world} = {stage}.resources/launcher nodes × "
            f"tasks_per_node): {exc}"
        ) from exc


def preflight(stage: str, cfg: QwenConfig) -> None:
    if stage == "data":
        from qwen_hpc.data.config import check_sources

        try:
            check_sources(cfg.data)
        except (FileNotFoundError, ValueError) as exc:
            raise PreflightError(str(exc)) from exc
        if not cfg.data.sources and not cfg.data.embedded_corpus:
            raise PreflightError("data.sources is empty and data.embedded_corpus=false: no input text")
    if stage in ("pretrain", "evaluate", "sft"):
        check_training_layout(stage, cfg)
    if stage == "sft":
        from qwen_hpc.alignment.dataset import check_sft_sources

        try:
            check_sft_sources(cfg.sft)
        except FileNotFoundError as exc:
            raise PreflightError(str(exc)) from exc
    if stage == "evaluate":
        check_benchmarks(cfg)


def check_benchmarks(cfg: QwenConfig) -> None:
    """Every selected benchmark has its files under the data root (unless evaluate.missing_data=skip) and a
    prompt for the selected mode."""
    from qwen_hpc.evaluation.suite import MissingBenchmarkData
    from qwen_hpc.stages.evaluate import benchmark_tasks

    try:
        benchmark_tasks(cfg)
    except (MissingBenchmarkData, ValueError) as exc:
        raise PreflightError(f"evaluate: {exc}") from exc
