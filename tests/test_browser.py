"""The real server in headless Chromium (Debian's), driven by Playwright.

One server on a small simulated store serves the module. Every page is visited, a file is
uploaded through the file chooser, controls are changed and the Plotly chart is checked
to have re-rendered, two sessions use the app at once, and a full-page screenshot of each
page goes to artifacts/ (git-ignored) for a person to look at.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.cli import DEMO_NAME, build_demo
from core.methods import get_strategy
from core.store import Store
from core.synth.examples import EXAMPLE_FILES, EXAMPLES_DIR
from tests.browser_util import (
    ARTIFACTS,
    chromium,
    dashboard_server,
    full_page_screenshot,
    upload_through_the_page,
    wait_until_idle,
)

pytestmark = pytest.mark.browser

PAGES = {
    "datasets": "",
    "weights": "weights",
    "budget": "budget",
    "compare": "compare",
    "transfer": "transfer",
    "allocation": "allocation",
    "combine": "combine",
    "problems": "problems",
}
VIEWPORT = {"width": 1400, "height": 900}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    db = tmp_path_factory.mktemp("browser") / "b.duckdb"
    with Store(db) as s:
        build_demo(s, n_problems=40, n_samples=16)
    with dashboard_server(db) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


def _open(browser: Any, url: str, path: str = "") -> Any:
    page = browser.new_page(viewport=VIEWPORT)
    page.goto(f"{url}/{path}", wait_until="domcontentloaded")
    wait_until_idle(page)
    return page


def _no_exception(page: Any) -> None:
    assert page.locator("[data-testid='stException']").count() == 0, page.locator(
        "[data-testid='stException']"
    ).first.inner_text()


def _plot_data(page: Any, index: int = -1) -> list[dict[str, Any]]:
    """The `data` Plotly rendered into the page's index-th chart (x, y, name per trace;
    negative: from the end, so -1 is the page's main chart, after any side chart such as
    the offset search beside the b slider)."""
    page.wait_for_selector(".js-plotly-plot", timeout=60_000)
    data: list[dict[str, Any]] = page.evaluate(
        """(i) => {
            const els = document.querySelectorAll('.js-plotly-plot');
            const el = els[i < 0 ? els.length + i : i];
            // _fullData holds the decoded arrays (data keeps plotly.py's base64 form)
            return el._fullData.map(t => ({name: t.name || '', x: Array.from(t.x || []),
                                           y: Array.from(t.y || [])}));
        }""",
        index,
    )
    return data


def _wait_for_new_plot(page: Any, before: list[dict[str, Any]], timeout: float = 30.0) -> None:
    """Wait until the chart's rendered data differs from `before` (it re-rendered)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        wait_until_idle(page)
        try:
            if _plot_data(page) != before:
                return
        except Exception:  # the chart is being replaced
            pass
        page.wait_for_timeout(100)
    raise AssertionError("the Plotly chart did not re-render")


def test_every_page_renders_and_is_screenshot(server: str, browser: Any) -> None:
    page = _open(browser, server)
    try:
        page.get_by_text("Simulated benchmark:").wait_for(timeout=30_000)
        selector = page.get_by_role("combobox", name="Dataset")
        assert selector.input_value() == DEMO_NAME
        for name, path in PAGES.items():
            page.goto(f"{server}/{path}", wait_until="domcontentloaded")
            wait_until_idle(page)
            _no_exception(page)
            if name != "datasets":
                # Plotly is loaded lazily: its chart appears just after the script ends
                page.wait_for_selector(".js-plotly-plot .main-svg", timeout=30_000)
                title = _plot_layout_title(page)
                assert "simulated" in title, title
            full_page_screenshot(page, ARTIFACTS / f"{name}.png")
        # the weight functions of every pair, as small multiples
        page.goto(f"{server}/weights", wait_until="domcontentloaded")
        wait_until_idle(page)
        page.get_by_text("all pairs").click()
        wait_until_idle(page)
        page.wait_for_function(
            "() => document.querySelector('.js-plotly-plot').data.length > 35", timeout=60_000
        )
        full_page_screenshot(page, ARTIFACTS / "weights_grid.png")
        page.get_by_text("one pair").click()
        wait_until_idle(page)
    finally:
        page.close()
    for name in [*PAGES, "weights_grid"]:
        assert (ARTIFACTS / f"{name}.png").stat().st_size > 10_000


