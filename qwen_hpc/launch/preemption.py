"""First half of preemption: a signal handler that only sets a flag.

Slurm warns a job before its time limit (`--signal=USR2@N`) and sends SIGTERM on preemption. Saving a
sharded checkpoint inside a signal handler is unsafe (every rank must take part, mid-step state is
inconsistent), so the handler only records the request; loops poll `StopFlag.requested` at step
boundaries, agree across ranks, save, and return a "preempted" result that the launcher turns into a
requeue (the second half, in `qwen_hpc.launch.slurm`).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterable
from types import FrameType
from typing import Any

DEFAULT_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM)


class StopFlag:
    """A process-wide 'please stop at the next step boundary' flag."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def __call__(self) -> bool:
        return self.requested

    def request(self, signum: int | None = None) -> None:
        self.signum = signum
        self._event.set()

    def clear(self) -> None:
        self.signum = None
        self._event.clear()

    def install(self, signals: Iterable[signal.Signals] = DEFAULT_SIGNALS) -> StopFlag:
        """Route `signals` to this flag, remembering the previous handlers (submitit's among them)."""
        if threading.current_thread() is not threading.main_thread():
            return self
        for sig in signals:
            self._previous[int(sig)] = signal.getsignal(sig)
            signal.signal(sig, self._handle)
        return self

    def previous_handler(self, signum: int) -> Callable[..., Any] | int | None:
        return self._previous.get(int(signum))

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            if handler is not None:
                signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.request(signum)
