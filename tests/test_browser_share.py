"""Sharing: every page has its own address and its controls live in the query string,
so a URL copied from one browser and opened in a fresh one draws the same chart; every
chart downloads as SVG, PDF, PNG and CSV; a dataset's HTML report downloads and opens.

For every page: open it, change controls (the sidebar's dataset, and a page control where
the page has one), take the address the app wrote, open it in a new page of a second
browser context, which only ever opens copied addresses (no session, cookies or storage
shared with the first), and compare the Plotly data drawn there with the first one's. The
same page opened without the query string draws something else, so the comparison can
fail.
"""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import numpy as np
import pandas as pd
import pytest

from core.cli import DEMO_NAME, build_demo
from core.store import Store
from core.synth.examples import EXAMPLE_FILES, EXAMPLES_DIR
from tests.browser_util import (
    chromium,
    dashboard_server,
    upload_through_the_page,
    wait_until_idle,
)

pytestmark = pytest.mark.browser

SECOND = "second demo"
VIEWPORT = {"width": 1400, "height": 900}


DBS: dict[str, Path] = {}  # server URL -> its database


def server_db(url: str) -> Path:
    return DBS[url]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    db = tmp_path_factory.mktemp("url") / "u.duckdb"
    with Store(db) as s:
        build_demo(s, n_problems=40, n_samples=16)
        build_demo(s, n_problems=30, n_samples=16, seed=1, name=SECOND)
    with dashboard_server(db) as url:
        DBS[url] = db
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


class _Tab:
    """A page of one of the module's two browser contexts; `close()` closes the page.
    Every page is a session of its own (Streamlit's state lives per connection); the
    contexts are kept for the module so that the app's scripts and Plotly are loaded
    once per context instead of once per test (a cold load took 3-5 s a time)."""

    def __init__(self, page: Any) -> None:
        self.page = page

    def close(self) -> None:
        self.page.close()


@pytest.fixture(scope="module")
def contexts(browser: Any) -> Iterator[dict[str, Any]]:
    """'sender': where views are made and their URLs copied from; 'receiver': a second
    browser context (no cookies, storage or cache shared with the sender) where copied
    URLs are opened, each in a new page, so nothing but the address carries the view."""
    made = {role: browser.new_context(viewport=VIEWPORT) for role in ("sender", "receiver")}
    try:
        yield made
    finally:
        for c in made.values():
            c.close()


def _fresh(
    contexts: dict[str, Any], url: str, height: int = VIEWPORT["height"], role: str = "sender"
) -> tuple[_Tab, Any]:
    """A new page (a new session) at `url` in the `role` context."""
    page = contexts[role].new_page()
    if height != VIEWPORT["height"]:
        page.set_viewport_size({**VIEWPORT, "height": height})
    page.goto(url, wait_until="domcontentloaded")
    wait_until_idle(page)
    return _Tab(page), page


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


def _dataset(page: Any) -> None:
    _choose(page, "Dataset", SECOND)


# page path -> (the change, the query key it must write): a page control where the page
# has one, else the sidebar's dataset
CHANGES: dict[str, tuple[Callable[[Any], None], str]] = {
    "datasets": (_dataset, "dataset"),
    "weights": (lambda p: _radio(p, "logit(s)"), "weights_axis"),
    "budget": (lambda p: _radio(p, "gain over a baseline"), "b_mode"),
    "adaptive": (lambda p: _choose(p, "Verifier", "sim-grm-orm"), "verifier"),
    "frontier": (lambda p: _choose(p, "Verifier", "sim-grm-orm"), "f_verifier"),
    "compare": (lambda p: _radio(p, "accuracy"), "c_metric"),
    "transfer": (_dataset, "dataset"),
    "allocation": (lambda p: _choose(p, "Verifier", "sim-grm-orm"), "verifier"),
    "combine": (_dataset, "dataset"),
    "problems": (lambda p: _choose(p, "Verifier", "sim-grm-orm"), "verifier"),
}


@pytest.mark.parametrize("path", list(CHANGES))
def test_a_copied_url_reproduces_the_view(server: str, contexts: dict[str, Any], path: str) -> None:
    change, key = CHANGES[path]
    ctx_a, a = _fresh(contexts, f"{server}/{path}")
    try:
        assert urlparse(a.url).path == f"/{path}", a.url
        default_view = _plot(a)
        change(a)
        shown = _plot(a)
        url = a.url
    finally:
        ctx_a.close()
    query = parse_qs(urlparse(url).query, keep_blank_values=True)
    assert key in query, url
    assert "dataset" in query, url  # the sidebar's controls are in every page's address
    assert shown != default_view  # the change changed the chart

    ctx_b, b = _fresh(contexts, url, role="receiver")  # nothing but the address
    try:
        dataset = b.get_by_role("combobox", name="Dataset").first.input_value()
        assert dataset.startswith(query["dataset"][0])
        assert _plot(b) == shown
        assert b.locator("[data-testid='stException']").count() == 0
    finally:
        ctx_b.close()


