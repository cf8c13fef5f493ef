"""Read what W&B wrote offline: the records of `offline-run-*/run-<id>.wandb` files.

Why: a job killed between a step's log call and W&B's write loses that step from its offline directory;
the resumed job must log from the last step W&B really *wrote*, not the last one it was asked to. wandb
>= 0.19 writes these files from its Go core and ships no Python reader, so this reads the format: a
7-byte header (":W&B", magic 0xBEE1, version 0), then LevelDB-log blocks of 32 KiB holding 7-byte-headed
chunks (crc32, length, type FULL/FIRST/MIDDLE/LAST) of protobuf `Record`s. A file cut short by a kill
ends at its last whole record. The tests read what a stage wrote with it too.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path

from wandb.proto import wandb_internal_pb2

BLOCK = 32768
HEADER = struct.Struct("<4sHB")
CHUNK = struct.Struct("<IHB")
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def _records(path: Path) -> list[bytes]:
    data = path.read_bytes()
    if len(data) < HEADER.size:
        return []
    ident, magic, _ = HEADER.unpack_from(data, 0)
    if ident != b":W&B" or magic != 0xBEE1:
        raise ValueError(f"{path} is not a W&B transaction log")
    out: list[bytes] = []
    pending = b""
    pos = HEADER.size
    while pos + CHUNK.size <= len(data):
        left_in_block = BLOCK - pos % BLOCK
        if left_in_block < CHUNK.size:  # block trailer padding
            pos += left_in_block
            continue
        _, length, kind = CHUNK.unpack_from(data, pos)
        if (kind == 0 and length == 0) or pos + CHUNK.size + length > len(data):
            break  # end of the written part (or a record cut short by a kill)
        body = data[pos + CHUNK.size: pos + CHUNK.size + length]
        pos += CHUNK.size + length
        if kind == FULL:
            out.append(body)
        elif kind == FIRST:
            pending = body
        elif kind == MIDDLE:
            pending += body
        elif kind == LAST:
            out.append(pending + body)
            pending = b""
    return out


@dataclass
class OfflineRun:
    path: Path
    run_id: str = ""
    steps: list[int] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)


def read_offline_run(run_dir: Path) -> OfflineRun:
    """The run's records; its id from the directory's name (`offline-run-<time>-<id>`) when the run record
    itself was never written (a job SIGKILLed before W&B's writer flushed its first block)."""
    run = OfflineRun(Path(run_dir), run_id=Path(run_dir).name.rsplit("-", 1)[-1])
    log_files = sorted(Path(run_dir).glob("run-*.wandb"))
    if not log_files:  # killed before W&B created its log file
        return run
    if len(log_files) > 1:
        raise ValueError(f"{run_dir} holds {len(log_files)} W&B logs, expected one")
    for raw in _records(log_files[0]):
        record = wandb_internal_pb2.Record()
        try:
            record.ParseFromString(raw)
        except Exception:  # noqa: BLE001 - a damaged tail: what came before stands
            break
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run.run_id = record.run.run_id
        elif kind == "history":
            row = {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item}
            run.history.append(row)
            if "_step" in row:
                run.steps.append(int(row["_step"]))
        elif kind == "summary":
            for item in record.summary.update:
                run.summary[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    return run


def offline_runs(stage_dir: Path, run_id: str = "*") -> list[OfflineRun]:
    """Every offline run directory of a stage (of one run id), oldest first (the order `wandb sync`
    uploads them in)."""
    dirs = sorted((Path(stage_dir) / "wandb" / "wandb").glob(f"offline-run-*-{run_id}"))
    return [read_offline_run(d) for d in dirs]


def last_written_step(stage_dir: Path, run_id: str) -> int:
    """The highest history step W&B wrote offline for `run_id` in this stage folder (-1: none)."""
    steps = [max(run.steps) for run in offline_runs(stage_dir, run_id) if run.steps]
    return max(steps, default=-1)
