"""Shareable views: every page has its own address, and its controls live in the query
string, so a URL copied from one browser and opened in a fresh one draws the same chart.

For every page: open it, change controls (the sidebar's dataset, and a page control where
the page has one), take the address the app wrote, open it in a new browser context (no
shared session) and compare the Plotly data drawn there with the first browser's. The
same page opened without the query string draws something else, so the comparison can
fail.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from core.cli import DEMO_NAME, build_demo
from core.store import Store
from tests.browser_util import chromium, dashboard_server, wait_until_idle

pytestmark = pytest.mark.browser

SECOND = "second demo"
VIEWPORT = {"width": 1400, "height": 900}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    db = tmp_path_factory.mktemp("url") / "u.duckdb"
    with Store(db) as s:
        build_demo(s, n_problems=40, n_samples=16)
        build_demo(s, n_problems=30, n_samples=16, seed=1, name=SECOND)
    with dashboard_server(db) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


def _fresh(browser: Any, url: str) -> tuple[Any, Any]:
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.goto(url, wait_until="domcontentloaded")
    wait_until_idle(page)
    return context, page


def _plot(page: Any) -> list[dict[str, Any]]:
    """Every chart's rendered traces (name, x, y, z), after Plotly has drawn them."""
    page.wait_for_selector(".js-plotly-plot .main-svg", timeout=60_000)
    page.wait_for_timeout(300)
    data: list[dict[str, Any]] = page.evaluate(
        """() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(el =>
            el._fullData.map(t => ({name: t.name || '', x: Array.from(t.x || []),
                y: Array.from(t.y || []), z: JSON.stringify(t.z || null)})))"""
    )
    return data


def _choose(page: Any, label: str, option: str) -> None:
    page.get_by_role("combobox", name=label).first.click()
    page.get_by_role("option", name=option).first.click()
    wait_until_idle(page)


def _radio(page: Any, option: str) -> None:
    page.get_by_text(option, exact=True).first.click()
    wait_until_idle(page)


def _nothing(page: Any) -> None:
    return None


# page path -> (control change after the dataset switch, query key it must write)
CHANGES: dict[str, tuple[Callable[[Any], None], str]] = {
    "datasets": (_nothing, "dataset"),
    "weights": (lambda p: _radio(p, "logit(s)"), "weights_axis"),
    "budget": (lambda p: _choose(p, "Verifier", "sim-grm-orm"), "verifier"),
    "adaptive": (lambda p: _choose(p, "Verifier", "sim-grm-orm"), "verifier"),
    "frontier": (lambda p: _choose(p, "Verifier", "sim-grm-orm"), "f_verifier"),
    "compare": (lambda p: _radio(p, "accuracy"), "c_metric"),
    "transfer": (_nothing, "dataset"),
    "allocation": (lambda p: _choose(p, "Verifier", "sim-grm-orm"), "verifier"),
    "combine": (_nothing, "dataset"),
    "problems": (lambda p: _choose(p, "Verifier", "sim-grm-orm"), "verifier"),
}


@pytest.mark.parametrize("path", list(CHANGES))
def test_a_copied_url_reproduces_the_view(server: str, browser: Any, path: str) -> None:
    change, key = CHANGES[path]
    ctx_a, a = _fresh(browser, f"{server}/{path}")
    try:
        assert urlparse(a.url).path == f"/{path}", a.url
        default_view = _plot(a)
        _choose(a, "Dataset", SECOND)
        change(a)
        shown = _plot(a)
        url = a.url
    finally:
        ctx_a.close()
    query = parse_qs(urlparse(url).query, keep_blank_values=True)
    assert query.get("dataset") == [SECOND], url
    assert key in query, url
    assert shown != default_view  # the controls changed the chart

    ctx_b, b = _fresh(browser, url)  # a fresh session: nothing but the address
    try:
        assert b.get_by_role("combobox", name="Dataset").first.input_value().startswith(SECOND)
        assert _plot(b) == shown
        assert b.locator("[data-testid='stException']").count() == 0
    finally:
        ctx_b.close()


def test_the_bare_address_opens_the_first_page_under_its_path(server: str, browser: Any) -> None:
    ctx, page = _fresh(browser, f"{server}/?dataset={SECOND.replace(' ', '+')}")
    try:
        page.wait_for_url("**/datasets?**", timeout=30_000)
        assert page.get_by_role("combobox", name="Dataset").first.input_value().startswith(SECOND)
        assert page.get_by_text("Page not found").count() == 0
    finally:
        ctx.close()
    ctx, page = _fresh(browser, f"{server}/datasets")
    try:
        assert page.get_by_text("Page not found").count() == 0
        assert page.get_by_role("combobox", name="Dataset").first.input_value() == DEMO_NAME
    finally:
        ctx.close()