def test_the_bare_address_opens_the_first_page_under_its_path(
    server: str, contexts: dict[str, Any]
) -> None:
    ctx, page = _fresh(contexts, f"{server}/?dataset={SECOND.replace(' ', '+')}")
    try:
        page.wait_for_url("**/datasets?**", timeout=30_000)
        assert page.get_by_role("combobox", name="Dataset").first.input_value().startswith(SECOND)
        assert page.get_by_text("Page not found").count() == 0
    finally:
        ctx.close()
    ctx, page = _fresh(contexts, f"{server}/datasets")
    try:
        assert page.get_by_text("Page not found").count() == 0
        assert page.get_by_role("combobox", name="Dataset").first.input_value() == DEMO_NAME
    finally:
        ctx.close()


def _download(page: Any, label: str) -> bytes:
    with page.expect_download(timeout=120_000) as info:
        page.get_by_role("button", name=label, exact=True).first.click()
    path = info.value.path()
    return Path(path).read_bytes()


def test_every_chart_export_is_a_valid_file(server: str, contexts: dict[str, Any]) -> None:
    ctx, page = _fresh(contexts, f"{server}/compare?c_budget=8")
    try:
        _plot(page)
        svg = _download(page, "SVG")
        assert ET.fromstring(svg).tag.endswith("svg")
        assert b"Gain over" in svg  # the chart's own title
        pdf = _download(page, "PDF")
        assert pdf.startswith(b"%PDF-") and b"%%EOF" in pdf[-64:]
        png = _download(page, "PNG")
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 20_000
        numbers = pd.read_csv(io.BytesIO(_download(page, "CSV (numbers)")))
        heat = numbers[numbers["type"] == "heatmap"]
        z = heat["z"].astype(float).to_numpy()
        drawn = page.evaluate(
            "() => document.querySelector('.js-plotly-plot').calcdata[0][0].z"
            ".map(r => Array.from(r).map(v => v === null ? NaN : v))"
        )
        want = np.asarray(drawn, dtype=float).ravel()
        np.testing.assert_allclose(np.sort(z[np.isfinite(z)]), np.sort(want[np.isfinite(want)]))
        assert page.locator("[data-testid='stException']").count() == 0
    finally:
        ctx.close()


def test_the_report_downloads_and_opens_with_its_figures(
    server: str, contexts: dict[str, Any], browser: Any, tmp_path: Path
) -> None:
    ctx, page = _fresh(contexts, f"{server}/datasets")
    try:
        page.get_by_role("button", name="Build an HTML report").click()
        page.get_by_role("button", name="Download the report (HTML)").wait_for(timeout=300_000)
        html = _download(page, "Download the report (HTML)")
    finally:
        ctx.close()
    out = tmp_path / "report.html"
    out.write_bytes(html)
    n_figs = html.count(b"Plotly.newPlot(")
    assert n_figs >= 4
    ctx = browser.new_context(viewport=VIEWPORT)
    try:
        tab = ctx.new_page()
        tab.route(re.compile(r"^https?://"), lambda route: route.abort())  # self-contained
        tab.goto(out.as_uri())
        tab.wait_for_function(
            f"() => document.querySelectorAll('.js-plotly-plot .main-svg').length >= {n_figs}",
            timeout=60_000,
        )
        assert tab.get_by_role("heading", name="Budget curves").count() == 1
    finally:
        ctx.close()


def test_a_click_on_a_compare_cell_opens_its_problems(
    server: str, contexts: dict[str, Any]
) -> None:
    ctx, page = _fresh(contexts, f"{server}/compare?c_budget=8&c_metric=gain&c_baseline=majority")
    try:
        _plot(page)
        # the cell marker of the first pair and the second strategy column (the first is
        # the baseline's own column, which has nothing to contrast)
        cells: list[dict[str, Any]] = page.evaluate(
            """() => {
                const el = document.querySelector('.js-plotly-plot');
                const t = el._fullData.find(d => d.name === 'cells');
                const xa = el._fullLayout.xaxis, ya = el._fullLayout.yaxis;
                const box = el.querySelector('.nsewdrag').getBoundingClientRect();
                return Array.from(t.customdata).map((c, k) => ({
                    i: c[0], j: c[1], x: t.x[k], y: t.y[k],
                    px: box.left + xa.l2p(xa.d2l(t.x[k])),
                    py: box.top + ya.l2p(ya.d2l(t.y[k]))}));
            }"""
        )
        strategies = page.evaluate("() => document.querySelector('.js-plotly-plot')._fullData[0].x")
        target = next(c for c in cells if c["i"] == 0 and c["j"] == 1)
        page.mouse.click(target["px"], target["py"])
        page.wait_for_url("**/problems?**", timeout=60_000)
        wait_until_idle(page)
        query = parse_qs(urlparse(page.url).query)
        assert query["p_filter"] == ["a_right_b_wrong"]
        assert query["p_b"] == ["majority"] and query["p_n"] == ["8"]
        assert query["p_a"] != ["majority"] and query["llm"] and query["verifier"]
        shown = page.get_by_role("combobox", name="List the problems").first.input_value()
        assert shown == "A right, B wrong at N"
        assert (
            page.get_by_role("combobox", name="Strategy B").first.input_value() == "Majority vote"
        )
        strategy_a = page.get_by_role("combobox", name="Strategy A").first.input_value()
        assert strategy_a.replace(" ", "") in str(strategies[1]).replace("<br>", "").replace(
            " ", ""
        )
        body = page.locator("[data-testid='stMain']").inner_text()
        assert "wrong at N = 8" in body
        assert page.locator("[data-testid='stException']").count() == 0
    finally:
        ctx.close()


