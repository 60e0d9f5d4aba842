"""Start the real dashboard server for browser tests and find Debian's chromium."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def chromium_path() -> str:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        raise RuntimeError("Debian's chromium is missing: `make test` installs it with apt-get")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def dashboard_server(
    db: Path, timeout: float = 60.0, serve_args: Sequence[str] = ()
) -> Iterator[str]:
    """`ttslab serve` (with `serve_args`) on `db` in its own process group; its URL."""
    port = free_port()
    env = dict(os.environ, TTSLAB_DB=str(db))
    log = ARTIFACTS / f"server-{port}.log"
    ARTIFACTS.mkdir(exist_ok=True)
    with log.open("w") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "core.cli", "serve", "--port", str(port), *serve_args],
            cwd=ROOT,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            # its own process group: `ttslab serve` starts streamlit as a child process,
            # and both must go when the test ends (else the child keeps the DuckDB lock)
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + timeout
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"server exited early:\n{log.read_text()}")
                try:
                    with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"server did not start in {timeout} s:\n{log.read_text()}")
                time.sleep(0.3)
            yield url
        finally:
            _stop_group(proc)
    log.unlink(missing_ok=True)  # kept only when the server failed (the error above)


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """Stop the server and its child processes (the group started for it)."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    # the child may outlive the parent for a moment: wait for the group to empty
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


RUNNING_JS = (
    "() => document.querySelector(\"[data-testid='stApp']\")"
    "?.getAttribute('data-test-script-state') === 'running'"
    " || document.querySelector(\"[data-testid='stStatusWidget']\") !== null"
)


def wait_until_idle(page: object, timeout_ms: int = 120_000, settle_ms: int = 300) -> None:
    """Wait until Streamlit has finished the script run: the page's title is drawn and
    the app has not been running (its script-state attribute, or the status widget) for
    `settle_ms`."""
    pg: Any = page
    pg.wait_for_selector("[data-testid='stMain'] h1", timeout=timeout_ms)
    deadline = time.monotonic() + timeout_ms / 1000
    while True:
        pg.wait_for_function(
            f"() => !({RUNNING_JS})()",
            timeout=max(1, int((deadline - time.monotonic()) * 1000)),
            polling=50,
        )
        pg.wait_for_timeout(settle_ms)
        if not pg.evaluate(RUNNING_JS):
            return
        if time.monotonic() > deadline:
            raise TimeoutError("the app kept running")


def full_page_screenshot(page: object, path: Path, width: int = 1400) -> None:
    """Screenshot the whole app. Streamlit scrolls inside its main container, so the
    window is first made as tall as that container's content."""
    pg: Any = page
    height = pg.evaluate(
        "() => Math.max(600, ...['stMain', 'stSidebarContent']"
        ".map(t => document.querySelector(`[data-testid=${t}]`))"
        ".filter(e => e !== null).map(e => e.scrollHeight))"
    )
    old = pg.viewport_size
    pg.set_viewport_size({"width": width, "height": int(height) + 40})
    pg.wait_for_timeout(400)
    path.parent.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(path), full_page=True)
    if old:
        pg.set_viewport_size(old)


@contextmanager
def chromium() -> Iterator[Any]:
    """Debian's chromium, headless, driven by Playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def upload_through_the_page(
    page: Any,
    path: Path,
    name: str,
    wait: bool = True,
    before_import: Callable[[Any], None] | None = None,
) -> None:
    """On the Datasets page: choose `path` in the file chooser, name it, (set the form's
    options with `before_import`,) import it, and (with `wait`) wait for the success
    message."""
    with page.expect_file_chooser() as chooser:
        page.get_by_test_id("stFileUploaderDropzone").get_by_test_id(
            "stBaseButton-secondary"
        ).click()
    chooser.value.set_files(str(path))
    box = page.get_by_label("Dataset name")
    box.wait_for(timeout=30_000)
    box.fill(name)
    box.press("Enter")
    wait_until_idle(page)
    if before_import is not None:
        before_import(page)
    page.get_by_role("button", name="Import", exact=True).click()
    if not wait:
        return
    page.get_by_text(f"imported '{name}'").wait_for(timeout=60_000)
    wait_until_idle(page)
