"""`qwen-hpc <stage> [hydra overrides]`: compose, validate, then run or submit one stage of the recipe.

Extra commands: `qwen-hpc validate [stage ...] [--no-inputs] [overrides]` runs every pre-submission check
without running anything; `--cfg job` (or `--cfg all`) prints the composed config, as Hydra apps do.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

from qwen_hpc.config.compose import ConfigError, load
from qwen_hpc.config.schema import QwenConfig
from qwen_hpc.stages.registry import COMMAND_ALIASES, STAGE_NAMES, UnknownStageError, descriptions

# exit statuses (README, "Preemption"): 3 = saved after a signal, rerun/requeue resumes; 4 = the stage's
# job was cancelled (scancel); 5 = refused: another live job owns the stage folder
EXIT_OK, EXIT_FAILED, EXIT_BAD_CONFIG, EXIT_PREEMPTED, EXIT_CANCELLED, EXIT_BUSY = 0, 1, 2, 3, 4, 5


def _usage() -> str:
    lines = [
        "usage: qwen-hpc <stage|validate> [--cfg job|all] [key=value ...]",
        "",
        "The Qwen (arXiv:2309.16609) recipe as jobs. Stages, in DAG order:",
    ]
    for name, text in descriptions().items():
        lines.append(f"  {name:<10} {text}")
    lines += [
        "",
        "Other commands:",
        "  validate   [stage ...] [--no-inputs]: every pre-submission check of those stages (default: the",
        "             DAG): config, layout, launcher/Slurm, inputs (--no-inputs: reported, not fatal); runs nothing",
        "  generate   sample from an HF or import_hf folder: generate model=<dir> prompt='...' (see --help)",
        "  chat       an interactive ChatML conversation with a model (see chat --help)",
        "  agent      a ReAct agent with tools: agent model=<dir> tools=calculator,code_interpreter",
        "  export-hf / import-hf are the stages export_hf / import_hf; their own keys may be given bare",
        "             (export-hf checkpoint=<dir> output=<dir> [tokenizer=<dir>], import-hf hf_path=<dir> tp=2)",
        "  describe   model=<name>: JSON with the model's dimensions and parameter counts",
        "",
        "Options:",
        "  --cfg job  print the composed config and exit (--cfg all adds nothing more here)",
        "  -h/--help  this text",
        "",
        "Overrides are Hydra syntax: experiment=tiny launcher=slurm launcher.partition=gpu",
        "pretrain.train.train_iters=100 model=tiny logger=none run.name=myexp",
    ]
    return "\n".join(lines)


def _split_args(argv: list[str]) -> tuple[str | None, list[str]]:
    print_cfg = None
    rest: list[str] = []
    it = iter(argv)
    for arg in it:
        if arg in ("--cfg", "-c"):
            print_cfg = next(it, "job")
        elif arg.startswith("--cfg="):
            print_cfg = arg.split("=", 1)[1]
        elif arg == "--resolve":
            continue
        else:
            rest.append(arg)
    return print_cfg, rest


def _stage_short_forms(stage: str, overrides: list[str]) -> list[str]:
    """`export-hf output=x` means `export_hf.output=x`: a bare key of the stage's own config section
    is taken as that section's key, unless it names a config group (`model=`, `launcher=`, ...). A bare
    `tokenizer=<dir>` is export_hf's tokenizer: the `tokenizer` section itself takes no plain value."""
    if stage not in COMMAND_ALIASES.values():
        return overrides
    import dataclasses

    from qwen_hpc.config.schema import QwenConfig

    groups = {"experiment", "model", "launcher", "logger", "run"}
    top = {f.name for f in dataclasses.fields(QwenConfig)} - {"tokenizer"} | groups
    section = {f.name: f for f in dataclasses.fields(QwenConfig)}[stage]
    own = {f.name for f in dataclasses.fields(section.default_factory())} - top  # type: ignore[misc]
    out = []
    for item in overrides:
        key = item.split("=", 1)[0]
        out.append(f"{stage}.{item}" if "=" in item and key in own else item)
    return out


