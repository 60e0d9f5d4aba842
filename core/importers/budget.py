"""The overall budget of one import: wall-clock time, CPU time and a cancel event.

CPU time is that of the importing thread (the whole process when importing from the main
thread, as the CLI does; only the session's own thread in the dashboard, whose process also
serves other visitors) plus the CPU its grading worker processes have used, read from
``/proc`` four times a second while they run (on systems without ``/proc`` only the
importing thread's CPU is counted; the wall-clock limit still holds).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from core.types import TTSLabError


class ImportStopped(TTSLabError):
    """An import stopped by its time limit, CPU limit or a cancel (nothing was stored)."""


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a live process (Linux ``/proc``), else None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    try:
        return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime
    except (IndexError, ValueError):
        return None


class WorkBudget:
    """Limits checked at every progress step of an import (and while grading waits)."""

    def __init__(
        self,
        wall_s: float | None = None,
        cpu_s: float | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        for what, v in (("time limit", wall_s), ("CPU limit", cpu_s)):
            if v is not None and not v >= 0:
                raise TTSLabError(f"the {what} must be a number of seconds >= 0, got {v}")
        self.wall_s = wall_s
        self.cpu_s = cpu_s
        self.cancel = cancel
        self._main = threading.current_thread() is threading.main_thread()
        self._t0 = time.monotonic()
        self._cpu0 = self._own_cpu()
        self._workers: dict[int, float] = {}

    def _own_cpu(self) -> float:
        return time.process_time() if self._main else time.thread_time()

    def see_workers(self, pids: Iterable[int]) -> None:
        """Record the CPU used so far by these (grading worker) processes."""
        for pid in pids:
            c = process_cpu_s(pid)
            if c is not None:
                self._workers[pid] = max(self._workers.get(pid, 0.0), c)

    def cpu_used(self) -> float:
        return self._own_cpu() - self._cpu0 + sum(self._workers.values())

    def wall_used(self) -> float:
        return time.monotonic() - self._t0

    def check(self, stage: str) -> None:
        """Raise `ImportStopped` when cancelled or over a limit."""
        if self.cancel is not None and self.cancel.is_set():
            raise ImportStopped("the import was cancelled: nothing was imported")
        if self.wall_s is not None and self.wall_used() > self.wall_s:
            raise ImportStopped(
                f"the import took longer than its {self.wall_s:g} s time limit (at: "
                f"{stage}): nothing was imported"
            )
        if self.cpu_s is not None and self.cpu_used() > self.cpu_s:
            raise ImportStopped(
                f"the import used more than its {self.cpu_s:g} s of CPU time (at: {stage}; "
                "grading workers included): nothing was imported"
            )
