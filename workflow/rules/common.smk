# Shared settings of every rule: which experiment, which launcher, extra overrides.
EXPERIMENT = config.get("experiment", "tiny")
LAUNCHER = config.get("launcher", "local")
RUNS = config.get("runs", "runs")
OVERRIDES = config.get("overrides", "")
RUN_NAME = config.get("run_name", EXPERIMENT)

# The arguments every stage gets: the same experiment, launcher and run folder.
QWEN_ARGS = (
    f"experiment={EXPERIMENT} launcher={LAUNCHER} run.root={RUNS} run.name={RUN_NAME} {OVERRIDES}"
)


def marker(stage):
    return f"{RUNS}/{RUN_NAME}/{stage}/_SUCCESS.json"


def upstream(stage):
    """The markers of the stages `stage` reads: its module's UPSTREAM, so the DAG and the code are one fact."""
    from qwen_hpc.stages.registry import get_stage

    return [marker(name) for name in get_stage(stage).UPSTREAM]


def stage_log(stage):
    return f"{RUNS}/{RUN_NAME}/logs/{stage}.log"