def _absolutize(plain: dict, typed: QwenConfig) -> None:
    """Jobs may start in another directory: pin every run path to where the user invoked us (in the
    plain config a job receives and in this process's typed one alike)."""
    run = plain["run"]
    for key in ("root", "data_root"):
        run[key] = str(Path(run[key]).expanduser().resolve())
        setattr(typed.run, key, run[key])


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return EXIT_OK if argv else EXIT_BAD_CONFIG
    if argv[0] in ("generate", "chat"):
        from qwen_hpc.inference.cli import main as inference_main

        return inference_main(argv[0], argv[1:])
    if argv[0] == "agent":
        from qwen_hpc.agents.cli import main as agent_main

        return agent_main(argv[1:])
    command, print_cfg, overrides = argv[0], *_split_args(argv[1:])
    command = COMMAND_ALIASES.get(command, command)
    overrides = _stage_short_forms(command, overrides)
    if command == "describe":
        return _describe(overrides)
    validate_stages, check_inputs = [], True
    if command == "validate":
        check_inputs = "--no-inputs" not in overrides
        named = [COMMAND_ALIASES.get(a, a) for a in overrides if a != "--no-inputs" and "=" not in a]
        unknown = [a for a in named if a not in STAGE_NAMES]
        if unknown:
            print(f"qwen-hpc validate: unknown stage(s) {unknown}; stages: {', '.join(STAGE_NAMES)}", file=sys.stderr)
            return EXIT_BAD_CONFIG
        validate_stages = named
        overrides = [a for a in overrides if a != "--no-inputs" and "=" in a]
    if command not in (*STAGE_NAMES, "validate"):
        print(f"qwen-hpc: unknown stage {command!r}\n\n{_usage()}", file=sys.stderr)
        return EXIT_BAD_CONFIG

    from qwen_hpc.launch.job import setup_logging

    setup_logging()
    try:
        plain, typed = load(overrides)
    except ConfigError as exc:
        print(f"qwen-hpc: invalid config: {exc}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    if print_cfg:
        from omegaconf import OmegaConf

        print(OmegaConf.to_yaml(plain), end="")
        return EXIT_OK
    _absolutize(plain, typed)
    if command == "validate":
        return _validate(validate_stages, plain, typed, check_inputs=check_inputs)
    return _dispatch(command, plain, typed)


def _validate(stages: list[str], plain: dict, cfg: QwenConfig, *, check_inputs: bool) -> int:
    """`qwen-hpc validate [stage ...] [--no-inputs] [overrides]`: every check a stage makes before it submits
    anything, for the named stages (default: the whole DAG), without running or writing anything.

    Impossible settings (layout, launcher/Slurm) fail; missing inputs (source files, vocabularies, an
    upstream stage's output not produced by a stage validated with it) fail too, unless `--no-inputs`,
    which reports them and passes. The whole DAG is what `snakemake` plans (`plan.planned_stages`): a
    branch that `recipe.missing_data=skip` leaves out for want of its data is reported, not checked."""
    from qwen_hpc.stages.base import MARKER, stage_dir, upstream_lineages
    from qwen_hpc.stages.plan import left_out_branches, left_out_lines, planned_stages
    from qwen_hpc.stages.preflight import config_problems, input_problems
    from qwen_hpc.stages.registry import get_stage

    left_out: dict[str, list[str]] = {}
    if not stages:
        left_out = left_out_branches(cfg)
        planned = planned_stages(cfg, left_out)
        stages = [s for s in STAGE_NAMES if s in planned or (s == "import_hf" and cfg.import_hf.hf_path)]
        for line in left_out_lines(left_out):
            print(f"qwen-hpc: {line}", file=sys.stderr)
    errors, missing = [], []
    for stage in stages:
        errors += [f"{stage}: {p}" for p in config_problems(stage, cfg)]
        missing += [f"{stage}: {p}" for p in input_problems(stage, cfg)]
        try:  # what the stage will read, as the runner checks it (evaluate of a model folder reads no stage)
            inputs = upstream_lineages(get_stage(stage), cfg)
        except FileNotFoundError as exc:  # the folder the config names is not there
            missing.append(f"{stage}: {exc}")
            inputs = {}
        for up, lineage in inputs.items():
            if up in STAGE_NAMES and up not in stages and lineage is None:
                missing.append(f"{stage}: needs {up} first: no {stage_dir(cfg, up) / MARKER}")
    for line in errors + missing:
        print(f"qwen-hpc: {line}", file=sys.stderr)
    failed = bool(errors) or (check_inputs and bool(missing))
    report = {
        "config": "invalid" if failed else "ok",
        "experiment": cfg.run.name,
        "launcher": cfg.launcher.kind,
        "stages": stages,
        "left_out": {f"recipe.{switch}": why for switch, why in left_out.items()},
        "problems": errors,
        "missing_inputs": missing,
        "inputs_checked": check_inputs,
    }
    print(json.dumps(report))
    return EXIT_BAD_CONFIG if failed else EXIT_OK


def _describe(overrides: list[str]) -> int:
    """`qwen-hpc describe model=<name>`: parameter counts of the built model (meta device), as JSON."""
    try:
        _, typed = load(overrides)
    except ConfigError as exc:
        print(f"qwen-hpc: invalid config: {exc}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    from qwen_hpc.model.describe import describe_model

    print(json.dumps(describe_model(typed.model), indent=2))
    return EXIT_OK


def _dispatch(stage: str, plain: dict, cfg: QwenConfig) -> int:
    from qwen_hpc.config.compose import typed_config
    from qwen_hpc.launch import ownership
    from qwen_hpc.launch.job import StagePreempted, task_rank
    from qwen_hpc.launch.submit import StageCancelled, effective_launcher, run_inline, submit_and_wait
    from qwen_hpc.stages.base import stage_dir
    from qwen_hpc.stages.preflight import config_problems, input_problems
    from qwen_hpc.stages.runner import StageInputError, StageWork, check_ready

    log = logging.getLogger("qwen_hpc.cli")
    typed_config(plain, cfg)  # the debug launcher runs the stage in this process: it reuses this one
    problems = config_problems(stage, cfg) + input_problems(stage, cfg)
    try:
        up_to_date, lineage = check_ready(stage, plain, cfg)
    except (StageInputError, UnknownStageError) as exc:
        problems.append(str(exc))
    if problems:
        print("\n".join(f"qwen-hpc: {p}" for p in problems), file=sys.stderr)
        return EXIT_BAD_CONFIG
    if up_to_date:
        log.info("stage %s is up to date: nothing to do", stage)
        return EXIT_OK
    sdir = stage_dir(cfg, stage)
    launcher = effective_launcher(cfg.launcher, getattr(cfg, stage).resources)
    try:
        # under `srun` (slurm/stage.sbatch) every task runs this command: only task 0 prepares the folder
        token = _take_stage_folder(stage, cfg, lineage, launcher.kind) if task_rank() == 0 else None
    except ownership.StageBusy as exc:
        print(f"qwen-hpc: {exc}", file=sys.stderr)
        return EXIT_BUSY
    try:
        work = StageWork(stage, plain)
        if launcher.kind == "debug":
            result = run_inline(work)
        else:
            result = submit_and_wait(work, launcher, sdir, f"qwen-{cfg.run.name}-{stage}", token, label=stage)
    except KeyboardInterrupt:
        print(f"qwen-hpc: stage {stage} interrupted", file=sys.stderr)
        return 130
    except ownership.StageBusy as exc:
        print(f"qwen-hpc: {exc}", file=sys.stderr)
        return EXIT_BUSY
    except StagePreempted as exc:
        log.warning("%s", exc)
        return EXIT_PREEMPTED
    except StageCancelled as exc:
        print(f"qwen-hpc: {exc}", file=sys.stderr)
        return EXIT_CANCELLED
    except Exception as exc:  # noqa: BLE001 - any job failure becomes a clear non-zero exit
        print(f"qwen-hpc: stage {stage} failed:\n{exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        if token:  # the job has ended, whatever its outcome: the folder is free again
            ownership.release(sdir, token)
    log.info(
        "stage %s %s: %s", stage, result.get("status"), json.dumps(result.get("metrics", {}), default=str)
    )
    return EXIT_OK if result.get("status") in ("completed", "skipped") else EXIT_FAILED


def _take_stage_folder(stage: str, cfg, lineage: str, kind: str) -> str | None:
    """Refuse a folder another live job writes; else prepare it and (when submitting) lock it for the job
    we are about to submit. Returns the lock token to release when that job has ended."""
    from qwen_hpc.launch import ownership
    from qwen_hpc.launch.job import sbatch_token
    from qwen_hpc.stages.base import stage_dir
    from qwen_hpc.stages.runner import prepare_stage_dir

    sdir = stage_dir(cfg, stage)
    busy = ownership.read_lock(sdir)
    # never move aside (or write into) a folder another live job is writing
    if busy and not busy.get("unreadable") and busy.get("token") != sbatch_token(kind):
        if ownership.owner_liveness(busy).alive:
            ownership.acquire(sdir, {"token": ownership.new_token()})  # raises StageBusy naming the owner
    prepare_stage_dir(stage, cfg, lineage)
    if kind == "debug":  # the stage runs in this process and takes the lock itself
        return None
    token = ownership.new_token()
    ownership.acquire(sdir, {"token": token, "launcher": "process", "job_id": None, "pid": os.getpid(),
                             "submitter": True})
    return token


if __name__ == "__main__":
    sys.exit(main())