def _plot_layout_title(page: Any) -> str:
    """The title of the page's main (last) chart."""
    title: str = page.evaluate(
        "() => { const els = document.querySelectorAll('.js-plotly-plot');"
        " return (els[els.length - 1].layout.title || {}).text || ''; }"
    )
    return title


def test_upload_through_the_file_chooser(server: str, browser: Any) -> None:
    page = _open(browser, server)
    try:
        upload_through_the_page(page, EXAMPLES_DIR / EXAMPLE_FILES["long-jsonl"], "browser upload")
        _no_exception(page)
        assert page.get_by_role("combobox", name="Dataset").input_value() == "browser upload"
        full_page_screenshot(page, ARTIFACTS / "datasets_after_upload.png")
        # back to the demo for the other tests of this session
        page.get_by_role("combobox", name="Dataset").click()
        page.get_by_role("option", name=DEMO_NAME).click()
        wait_until_idle(page)
    finally:
        page.close()


def test_controls_re_render_the_chart(server: str, browser: Any) -> None:
    page = _open(browser, server, "weights")
    try:
        before = _plot_data(page)
        page.get_by_text("logit(s)").click()
        _wait_for_new_plot(page, before)
        curve = next(t for t in _plot_data(page) if t["name"] == "w(s)")
        assert min(curve["x"]) < -5 < 5 < max(curve["x"])  # a logit axis now
        # another calibrator: the curve changes
        before = _plot_data(page)
        page.get_by_role("combobox", name="Calibrator").click()
        page.get_by_role("option", name=get_strategy("isotonic_wv").label, exact=True).click()
        _wait_for_new_plot(page, before)
        assert "Isotonic" in _plot_layout_title(page)
        # the offset slider of logit WV, moved with the keyboard
        page.get_by_role("combobox", name="Calibrator").click()
        page.get_by_role("option", name=get_strategy("logit_wv").label, exact=True).click()
        wait_until_idle(page)
        page.get_by_text("Set b by hand").click()
        wait_until_idle(page)
        before = _plot_data(page)
        handle = page.get_by_role("slider")
        handle.last.focus()
        for _ in range(10):
            handle.last.press("ArrowLeft")
        _wait_for_new_plot(page, before)
        assert any("chosen by hand" in t["name"] for t in _plot_data(page))
        _no_exception(page)
        # switching the pair redraws too
        before = _plot_data(page)
        page.get_by_role("combobox", name="Verifier").click()
        page.get_by_role("option", name="sim-grm-orm").click()
        _wait_for_new_plot(page, before)
        assert "sim-grm-orm" in _plot_layout_title(page)
    finally:
        page.close()


