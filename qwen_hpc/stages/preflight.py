"""Checks that must pass before a job is submitted: a missing input or an impossible parallel layout is a
config error, not a job failure (or a hung 512-GPU allocation).

Two kinds of problem, found by the same functions for `qwen-hpc <stage>` and `qwen-hpc validate`:
- `config_problems`: the settings cannot work (layout divisibility, launcher/Slurm settings);
- `input_problems`: something the stage reads is not there yet (source files, a vocabulary, a checkpoint,
  an upstream stage's output). `validate --no-inputs` reports these without failing.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from qwen_hpc.config.launcher import LauncherConfig
from qwen_hpc.config.schema import QwenConfig

# sbatch options with a first-class launcher key: given again in additional_sbatch they conflict
_FIRST_CLASS_SBATCH = {
    "time": "timeout_min", "nodes": "nodes", "ntasks-per-node": "tasks_per_node", "partition": "partition",
    "account": "account", "qos": "qos", "mem": "mem_gb", "gpus-per-node": "gpus_per_node",
    "cpus-per-task": "cpus_per_task", "signal": "signal_delay_s",
}


# stages that run the model on a TP/PP/DP layout
TRAINING_LAYOUT_STAGES = ("pretrain", "evaluate", "sft", "math_evaluate", "code_pretrain", "code_sft", "math_sft")
# the Code-Qwen / Math-Qwen stages that train with a section of their own (spec §10-11)
TRAINING_BRANCHES = ("code_pretrain", "code_sft", "math_sft")
SFT_STAGES = ("sft", "code_sft", "math_sft")
# RLHF stages: whole-model data-parallel replicas (qwen_hpc.parallel.replicas) on the job's ranks
RLHF_STAGES = ("reward_model_pmp", "reward_model", "ppo")


def _branch_model(cfg: QwenConfig, section: object):  # noqa: ANN202 - ModelConfig with the branch's context
    import dataclasses

    changes = {k: getattr(section, k) for k in ("seq_length", "rotary_base") if getattr(section, k, None)}
    return dataclasses.replace(cfg.model, **changes) if changes else cfg.model


def _as_evaluate(stage: str, cfg: QwenConfig) -> QwenConfig:
    """math_evaluate runs the evaluate stage's code with its own section."""
    import dataclasses

    return dataclasses.replace(cfg, evaluate=cfg.math_evaluate) if stage == "math_evaluate" else cfg


class PreflightError(ValueError):
    pass


def stage_launcher(cfg: QwenConfig, stage: str) -> LauncherConfig:
    """The launcher the stage's job gets: `launcher` after the stage's own `resources`."""
    from qwen_hpc.launch.submit import effective_launcher

    return effective_launcher(cfg.launcher, getattr(cfg, stage).resources)


def job_world_size(cfg: QwenConfig, stage: str) -> int:
    """Tasks the stage's job will have: nodes × tasks per node after the stage's resource overrides
    (the debug launcher runs the stage in this process: one task, or every task of the `srun` step it is
    part of — `sbatch --ntasks=N slurm/stage.sbatch` — whose world is the allocation's)."""
    from qwen_hpc.launch.distributed import srun_world_size

    launcher = stage_launcher(cfg, stage)
    if launcher.kind == "debug":
        return srun_world_size() or 1
    return launcher.nodes * launcher.tasks_per_node


def check_training_layout(stage: str, cfg: QwenConfig) -> None:
    """TP/PP/DP of `pretrain` and `sft` (and of `evaluate`, which loads the model in the same layout)."""
    from qwen_hpc.training.config import check_parallel_layout

    train, world = cfg.pretrain.train, None
    try:
        world = job_world_size(cfg, stage)
        if stage == "pretrain":
            check_parallel_layout(train, cfg.pretrain.optimizer, world, model=cfg.model)
        elif stage == "sft":
            check_parallel_layout(cfg.sft.train, cfg.sft.optimizer, world, model=cfg.model)
        elif stage in TRAINING_BRANCHES:  # their own train/optimizer sections and context
            section = getattr(cfg, stage)
            check_parallel_layout(section.train, section.optimizer, world, model=_branch_model(cfg, section))
        else:
            check_evaluate_layout(stage, _as_evaluate(stage, cfg), world)
    except ValueError as exc:
        raise PreflightError(
            f"parallel layout of stage {stage} (world size {world} = {stage}.resources/launcher nodes × "
            f"tasks_per_node): {exc}"
        ) from exc


