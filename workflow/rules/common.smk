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


def upstream(stage):
    """The markers of the stages `stage` reads: its module's UPSTREAM, so the DAG and the code are one fact.

    Read from the module's source (`UPSTREAM = (...)`, a literal) rather than by importing it, so that
    planning the DAG does not import torch."""
    import ast
    import importlib.util

    source = importlib.util.find_spec(f"qwen_hpc.stages.{stage}").origin
    for node in ast.parse(open(source, encoding="utf-8").read()).body:
        target = node.target if isinstance(node, ast.AnnAssign) else (node.targets[0] if isinstance(node, ast.Assign) else None)
        if isinstance(target, ast.Name) and target.id == "UPSTREAM":
            return [marker(name) for name in ast.literal_eval(node.value)]
    raise ValueError(f"{source} has no UPSTREAM")


def stage_log(stage):
    return f"{RUNS}/{RUN_NAME}/logs/{stage}.log"