def test_the_upload_forms_options_reach_the_stored_dataset(
    server: str, contexts: dict[str, Any], tmp_path: Path
) -> None:
    src = pd.read_json(EXAMPLES_DIR / EXAMPLE_FILES["long-jsonl"], lines=True)
    one = src[(src["llm"] == src["llm"].iloc[0]) & (src["verifier"] == src["verifier"].iloc[0])]
    lines = one.to_json(orient="records", lines=True).splitlines()
    cut = tmp_path / "cut_off.jsonl"
    cut.write_text("\n".join([*lines, lines[0][: len(lines[0]) // 2]]))  # a cut-off last line
    ctx, page = _fresh(contexts, f"{server}/datasets")
    try:
        upload_through_the_page(page, cut, "with options", wait=False, before_import=_options)
        page.get_by_text("imported 'with options'").wait_for(timeout=60_000)
        assert page.locator("[data-testid='stException']").count() == 0
    finally:
        ctx.close()
    db = Path(server_db(server))
    with Store(db, read_only=True, shared=True) as s:
        info = s.get_dataset("with options")
    assert info.llms == ("my-llm",) and info.verifiers == ("my-prm",)
    assert info.lower_is_better == ("my-prm",)
    assert info.iid is False
    assert info.n_responses == len(lines)  # the cut-off line was skipped ...
    assert "line" in (info.notes or "") and str(len(lines) + 1) in (
        info.notes or ""
    )  # ... and noted


def _options(page: Any) -> None:
    page.get_by_text("Import options").click()
    page.get_by_role("textbox", name="LLM name").fill("my-llm")
    page.get_by_role("textbox", name="Verifier name").fill("my-prm")
    page.get_by_role("textbox", name="Verifiers where lower is better").fill("my-prm")
    page.get_by_text("Samples are not independent draws").click()
    page.get_by_text("Import the complete records only").click()
    page.get_by_role("textbox", name="Verifiers where lower is better").press("Tab")
    wait_until_idle(page)


STRATEGIES_ON_BUDGET = {
    "best_of_n",
    "vanilla_wv",
    "logit_wv",
    "kde_wv",
    "posterior_vote",
    "bayes_optimal",
    "pass_at_n",
}


def test_a_click_on_a_budget_curve_point_opens_its_problems(
    server: str, contexts: dict[str, Any]
) -> None:
    # tall enough that the chart's points are on screen without scrolling
    ctx, page = _fresh(contexts, f"{server}/budget?b_layout=panels&b_mode=accuracy", 2000)
    try:
        _plot(page)
        # the point (at N = 4) farthest from every other curve's, so the click is its
        target: dict[str, Any] = page.evaluate(
            """() => {
                const el = document.querySelector('.js-plotly-plot');
                const lines = el._fullData.filter(d => d.mode === 'lines+markers'
                    && d.xaxis === 'x' && d.customdata && d.legendgroup !== 'majority');
                const i = 2;
                const xa = el._fullLayout.xaxis, ya = el._fullLayout.yaxis;
                const box = el.querySelector('.nsewdrag').getBoundingClientRect();
                const all = el._fullData.filter(d => d.mode === 'lines+markers' && d.xaxis === 'x');
                let best = null, gap = -1;
                for (const t of lines) {
                    const others = all.filter(o => o !== t).map(o => Math.abs(o.y[i] - t.y[i]))
                        .filter(Number.isFinite);
                    const g = Math.min(...others);
                    if (g > gap) { gap = g; best = t; }
                }
                return {px: box.left + xa.l2p(xa.d2l(best.x[i])),
                        py: box.top + ya.l2p(ya.d2l(best.y[i])),
                        n: best.x[i], strategy: best.legendgroup};
            }"""
        )
        page.mouse.click(target["px"], target["py"])
        page.wait_for_url("**/problems?**", timeout=60_000)
        wait_until_idle(page)
        query = parse_qs(urlparse(page.url).query)
        assert query["p_filter"] == ["a_right_b_wrong"]
        # the strategy Plotly's hit test gave the click (curves lie close together on
        # this small demo): one of the chart's, never the baseline
        assert query["p_a"][0] in STRATEGIES_ON_BUDGET and query["p_a"] != ["majority"]
        assert query["p_b"] == ["majority"]
        assert query["p_n"] == [str(int(target["n"]))] == ["4"]
        assert page.locator("[data-testid='stException']").count() == 0
    finally:
        ctx.close()