def test_a_page_control_reruns_only_the_pages_own_part(server: str, browser: Any) -> None:
    """A page's own control (state.page_body) reruns the page's part alone: the server
    sends that part again, never the sidebar; a sidebar control reruns the whole app.
    A part that stops early (all pairs) leaves nothing of its previous run behind."""
    frames: list[bytes] = []

    def listen(ws: Any) -> None:
        ws.on("framereceived", lambda f: frames.append(f if isinstance(f, bytes) else f.encode()))

    page = browser.new_page(viewport=VIEWPORT)
    page.on("websocket", listen)
    try:
        page.goto(f"{server}/weights", wait_until="domcontentloaded")
        wait_until_idle(page)
        page.get_by_role("combobox", name="Calibrator").click()
        page.get_by_role("option", name=get_strategy("logit_wv").label, exact=True).click()
        wait_until_idle(page)
        assert page.get_by_text("Set b by hand").count() == 1
        sidebar = b"TTS Aggregation Lab"  # the sidebar's title, sent in every whole run
        assert any(sidebar in f for f in frames)  # the listener sees what is sent

        frames.clear()
        before = _plot_data(page)
        page.get_by_text("logit(s)").click()
        _wait_for_new_plot(page, before)
        assert any(b"logit(s)" in f for f in frames)  # the page's part was sent again
        assert not any(sidebar in f for f in frames)

        page.get_by_text("all pairs", exact=True).click()  # the part stops early
        wait_until_idle(page)
        page.wait_for_function("() => document.body.innerText.includes('weights of every pair')")
        wait_until_idle(page)
        assert page.get_by_text("Set b by hand").count() == 0
        assert page.locator(".js-plotly-plot").count() == 1
        page.get_by_text("one pair", exact=True).click()
        wait_until_idle(page)
        page.get_by_text("Set b by hand").wait_for(timeout=30_000)
        assert page.locator(".js-plotly-plot").count() == 1
        _no_exception(page)

        frames.clear()  # a sidebar control: the whole app again
        before = _plot_data(page)
        page.get_by_role("combobox", name="Verifier").click()
        page.get_by_role("option", name="sim-grm-orm").click()
        _wait_for_new_plot(page, before)
        assert any(sidebar in f for f in frames)
    finally:
        page.close()


def test_a_page_control_after_its_dataset_was_deleted_elsewhere(
    tmp_path: Path, browser: Any
) -> None:
    """The page's part reruns with the context of the last whole-app run; when another
    process deleted that dataset meanwhile, a page control reruns the whole app, whose
    sidebar picks a dataset that exists, rather than reading rows that are gone."""
    import subprocess
    import sys

    gone = "gone demo"
    db = tmp_path / "g.duckdb"
    with Store(db) as s:
        build_demo(s, n_problems=30, n_samples=8)
        build_demo(s, n_problems=30, n_samples=8, seed=1, name=gone)
    with dashboard_server(db) as url:
        page = _open(browser, url, "weights?dataset=gone+demo")
        try:
            dataset = page.get_by_role("combobox", name="Dataset").first
            assert dataset.input_value().startswith(gone)
            _plot_data(page)
            cli = [sys.executable, "-m", "core.cli", "--db", str(db), "delete", gone, "--yes"]
            done = subprocess.run(cli, capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stderr
            page.get_by_text("logit(s)").click()  # a control of the page's own part
            page.wait_for_function(
                "(name) => Array.from(document.querySelectorAll('input[role=combobox]'))"
                ".some(el => el.value.startsWith(name))",
                arg=DEMO_NAME,
                timeout=60_000,
            )
            wait_until_idle(page)
            assert dataset.input_value().startswith(DEMO_NAME)
            _no_exception(page)
            assert page.locator("[data-testid='stAlert']").filter(has_text=gone).count() == 0
            assert gone not in _plot_layout_title(page)
        finally:
            page.close()


def test_two_sessions_at_once(server: str, browser: Any) -> None:
    """Two browser sessions read the database at the same time."""
    contexts = [browser.new_context(viewport=VIEWPORT) for _ in range(2)]
    pages = [c.new_page() for c in contexts]
    try:
        # both requests go out before either page has finished: the server runs the two
        # sessions' scripts at the same time, over one shared Store
        for p, path in zip(pages, ("compare", "problems"), strict=True):
            p.goto(f"{server}/{path}", wait_until="commit")
        for p in pages:
            wait_until_idle(p)
        for p in pages:
            _no_exception(p)
            p.wait_for_selector(".js-plotly-plot .main-svg", timeout=30_000)
    finally:
        for c in contexts:
            c.close()


def test_screenshots_are_git_ignored() -> None:
    ignore = (Path(__file__).resolve().parents[1] / ".gitignore").read_text().split()
    assert "artifacts/" in ignore
