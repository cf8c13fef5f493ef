"""Ask Slurm what became of a job, instead of guessing from inside it.

A stage that gets SIGTERM cannot tell `scancel` from `scontrol requeue`, Slurm's preemption or a node
failure with `--requeue`: the signal is the same. The controller knows: a requeued job goes back to
PENDING (via REQUEUED) under the same id with `Restarts` one higher, a cancelled one ends CANCELLED. So
the waiting submitter and the stage-folder lock read the job's state here (`scontrol show job`, then
`sacct` once the controller has forgotten the job) and act on that.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass

# The job may still run (again): keep waiting, the stage folder is still owned.
ACTIVE_STATES = frozenset({
    "PENDING", "RUNNING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "CONFIGURING", "COMPLETING",
    "SUSPENDED", "RESIZING", "SIGNALING", "STAGE_OUT", "SPECIAL_EXIT", "RESV_DEL_HOLD",
})
# Terminal states after which Slurm may still requeue the job (`--requeue`): confirm before believing them.
MAYBE_REQUEUED_STATES = frozenset({"PREEMPTED", "NODE_FAIL", "BOOT_FAIL"})
_FIELD = re.compile(r"(\w+)=(\S*)")


@dataclass(frozen=True)
class SlurmJobState:
    job_id: str
    state: str  # base state, e.g. RUNNING, PENDING, COMPLETED, CANCELLED
    restarts: int = 0
    reason: str = ""
    node: str = ""

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def cancelled(self) -> bool:
        return self.state == "CANCELLED"


def slurm_available() -> bool:
    return shutil.which("scontrol") is not None


def _run(cmd: list[str]) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None


def _from_scontrol(job_id: str) -> SlurmJobState | None:
    proc = _run(["scontrol", "show", "job", "-o", str(job_id)])
    if proc is None or proc.returncode != 0 or "JobState=" not in proc.stdout:
        return None
    line = proc.stdout.strip().splitlines()[0]
    fields = dict(_FIELD.findall(line))
    restarts = fields.get("Restarts", "0")
    return SlurmJobState(
        job_id=str(job_id),
        state=fields.get("JobState", "UNKNOWN").split("+")[0],
        restarts=int(restarts) if restarts.isdigit() else 0,
        reason=fields.get("Reason", ""),
        node=fields.get("BatchHost", "") or fields.get("NodeList", ""),
    )


def _from_sacct(job_id: str) -> SlurmJobState | None:
    proc = _run(["sacct", "-j", str(job_id), "-n", "-X", "-P", "-o", "State,Reason,NodeList"])
    if proc is None or proc.returncode != 0 or not proc.stdout.strip():
        return None
    state, reason, node = (proc.stdout.strip().splitlines()[-1].split("|") + ["", ""])[:3]
    # sacct writes "CANCELLED by 0"; the base state is the first word
    return SlurmJobState(job_id=str(job_id), state=state.split()[0] if state else "UNKNOWN", reason=reason,
                         node=node)


def slurm_job_state(job_id: str) -> SlurmJobState | None:
    """The job's current state, or None when neither the controller nor accounting knows the job."""
    return _from_scontrol(job_id) or _from_sacct(job_id)
