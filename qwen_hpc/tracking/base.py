"""The one interface every loop logs through; domain code only sees this protocol."""

from __future__ import annotations

from typing import Any, Protocol


class Tracker(Protocol):
    def log(self, metrics: dict[str, Any], step: int | None = None) -> None: ...

    def log_table(self, name: str, columns: list[str], rows: list[list[Any]]) -> None: ...

    def log_html(self, name: str, page: str) -> None: ...

    def close(self) -> None: ...


class NullTracker:
    """Stands in on non-zero ranks and when logging is off, so no loop branches on rank or W&B."""

    def log(self, metrics: dict[str, Any], step: int | None = None) -> None:
        return None

    def log_table(self, name: str, columns: list[str], rows: list[list[Any]]) -> None:
        return None

    def log_html(self, name: str, page: str) -> None:
        return None

    def close(self) -> None:
        return None
