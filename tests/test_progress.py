"""The dashboard's progress bar shows a cold computation within a second, even when the
work reports nothing for longer (#13: "a progress indicator appears within 1 s")."""

from __future__ import annotations

import time
from typing import Any

from dashboard.state import ProgressBar


class FakeSlot:
    """Records what the bar draws into its slot."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def progress(self, frac: float, text: str) -> FakeSlot:
        self.calls.append(("progress", (round(frac, 3), text)))
        return self

    def empty(self) -> None:
        self.calls.append(("empty", None))


def test_silent_work_gets_a_bar_after_the_delay() -> None:
    slot = FakeSlot()
    bar = ProgressBar("Computing", delay=0.05, slot=slot)
    bar("loading the pair", 0, 4)  # before the delay: remembered, not drawn
    assert slot.calls == []
    time.sleep(0.3)  # no further report: the timer draws the last one
    assert slot.calls == [("progress", (0.0, "Computing\\: loading the pair"))]
    bar("fold 2 of 4", 2, 4)  # within `every` of the first draw: skipped
    time.sleep(0.5)
    bar("fold 3 of 4", 3, 4)
    assert slot.calls[-1] == ("progress", (0.75, "Computing\\: fold 3 of 4"))
    bar.close()
    assert slot.calls[-1] == ("empty", None)
    n = len(slot.calls)
    bar("late", 4, 4)  # after close: nothing
    assert len(slot.calls) == n


def test_quick_work_draws_nothing() -> None:
    slot = FakeSlot()
    bar = ProgressBar("Computing", delay=0.2, slot=slot)
    bar("done", 1, 1)
    bar.close()  # before the delay: the timer never fires
    time.sleep(0.4)
    assert slot.calls == []
