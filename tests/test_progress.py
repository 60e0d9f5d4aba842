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


def _opening_with(slot: FakeSlot, delay: float) -> tuple[Any, list[int]]:
    """An opening page whose bar draws into `slot`; the list counts its `done` calls."""
    from dashboard.state import _Opening

    ended: list[int] = []
    bar = ProgressBar("Opening Compare", delay=delay, slot=slot, stage="loading the page")
    return _Opening(bar, lambda: ended.append(1)), ended


def test_a_slow_opening_hands_its_bar_to_the_first_computation() -> None:
    from dashboard.state import _OPENING, _bar_for

    slot = FakeSlot()
    record, ended = _opening_with(slot, delay=0.05)
    token = _OPENING.set(record)
    try:
        time.sleep(0.3)  # the page is still loading: its bar shows
        assert slot.calls == [("progress", (0.0, "Opening Compare\\: loading the page"))]
        bar = _bar_for("Computing 7 pairs")
        assert bar is record.bar  # the same bar goes on, from zero, under the new label
        assert slot.calls[-1] == ("progress", (0.0, "Computing 7 pairs\\: starting"))
        assert ended == [1]  # the opening is over (the warm-up may go on)
        assert _OPENING.get() is None  # a second computation draws its own bar
        time.sleep(0.6)
        bar("fold 1 of 5", 1, 5)
        assert slot.calls[-1] == ("progress", (0.2, "Computing 7 pairs\\: fold 1 of 5"))
        bar.close()
        assert slot.calls[-1] == ("empty", None)
    finally:
        _OPENING.reset(token)


def test_a_quick_opening_leaves_no_bar_behind() -> None:
    from dashboard.state import _OPENING, _bar_for

    slot = FakeSlot()
    record, ended = _opening_with(slot, delay=0.3)
    token = _OPENING.set(record)
    try:
        bar = _bar_for("Computing 7 pairs")  # before the opening bar's delay
        assert bar is not record.bar
        bar.close()
        assert ended == [1]
        time.sleep(0.5)
        assert slot.calls == []  # the opening bar was closed before it ever drew
    finally:
        _OPENING.reset(token)


def test_the_opening_bar_says_updating_on_a_rerun_of_the_same_page() -> None:
    from streamlit.testing.v1 import AppTest

    def app() -> None:
        import streamlit as st

        from dashboard.state import _OPENING, opening

        path = st.session_state.get("next_path", "compare")
        with opening("Compare", path):
            record = _OPENING.get()
            st.write(record.bar.label if record is not None else "no bar")

    at = AppTest.from_function(app).run()
    assert at.markdown[0].value == "Opening Compare"
    at.run()
    assert at.markdown[0].value == "Updating Compare"
    at.session_state["next_path"] = ""  # the bare address, then its page: both opened
    at.run()
    assert at.markdown[0].value == "Opening Compare"
    at.session_state["next_path"] = "compare"
    at.run()
    assert at.markdown[0].value == "Opening Compare"


def _stopping_app() -> None:
    import time

    import streamlit as st

    from dashboard import state

    with state.opening("Datasets", "datasets", delay=0.0):
        time.sleep(0.3)  # a slow page: its opening bar is drawn
        st.info("You may only view this store.")
        if st.session_state.get("raw"):
            st.stop()  # what the pages did: the bar stayed on the page
        state.stop()


def test_a_page_that_stops_leaves_no_opening_bar_behind() -> None:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_function(_stopping_app).run()
    assert at.info[0].value == "You may only view this store."
    assert len(at.get("progress")) == 0
    at.session_state["raw"] = True  # the same page stopped with st.stop(): the bar stays
    at.run()
    assert len(at.get("progress")) == 1


def test_the_pages_stop_through_the_state_helper() -> None:
    # st.stop() directly would leave a drawn opening bar on the page (test above)
    from pathlib import Path

    views = Path(__file__).resolve().parents[1] / "dashboard" / "views"
    offenders = [p.name for p in views.glob("*.py") if "st.stop()" in p.read_text()]
    assert offenders == []


#: what draws in the sidebar: st.sidebar, and the state helpers that draw there
SIDEBAR_WRITERS = {
    "sidebar",
    "page_context",
    "pair_picker",
    "dataset_picker",
    "evaluation_config",
    "editor",
}


def test_every_analysis_page_runs_its_own_part_as_a_fragment() -> None:
    # a page control reruns only the page's part (state.page_body; the browser test
    # checks what is sent); the Datasets page reruns whole (an import changes the sidebar)
    import ast
    from pathlib import Path

    views = Path(__file__).resolve().parents[1] / "dashboard" / "views"
    missing, sidebar = [], []
    for p in sorted(views.glob("*.py")):
        tree = ast.parse(p.read_text())
        calls = [
            ast.unparse(n)
            for n in ast.walk(tree)
            if isinstance(n, ast.Call) and ast.unparse(n.func) == "state.page_body"
        ]
        if p.stem != "datasets" and calls != ["state.page_body(_body)"]:
            missing.append(p.name)
        for fn in (n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "_body"):
            # a rerun of the part alone would not redraw what it drew in the sidebar
            used = {n.attr for n in ast.walk(fn) if isinstance(n, ast.Attribute)}
            if used & SIDEBAR_WRITERS:
                sidebar.append(p.name)
    assert missing == [] and sidebar == []
