"""The real server in headless Chromium (Debian's), driven by Playwright."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.cli import DEMO_NAME, build_demo
from core.store import Store
from tests.browser_util import ARTIFACTS, CHROMIUM_ARGS, chromium_path, dashboard_server

pytestmark = pytest.mark.browser


def test_demo_data_shows_in_the_browser(tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    db = tmp_path / "b.duckdb"
    with Store(db) as s:
        build_demo(s, n_problems=20, n_samples=8)
    with dashboard_server(db) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(url, wait_until="networkidle")
            page.get_by_text("Simulated benchmark").wait_for(timeout=30_000)
            # the dataset selector shows the demo's name (tables draw on a canvas)
            selector = page.get_by_role("combobox", name="Dataset")
            expect(selector).to_have_value(DEMO_NAME, timeout=30_000)
            page.screenshot(path=str(ARTIFACTS / "datasets.png"), full_page=True)
        finally:
            browser.close()
