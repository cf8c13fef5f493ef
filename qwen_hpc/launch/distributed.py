"""torch.distributed from the job environment: the only module that reads RANK / MASTER_* / SLURM_*.

Three ways a stage process can start, one result (an initialised default process group):
- under `torchrun` (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT already set);
- as a submitit task on Slurm or the local executor (submitit's `TorchDistributedEnvironment().export()`
  turns the job environment into those variables);
- as a task of a plain `srun` step (`sbatch slurm/stage.sbatch ...`): SLURM_PROCID / SLURM_STEP_NUM_TASKS /
  SLURM_LOCALID and the first node of the allocation;
- as a plain single process (world size 1 on a free loopback port).
"""

from __future__ import annotations

import datetime
import os
import socket
import zlib
from dataclasses import dataclass

import torch
import torch.distributed as dist

from qwen_hpc.parallel import default_backend


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    backend: str


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def export_submitit_env() -> None:
    """Inside a submitit job: set the env:// variables from the job environment (no-op elsewhere)."""
    if "RANK" in os.environ and "MASTER_ADDR" in os.environ:
        return
    try:
        import submitit

        submitit.JobEnvironment()  # raises outside a submitit job
    except (ImportError, RuntimeError):
        return
    from submitit.helpers import TorchDistributedEnvironment

    env = TorchDistributedEnvironment()
    env.export(set_cuda_visible_devices=False)
    os.environ["MASTER_PORT"] = str(_master_port(env.world_size, str(submitit.JobEnvironment().job_id)))


def srun_world_size() -> int | None:
    """Tasks of the `srun` step this process belongs to (None outside one): the world of a stage started
    by hand with `sbatch --ntasks=N slurm/stage.sbatch ...`."""
    tasks = os.environ.get("SLURM_STEP_NUM_TASKS")
    return int(tasks) if tasks and tasks.isdigit() else None


def export_srun_env() -> None:
    """Inside a plain `srun` task (no submitit): set the env:// variables from Slurm's (no-op elsewhere)."""
    world = srun_world_size()
    if "RANK" in os.environ or world is None or "SUBMITIT_FOLDER" in os.environ:
        return
    import subprocess

    nodes = os.environ.get("SLURM_STEP_NODELIST") or os.environ.get("SLURM_JOB_NODELIST", "127.0.0.1")
    hosts = subprocess.run(["scontrol", "show", "hostnames", nodes], capture_output=True, text=True,
                           check=False).stdout.split()
    os.environ.update(
        RANK=os.environ["SLURM_PROCID"],
        WORLD_SIZE=str(world),
        LOCAL_RANK=os.environ.get("SLURM_LOCALID", "0"),
        MASTER_ADDR=hosts[0] if hosts else nodes,
        MASTER_PORT=str(_master_port(world, os.environ.get("SLURM_JOB_ID", "0"))),
    )


# Linux hands out ephemeral ports from 32768 up: a rendezvous port chosen there (as submitit's default
# is) can collide with any outgoing connection on the node. Stay below that range.
PORT_BASE, PORT_SPAN = 20000, 12000


def _master_port(world_size: int, job_id: str) -> int:
    """One process: any free port. Several: the same port on every task, derived from the job id."""
    if "QWEN_HPC_MASTER_PORT" in os.environ:
        return int(os.environ["QWEN_HPC_MASTER_PORT"])
    if world_size == 1:
        return _free_port()
    return PORT_BASE + zlib.crc32(job_id.encode()) % PORT_SPAN


def job_rank() -> int:
    """Global rank of this task, whether or not torch.distributed is up yet."""
    for var in ("RANK", "SUBMITIT_GLOBAL_ID", "SLURM_PROCID", "SUBMITIT_LOCAL_GLOBALID"):
        if var in os.environ:
            return int(os.environ[var])
    return 0


def local_world_size() -> int:
    """Tasks of this job on this node: torchrun's and submitit's LOCAL_WORLD_SIZE, else Slurm's per-node count."""
    for var in ("LOCAL_WORLD_SIZE", "SLURM_NTASKS_PER_NODE"):
        value = os.environ.get(var, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return 1


def share_cpu_threads() -> int | None:
    """Give each of the node's tasks its share of the CPUs this process may run on, as torchrun does.

    torch sizes its intra-op pool to every core it sees; N tasks of one job on one node (the local
    executor, or Slurm without per-task binding) would each take all of them and oversubscribe the CPU
    many times over. A user's OMP_NUM_THREADS always wins. Returns the thread count set, or None.
    """
    tasks = local_world_size()
    if tasks <= 1 or "OMP_NUM_THREADS" in os.environ:
        return None
    per_task = os.environ.get("SLURM_CPUS_PER_TASK", "")  # what Slurm allotted each task, bound or not
    threads = int(per_task) if per_task.isdigit() else max(1, len(os.sched_getaffinity(0)) // tasks)
    torch.set_num_threads(threads)
    return threads


def ensure_process_group(backend: str | None = None, timeout_s: int = 600) -> DistInfo:
    """Initialise the default process group once; later calls return the same description."""
    backend = backend or default_backend()
    if not dist.is_initialized():
        export_submitit_env()
        export_srun_env()
        if "RANK" not in os.environ:
            os.environ.update(
                RANK="0",
                WORLD_SIZE="1",
                LOCAL_RANK="0",
                MASTER_ADDR="127.0.0.1",
                MASTER_PORT=str(_free_port()),
            )
        share_cpu_threads()
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout_s))
    return DistInfo(
        rank=dist.get_rank(),
        world_size=dist.get_world_size(),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
        backend=dist.get_backend(),
    )


def destroy_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
