"""Slot uids: what a run left behind is found; a uid a run holds is not another run's leftover."""

from __future__ import annotations

import os
import subprocess

import pytest

from qwen_hpc.sandbox.slots import leftover_processes, uid_slot

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="starting a process under a slot uid needs root")


def test_a_held_uid_is_not_a_leftover_and_a_free_one_is() -> None:
    with uid_slot(sweep=False) as uid:
        proc = subprocess.Popen(["sleep", "60"], user=uid, group=uid)
        try:
            assert uid not in leftover_processes()  # its run (this block) still holds the uid
        except BaseException:
            proc.kill()
            raise
    try:
        assert leftover_processes().get(uid) == [proc.pid]  # the block ended without sweeping: left behind
    finally:
        proc.kill()  # our own child: reaped here, or it would stay listed as a zombie
        proc.wait(timeout=10)
    assert uid not in leftover_processes()
