"""Waiting on and inspecting real Slurm jobs and their training outputs, for the launch tests."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import torch

from qwen_hpc.report.html import read_jsonl


def wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"submitter exited {proc.returncode} while waiting for {what}\n{out}\n{err}")
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def steps_logged(path: Path) -> int:
    return sum(1 for r in read_jsonl(path) if "loss" in r)


def sacct_states(job_id: str, want: str) -> list[str]:
    """All records of the job (requeues included); sacct may lag a few seconds behind the job."""
    states: list[str] = []
    for _ in range(60):
        states = subprocess.run(["sacct", "-j", job_id, "-n", "-X", "-D", "-P", "-o", "State"],
                                capture_output=True, text=True, check=True).stdout.splitlines()
        if states and states[-1].startswith(want):
            break
        time.sleep(1)
    return states


def final_tensors(stage_dir: Path, scratch: Path) -> dict[str, torch.Tensor]:
    """Every tensor of the final checkpoint (weights, optimizer moments), read without a process group."""
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    ckpt = stage_dir / "checkpoints" / (stage_dir / "checkpoints" / "latest").read_text().strip()
    out = scratch / f"{stage_dir.parent.parent.name}-final.pt"
    dcp_to_torch_save(ckpt, out)
    state = torch.load(out, weights_only=False)
    return {k: v for k, v in state.items() if torch.is_tensor(v)}


def assert_bit_identical(ours: dict[str, torch.Tensor], reference: dict[str, torch.Tensor]) -> None:
    assert ours.keys() == reference.keys() and any("embedding" in k for k in ours), sorted(ours)
    different = [k for k in ours if not torch.equal(ours[k], reference[k])]
    assert not different, different
