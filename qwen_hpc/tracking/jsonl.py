"""metrics.jsonl: one JSON object per log call; the report is built from these files alone."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from qwen_hpc.utils.io import append_jsonl


class JsonlTracker:
    def __init__(self, path: Path, stage: str) -> None:
        self.path = Path(path)
        self.stage = stage

    def log(self, metrics: dict[str, Any], step: int | None = None) -> None:
        record: dict[str, Any] = {"stage": self.stage, "time": round(time.time(), 3)}
        if step is not None:
            record["step"] = step
        record.update(metrics)
        append_jsonl(self.path, record)

    def log_table(self, name: str, columns: list[str], rows: list[list[Any]]) -> None:
        """A table as one record: {"table": name, "columns": [...], "rows": [[...], ...]}."""
        self.log({"table": name, "columns": list(columns), "rows": [list(r) for r in rows]})

    def log_html(self, name: str, page: str) -> None:
        """Pages stay in their stage folder; metrics.jsonl keeps numbers and tables only."""
        return None

    def close(self) -> None:
        return None