def _evaluated_model(cfg: QwenConfig):  # noqa: ANN202 - the ModelConfig of the model evaluate loads
    """`model`, or the model config an external `evaluate.checkpoint` (import_hf / HF folder) describes."""
    from qwen_hpc.stages.evaluate import _external

    path = Path(cfg.evaluate.checkpoint) if cfg.evaluate.checkpoint else None
    if path is not None and _external(path):
        from qwen_hpc.inference.loading import open_model_config

        return open_model_config(path), f"the model of {path}"
    return cfg.model, "model"


def check_evaluate_layout(stage: str, cfg: QwenConfig, world: int) -> None:
    """evaluate's TP/PP (`evaluate.tensor_model_parallel_size` / `pipeline_model_parallel_size`, null:
    pretrain.train's) must split the evaluated model and the job's ranks; an HF folder only loads whole."""
    from qwen_hpc.stages.evaluate import benchmark_layout_problem

    ev = cfg.evaluate
    tp, pp = ev.layout(cfg.pretrain.train)
    own = ev.tensor_model_parallel_size is not None, ev.pipeline_model_parallel_size is not None
    tp_key = f"{stage}.tensor_model_parallel_size" if own[0] else "pretrain.train.tensor_model_parallel_size"
    pp_key = f"{stage}.pipeline_model_parallel_size" if own[1] else "pretrain.train.pipeline_model_parallel_size"
    model, what = _evaluated_model(cfg)
    for name, value in _tensor_parallel_split_sizes(model).items():
        if value % tp:
            raise ValueError(f"{tp_key}={tp} must divide {what}'s {name}={value}")
    if model.num_layers % pp:
        raise ValueError(f"{pp_key}={pp} must divide {what}'s num_layers={model.num_layers}")
    if world % (tp * pp):
        raise ValueError(f"world size {world} must be divisible by {tp_key}={tp} × {pp_key}={pp}")
    problem = benchmark_layout_problem(cfg, stage)
    if problem:
        raise ValueError(problem)


def _tensor_parallel_split_sizes(model) -> dict[str, int]:  # noqa: ANN001 - a ModelConfig
    """The model dimensions tensor parallelism shards, so TP must divide each."""
    sizes = {"num_attention_heads": model.num_attention_heads, "ffn_hidden_size": model.ffn_hidden_size}
    if model.padded_vocab_size is not None:
        sizes["padded_vocab_size"] = model.padded_vocab_size
    return sizes


