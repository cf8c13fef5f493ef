# Shared settings of every rule: which experiment, which launcher, extra overrides.
from qwen_hpc.stages.plan import config_hashes, shell_command

EXPERIMENT = config.get("experiment", "tiny")
LAUNCHER = config.get("launcher", "local")
RUNS = config.get("runs", "runs")
OVERRIDES = config.get("overrides", "")
RUN_NAME = config.get("run_name", EXPERIMENT)

# The arguments every stage gets: the same experiment, launcher and run folder.
QWEN_ARGS = (
    f"experiment={EXPERIMENT} launcher={LAUNCHER} run.root={RUNS} run.name={RUN_NAME} {OVERRIDES}"
)


# Snakemake reruns a job whose params changed, and each stage's only param is its config hash (the part of
# the config that decides the stage's output, qwen_hpc/stages/base.py), so a knob that only says how a
# stage runs (workers, logging, resources, launcher ...) reruns nothing. A dependant reruns because its
# input marker is newer. The arguments go into the command text (shell_command), not a rerun trigger.
CONFIG_HASHES = config_hashes(QWEN_ARGS)


def marker(stage):
    return f"{RUNS}/{RUN_NAME}/{stage}/_SUCCESS.json"


def _literal(stage, name):
    """A module-level literal of a stage module (`UPSTREAM = (...)`), read from its source rather than by
    importing it, so that planning the DAG does not import torch."""
    import ast
    import importlib.util

    source = importlib.util.find_spec(f"qwen_hpc.stages.{stage}").origin
    for node in ast.parse(open(source, encoding="utf-8").read()).body:
        target = node.target if isinstance(node, ast.AnnAssign) else (node.targets[0] if isinstance(node, ast.Assign) else None)
        if isinstance(target, ast.Name) and target.id == name:
            return ast.literal_eval(node.value)
    return None


def upstream(stage):
    """The markers of the stages `stage` reads: its module's UPSTREAM, so the DAG and the code are one fact;
    plus those of its OPTIONAL_UPSTREAM that this experiment plans (`planned`: the report reads every
    branch that runs)."""
    names = _literal(stage, "UPSTREAM")
    if names is None:
        raise ValueError(f"qwen_hpc/stages/{stage}.py has no UPSTREAM")
    optional = [name for name in (_literal(stage, "OPTIONAL_UPSTREAM") or ()) if planned(name)]
    return [marker(name) for name in (*names, *optional)]


def stage_log(stage):
    return f"{RUNS}/{RUN_NAME}/logs/{stage}.log"


# ---------------------------------------------------------------------------------------------------------
# The composed config of this experiment (the same Hydra composition every `qwen-hpc <stage>` does): which
# branches `rule all` builds (`recipe.*` in the experiment file) and each rule's resources (the stage's
# `resources` over the launcher's), so `snakemake -n --profile slurm` shows what each stage will ask Slurm for.
def _compose():
    import shlex

    from qwen_hpc.config.compose import load

    _, typed = load([f"experiment={EXPERIMENT}", f"launcher={LAUNCHER}", *shlex.split(OVERRIDES)])
    return typed


CFG = _compose()


def stage_exists(stage):
    """A stage module in this checkout (reward_model/ppo arrive with the RLHF work)."""
    import importlib.util

    return importlib.util.find_spec(f"qwen_hpc.stages.{stage}") is not None


def stage_resources(stage):
    """nodes, tasks, GPUs (all nodes), CPUs per task, memory and time limit (minutes) of the stage's job."""
    from qwen_hpc.launch.submit import effective_launcher

    launcher = effective_launcher(CFG.launcher, getattr(CFG, stage).resources)
    return {
        "nodes": launcher.nodes,
        "tasks": launcher.nodes * launcher.tasks_per_node,
        "gpus": launcher.nodes * launcher.gpus_per_node,
        "cpus_per_task": launcher.cpus_per_task,
        "mem_gb": int(launcher.mem_gb or 0),
        "runtime": launcher.timeout_min,
    }


def check_before_submission(stages):
    """The pre-submission checks of every planned stage (`qwen_hpc.stages.preflight`: parallel layouts
    against the stage's resources, input files, benchmark data) while the DAG is planned, so a dry run
    already fails on a layout that could not run."""
    from qwen_hpc.stages.preflight import PreflightError, preflight

    problems = []
    for stage in stages:
        try:
            preflight(stage, CFG)
        except PreflightError as exc:
            problems.append(f"{stage}: {exc}")
    if problems:
        raise ValueError("pre-submission checks failed:\n  " + "\n  ".join(problems))


def _planned_by_the_recipe():
    """`qwen_hpc.stages.plan.planned_stages`: the one answer `qwen-hpc validate` gives too. A branch left out
    for want of its data (`recipe.missing_data=skip`) is said on stderr, with what is missing."""
    import sys

    from qwen_hpc.stages.plan import left_out_branches, left_out_lines, planned_stages

    left_out = left_out_branches(CFG)
    for line in left_out_lines(left_out):
        print(line, file=sys.stderr)
    return set(planned_stages(CFG, left_out))


PLANNED_BY_RECIPE = _planned_by_the_recipe()


def planned(stage):
    """Whether the `all` target builds `stage` for this experiment: the recipe plans it (on-demand stages and
    switched-off or data-less branches excluded), and this checkout has its module and rule file."""
    from pathlib import Path

    if stage not in PLANNED_BY_RECIPE or not stage_exists(stage):
        return False
    return (Path(workflow.basedir) / "rules" / f"{stage}.smk").is_file()