def check_rlhf_layout(stage: str, cfg: QwenConfig) -> None:
    """The RLHF stages' layout (`<stage>.tensor_model_parallel_size` / `pipeline_model_parallel_size`, null:
    pretrain.train's): TP splits the model and the job's ranks, PP = 1 (the loops run no pipeline schedule),
    and every data-parallel replica (world / TP of them) gets an equal, non-empty share of each batch
    (reward pairs per step, PPO prompts and ptx rows per step)."""
    section = getattr(cfg, stage)
    world = job_world_size(cfg, stage)
    tp, pp = section.layout(cfg.pretrain.train)
    where = f"parallel layout of stage {stage} (world size {world} = {stage}.resources/launcher nodes × tasks_per_node)"

    def key(name: str, value: int) -> str:
        if getattr(section, name) is not None:
            return f"{stage}.{name}={value}"
        return f"pretrain.train.{name}={value} (inherited: {stage}.{name} is null)"

    if pp != 1:
        raise PreflightError(
            f"{where}: {key('pipeline_model_parallel_size', pp)}, but the RLHF stages run PP = 1 (the four "
            f"models are sharded by TP only): set {stage}.pipeline_model_parallel_size=1"
        )
    for name, value in _tensor_parallel_split_sizes(cfg.model).items():
        if value % tp:
            raise PreflightError(f"{where}: {key('tensor_model_parallel_size', tp)} must divide model's {name}={value}")
    if world % tp:
        raise PreflightError(f"{where}: world size {world} must be divisible by {key('tensor_model_parallel_size', tp)}")
    handed = {"reward_model": ("reward_model_pmp", "init_checkpoint"), "ppo": ("reward_model", "reward_checkpoint")}
    if stage in handed and not getattr(section, handed[stage][1]):  # starts from the upstream RLHF checkpoint
        up = handed[stage][0]
        up_tp = getattr(cfg, up).layout(cfg.pretrain.train)[0]
        if up_tp != tp:
            up_key = (f"{up}.tensor_model_parallel_size={up_tp}" if getattr(cfg, up).tensor_model_parallel_size
                      else f"{up_tp} (pretrain.train's: {up}.tensor_model_parallel_size is null)")
            raise PreflightError(
                f"{where}: {key('tensor_model_parallel_size', tp)}, but it starts from the {up} checkpoint written "
                f"at TP {up_key}: an RLHF checkpoint loads at the TP size that wrote it (give both stages one TP)"
            )
    replicas = world // tp
    checks = [("batch_size", section.batch_size)] if stage != "ppo" else [("prompts_per_step", section.prompts_per_step)]
    if stage == "ppo" and section.ptx_coef > 0:
        checks.append(("ptx_batch_size", section.ptx_batch_size))
    if stage == "ppo" and section.train_batch_size:
        checks.append(("train_batch_size", section.train_batch_size))
    for name, value in checks:
        if value % replicas:
            raise PreflightError(
                f"{where}: {stage}.{name}={value} must be divisible by the {replicas} data-parallel replicas "
                f"(world {world} / TP {tp}; each takes an equal share of every step)"
            )


def _slurm_partitions() -> set[str] | None:
    """Partitions the Slurm controller knows, or None when it cannot be asked (no sinfo, no answer)."""
    if shutil.which("sinfo") is None:
        return None
    try:
        proc = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    return {line.strip().rstrip("*") for line in proc.stdout.splitlines() if line.strip()}


def launcher_problems(stage: str, cfg: QwenConfig) -> list[str]:
    """Launcher settings this stage's job cannot run with."""
    launcher, problems = stage_launcher(cfg, stage), []
    where = f"launcher (after {stage}.resources)"
    distributed = stage in TRAINING_LAYOUT_STAGES or stage in RLHF_STAGES
    if launcher.kind == "local" and launcher.nodes > 1:
        problems.append(f"{where}: nodes={launcher.nodes} needs launcher=slurm (the local launcher has one node)")
    if distributed and 0 < launcher.gpus_per_node < launcher.tasks_per_node:
        problems.append(
            f"{where}: tasks_per_node={launcher.tasks_per_node} > gpus_per_node={launcher.gpus_per_node}: "
            "two ranks would share a GPU (NCCL refuses)"
        )
    if launcher.kind != "slurm":
        return problems
    if shutil.which("sbatch") is None:
        problems.append(f"{where}: launcher=slurm but `sbatch` is not on PATH (not a Slurm submit host?)")
    for key in launcher.additional_sbatch:
        name = key.lstrip("-").replace("_", "-")
        if name in _FIRST_CLASS_SBATCH:
            problems.append(
                f"{where}: additional_sbatch.{key} duplicates launcher.{_FIRST_CLASS_SBATCH[name]}; set that instead"
            )
    if launcher.partition:
        known = _slurm_partitions()
        if known is not None and launcher.partition not in known:
            problems.append(
                f"{where}: partition={launcher.partition!r} is not a Slurm partition here "
                f"(sinfo lists: {', '.join(sorted(known)) or 'none'})"
            )
    return problems


def config_problems(stage: str, cfg: QwenConfig) -> list[str]:
    """Settings of this stage that cannot work, whatever is on disk."""
    problems = []
    if stage in TRAINING_LAYOUT_STAGES:
        try:
            check_training_layout(stage, cfg)
        except PreflightError as exc:
            problems.append(str(exc))
    if stage in RLHF_STAGES:
        try:
            check_rlhf_layout(stage, cfg)
        except PreflightError as exc:
            problems.append(str(exc))
    if stage in ("evaluate", "math_evaluate"):
        from qwen_hpc.evaluation.suite import MissingBenchmarkData

        try:
            check_benchmarks(_as_evaluate(stage, cfg))
        except MissingBenchmarkData:
            pass  # an input problem (input_problems)
        except PreflightError as exc:
            problems.append(str(exc))
    if stage == "data" and not cfg.data.sources and not cfg.data.embedded_corpus:
        problems.append("data.sources is empty and data.embedded_corpus=false: no input text")
    return problems + launcher_problems(stage, cfg)


def _source_files(stage: str, cfg: QwenConfig) -> str | None:
    """The stage's own input files: data/SFT sources, benchmark files, the vocabulary to extend or load."""
    try:
        if stage == "data":
            from qwen_hpc.data.config import check_sources

            check_sources(cfg.data)
        elif stage in SFT_STAGES:
            from qwen_hpc.alignment.dataset import check_sft_sources

            check_sft_sources(getattr(cfg, stage), key=stage)
        elif stage in ("evaluate", "math_evaluate"):
            check_benchmarks(_as_evaluate(stage, cfg))
        elif stage == "tokenizer" and cfg.tokenizer.kind in ("extend", "load"):
            from qwen_hpc.tokenizer.config import resolve_path

            try:
                resolve_path(cfg.tokenizer.ranks_file)
            except FileNotFoundError as exc:
                return f"tokenizer.ranks_file: {exc}"
    except PreflightError:
        return None  # a config problem (config_problems)
    except (FileNotFoundError, ValueError) as exc:
        return str(exc)  # names its key; callers that check several stages put the stage in front
    return None


def input_problems(stage: str, cfg: QwenConfig) -> list[str]:
    """Files this stage reads that are not there (upstream stages' outputs are checked by the caller)."""
    problems = [p for p in [_source_files(stage, cfg)] if p]
    if stage == "import_hf" and not cfg.import_hf.hf_path:
        problems.append("import_hf.hf_path is empty: give the Hugging Face folder (hf_path=<dir>)")
    paths = {
        "import_hf": ("import_hf.hf_path", cfg.import_hf.hf_path),
        "export_hf": ("export_hf.checkpoint", cfg.export_hf.checkpoint),
        "long_context": ("long_context.checkpoint", cfg.long_context.checkpoint),
        "evaluate": ("evaluate.checkpoint", cfg.evaluate.checkpoint),
    }
    if stage in paths and paths[stage][1] and not Path(paths[stage][1]).expanduser().exists():
        problems.append(f"{paths[stage][0]}={paths[stage][1]}: no such file or folder")
    return problems


def check_benchmarks(cfg: QwenConfig) -> None:
    """Every selected benchmark has its files under the data root (unless evaluate.missing_data=skip) and a
    prompt for the selected mode. Missing files raise MissingBenchmarkData (an input problem), anything
    else PreflightError."""
    from qwen_hpc.evaluation.suite import MissingBenchmarkData
    from qwen_hpc.stages.evaluate import benchmark_tasks

    try:
        benchmark_tasks(cfg)
    except MissingBenchmarkData:
        raise
    except ValueError as exc:
        raise PreflightError(f"evaluate: {exc}") from exc


def preflight(stage: str, cfg: QwenConfig) -> None:
    """Raise PreflightError listing every problem of this stage: what `qwen-hpc <stage>` runs before submitting."""
    problems = config_problems(stage, cfg) + input_problems(stage, cfg)
    if problems:
        raise PreflightError("\n".join(problems))
