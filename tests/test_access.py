"""Shared deployment: read-only viewers, editors (tokens or a proxy's user header), the
audit log, plain-text names, and `ttslab serve`'s address and signals."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.access import AccessError, AccessPolicy, add_editor, hash_token, read_editors
from core.cli import build_parser, serve_command
from core.cli import main as cli_main
from core.importers import import_path
from core.importers.writers import WRITERS
from core.store import Store, StoreError
from core.synth.demo import DEMO_NAME, build_demo
from core.types import TTSLabError
from tests.browser_util import (
    ARTIFACTS,
    chromium,
    dashboard_server,
    free_port,
    full_page_screenshot,
    upload_through_the_page,
    wait_until_idle,
)
from tests.conftest import SHARED_DATA, make_long_frame

ROOT = Path(__file__).resolve().parents[1]
MARKDOWN_NAME = "**bold** ![pixel](http://127.0.0.1:9/pixel.png) :red[x] $y$"


def _csv(tmp_path: Path, tag: str) -> Path:
    return WRITERS["long-csv"][0](make_long_frame(n_problems=3), tmp_path / f"{tag}.csv")


# --------------------------------------------------------------------------------------
# the policy
# --------------------------------------------------------------------------------------


def test_policy_roles(tmp_path: Path) -> None:
    editors = tmp_path / "editors.txt"
    token = add_editor(editors, "alice")
    assert token not in editors.read_text()  # only the hash is stored
    assert read_editors(editors) == {"alice": hash_token(token)}
    with pytest.raises(AccessError, match="already"):
        add_editor(editors, "alice")
    open_policy = AccessPolicy()
    assert open_policy.editor(None) == "dashboard"
    ro = AccessPolicy(read_only=True)
    assert ro.editor("anything") is None
    with pytest.raises(AccessError, match="read-only"):
        ro.require("dashboard")
    tok = AccessPolicy.from_env({"TTSLAB_EDITORS_FILE": str(editors)})
    assert tok.asks_for_token
    assert tok.editor(None) is None and tok.editor("wrong") is None
    assert tok.editor(token) == "editor:alice"
    with pytest.raises(AccessError, match="only editors"):
        tok.require(tok.editor("wrong"))
    proxy = AccessPolicy.from_env(
        {"TTSLAB_EDITORS_FILE": str(editors), "TTSLAB_USER_HEADER": "X-Forwarded-User"}
    )
    assert proxy.editor(None, {"x-forwarded-user": "alice"}) == "proxy:alice"
    assert proxy.editor(None, {"X-Forwarded-User": "mallory"}) is None
    assert proxy.editor(token, {}) is None  # behind a proxy, the header decides
    (tmp_path / "bad.txt").write_text("alice not-a-hash\n")
    with pytest.raises(AccessError, match=r"bad\.txt, line 1"):
        read_editors(tmp_path / "bad.txt")


def test_audit_log_records_who_changed_what(store: Store, tmp_path: Path) -> None:
    import_path(store, _csv(tmp_path, "a"), name="A", actor="editor:alice")
    import_path(store, _csv(tmp_path, "b"), name="A", replace=True, actor="editor:bob")
    store.delete_dataset("A", actor="proxy:carol")
    log = store.audit_log()
    assert list(log["what"]) == ["delete", "replace", "import"]
    assert list(log["who"]) == ["proxy:carol", "editor:bob", "editor:alice"]
    assert set(log["dataset"]) == {"A"}
    # a failed import changes nothing, the log included
    with pytest.raises(StoreError):
        import_path(store, _csv(tmp_path, "c"), name="id:nope")
    assert len(store.audit_log()) == 3
    # the CLI records the operating-system user
    import_path(store, _csv(tmp_path, "d"), name="D")
    assert store.audit_log()["who"].iloc[0].startswith("local:")


def test_a_read_only_store_refuses_every_change(tmp_path: Path) -> None:
    db = tmp_path / "ro.duckdb"
    with Store(db) as s:
        import_path(s, _csv(tmp_path, "a"), name="A")
    with Store(db, read_only=True) as s:
        with pytest.raises(StoreError, match="read-only"):
            s.delete_dataset("A")
        with pytest.raises(StoreError, match="read-only"):
            import_path(s, _csv(tmp_path, "b"), name="B")
        assert [i.name for i in s.list_datasets()] == ["A"]


def test_serve_listens_locally_unless_told(tmp_path: Path) -> None:
    parser = build_parser()
    cmd, env = serve_command(parser.parse_args(["serve", "--port", "9"]))
    assert cmd[cmd.index("--server.address") + 1] == "127.0.0.1"
    assert "TTSLAB_READ_ONLY" not in env
    editors = tmp_path / "e.txt"
    add_editor(editors, "alice")
    args = ["serve", "--address", "0.0.0.0", "--read-only", "--editors-file", str(editors)]
    cmd, env = serve_command(parser.parse_args(args))
    assert cmd[cmd.index("--server.address") + 1] == "0.0.0.0"
    assert env["TTSLAB_READ_ONLY"] == "1" and env["TTSLAB_EDITORS_FILE"] == str(editors)
    assert cli_main(["serve", "--editors-file", str(tmp_path / "missing.txt")]) != 0


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.browser
def test_sigterm_stops_everything_serve_started(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    with Store(db) as s:
        build_demo(s, n_problems=10, n_samples=4)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "core.cli", "serve", "--port", str(port)],
        cwd=ROOT,
        env=dict(os.environ, TTSLAB_DB=str(db)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2):
                    break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)  # as a service manager does: to this pid only
        proc.wait(timeout=30)
        deadline = time.monotonic() + 10
        while _port_open(port) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _port_open(port), "something still serves the port after SIGTERM"
    finally:
        if proc.poll() is None:
            proc.kill()


# --------------------------------------------------------------------------------------
# in a real browser
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def access_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("access")
    db = tmp / "a.duckdb"
    with Store(db) as s:
        build_demo(s, n_problems=20, n_samples=8)
        import_path(s, _csv(tmp, "md"), name=MARKDOWN_NAME)
    return db


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


def _choose(page: Any, name: str) -> None:
    box = page.get_by_role("combobox", name="Dataset")
    box.click()
    page.get_by_role("option", name=name, exact=True).click()
    wait_until_idle(page)


@pytest.mark.browser
def test_read_only_viewer_cannot_change_anything(access_db: Path, browser: Any) -> None:
    with dashboard_server(access_db, serve_args=["--read-only"]) as url:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        requested: list[str] = []
        page.on("request", lambda r: requested.append(r.url))
        try:
            page.goto(url, wait_until="domcontentloaded")
            wait_until_idle(page)
            page.get_by_text("This dashboard is read-only").wait_for(timeout=30_000)
            assert page.get_by_test_id("stFileUploaderDropzone").count() == 0
            assert page.get_by_role("button", name="Delete…").count() == 0
            # the markdown name is shown as written: no image fetched, no bold
            _choose(page, MARKDOWN_NAME)
            page.get_by_text(f"Selected: {MARKDOWN_NAME}", exact=True).wait_for(timeout=30_000)
            assert not any("pixel.png" in u for u in requested)
            assert page.locator("img[src*='pixel.png']").count() == 0
            full_page_screenshot(page, ARTIFACTS / "datasets_read_only.png")
        finally:
            page.close()
    with Store(access_db, read_only=True) as s:
        assert {i.name for i in s.list_datasets()} == {DEMO_NAME, MARKDOWN_NAME}


@pytest.mark.browser
def test_an_editor_uploads_and_deletes_and_the_log_says_so(
    access_db: Path, browser: Any, tmp_path: Path
) -> None:
    editors = tmp_path / "editors.txt"
    token = add_editor(editors, "alice")
    upload = _csv(tmp_path, "up")
    with dashboard_server(access_db, serve_args=["--editors-file", str(editors)]) as url:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        try:
            page.goto(url, wait_until="domcontentloaded")
            wait_until_idle(page)
            page.get_by_text("is for editors").wait_for(timeout=30_000)
            assert page.get_by_test_id("stFileUploaderDropzone").count() == 0
            box = page.get_by_label("Editor token", exact=True)
            box.fill("wrong token")
            box.press("Enter")
            wait_until_idle(page)
            assert page.get_by_test_id("stFileUploaderDropzone").count() == 0
            box.fill(token)
            box.press("Enter")
            wait_until_idle(page)
            upload_through_the_page(page, upload, "by alice")
            page.get_by_role("button", name="Delete…").click()
            wait_until_idle(page)
            page.get_by_role("button", name="Yes, delete it").click()
            page.get_by_text("Deleted 'by alice'").wait_for(timeout=30_000)
            page.get_by_text("audit log").click()
            wait_until_idle(page)
            full_page_screenshot(page, ARTIFACTS / "datasets_editor_audit.png")
        finally:
            page.close()
    with Store(access_db, read_only=True) as s:
        log = s.audit_log()
    mine = log[log["dataset"] == "by alice"]
    assert list(mine["what"]) == ["delete", "import"]
    assert set(mine["who"]) == {"editor:alice"}


@pytest.mark.browser
def test_a_visitor_during_a_long_import_waits_then_gets_the_page(
    tmp_path: Path, browser: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process holds the database longer than a page waits: the first visitor is
    told so, not shown a traceback, and gets the page once it is free."""
    monkeypatch.setenv("TTSLAB_STORE_WAIT_S", "2")
    db = tmp_path / "busy.duckdb"
    with Store(db) as s:
        build_demo(s, n_problems=10, n_samples=4)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; sys.path.insert(0, sys.argv[2]); from core.store import Store; "
            "s = Store(sys.argv[1]); print('held', flush=True); time.sleep(12); s.close()",
            str(db),
            str(ROOT),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with dashboard_server(db) as url:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            try:
                page.goto(url, wait_until="domcontentloaded")
                page.get_by_text("cannot be opened right now").wait_for(timeout=30_000)
                assert page.get_by_test_id("stException").count() == 0
                holder.wait(timeout=30)
                # the page retries by itself and shows the datasets
                page.get_by_role("heading", name="Datasets").wait_for(timeout=60_000)
                assert page.get_by_test_id("stException").count() == 0
            finally:
                page.close()
    finally:
        if holder.poll() is None:
            holder.kill()


WRITER = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
from core.cli import main
db, a, b, seconds = sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5])
ops = fails = 0
end = time.monotonic() + seconds
while time.monotonic() < end:
    for args in (
        ["import", a, "--name", "churn", "--quiet"],
        ["import", b, "--name", "churn", "--replace", "--quiet"],
        ["delete", "churn", "--yes"],
    ):
        rc = main(["--db", db, *args])
        ops += 1
        fails += rc != 0
print(f"ops {ops} fails {fails}", flush=True)
"""

READER = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
from core.store import Store
db, seconds = sys.argv[2], float(sys.argv[3])
checks = bad = seen = 0
end = time.monotonic() + seconds
while time.monotonic() < end:
    store = Store(db, read_only=True, shared=True)  # closed after each look
    with store._use():
        cur = store._cur()
        for dataset_id, name, n_scores in cur.execute(
            "SELECT dataset_id, name, n_scores FROM datasets"
        ).fetchall():
            got = cur.execute(
                "SELECT count(*) FROM scores WHERE dataset_id = ?", [dataset_id]
            ).fetchone()[0]
            checks += 1
            seen += name == "churn"
            bad += got != n_scores
    store.close()
    time.sleep(0.2)
print(f"checks {checks} bad {bad} seen {seen}", flush=True)
"""


@pytest.mark.browser
def test_changes_from_another_process_while_eight_sessions_read(
    tmp_path: Path, browser: Any
) -> None:
    """A second process imports, replaces and deletes for 35 seconds while 8 browser
    sessions read the dashboard and a third process checks every dataset it sees:
    no exception anywhere, and every dataset is seen complete or not at all."""
    db = tmp_path / "live.duckdb"
    with Store(db) as s:
        build_demo(s, n_problems=20, n_samples=8)
    a = WRITERS["long-csv"][0](make_long_frame(n_problems=3), tmp_path / "a.csv")
    b = WRITERS["long-csv"][0](make_long_frame(n_problems=6), tmp_path / "b.csv")
    seconds = 35.0
    with dashboard_server(db) as url:
        # eight tabs of one browser context: eight sessions (a session is a connection)
        # that load the app's scripts once (a context per tab loaded them eight times)
        tabs = browser.new_context(viewport={"width": 1200, "height": 800})
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(ROOT), str(db), str(a), str(b), str(seconds)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        reader = subprocess.Popen(
            [sys.executable, "-c", READER, str(ROOT), str(db), str(seconds)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        loads = 0
        exceptions: list[str] = []
        try:
            end = time.monotonic() + seconds
            pages = [tabs.new_page() for _ in range(8)]
            for i, page in enumerate(pages):
                page.goto(url + ("/budget" if i % 2 else ""), wait_until="commit")
            while True:
                # the eight sessions load at once (their script runs overlap on the
                # server), then each is waited for; rounds until the writer's time is up
                for page in pages:
                    wait_until_idle(page, timeout_ms=120_000)
                    loads += 1
                    if page.get_by_test_id("stException").count():
                        exceptions.append(page.get_by_test_id("stException").first.inner_text())
                if time.monotonic() >= end:
                    break
                for page in pages:
                    page.reload(wait_until="commit")
            w_out, w_err = writer.communicate(timeout=180)
            r_out, r_err = reader.communicate(timeout=180)
        finally:
            for p in (writer, reader):
                if p.poll() is None:
                    p.kill()
            tabs.close()
    assert not exceptions, exceptions[:3]
    assert "Traceback" not in w_err + r_err, (w_err + r_err)[-2000:]
    w_last = w_out.strip().splitlines()[-1]
    r_last = r_out.strip().splitlines()[-1]
    ops, fails = (int(v) for v in w_last.split()[1::2])
    checks, bad, seen = (int(v) for v in r_last.split()[1::2])
    print(f"page loads {loads}; writer: {w_last}; reader: {r_last}")
    assert fails == 0 and ops >= 4, w_out
    # the reader looked again and again (about one look a second on a loaded machine)
    assert bad == 0 and checks >= 10 and seen > 0, r_out
    assert loads >= 8  # every session reloaded while the writer ran


# --------------------------------------------------------------------------------------
# stopping an import: a time limit, a cancel, Ctrl-C
# --------------------------------------------------------------------------------------

SAL = SHARED_DATA / "sal_best_of_n"


def test_an_import_past_its_time_limit_or_cancelled_stores_nothing(
    store: Store, tmp_path: Path
) -> None:
    import threading

    from core.importers import ImportStopped

    src = tmp_path / "sal.jsonl"
    lines = (SAL / "llama32_1b_math500_n4.jsonl").read_bytes().splitlines(keepends=True)[:20]
    src.write_bytes(b"".join(lines))
    with pytest.raises(ImportStopped, match="time limit"):
        import_path(store, src, name="late", time_limit_s=0.0)
    stop = threading.Event()
    stop.set()
    with pytest.raises(ImportStopped, match="cancelled"):
        import_path(store, src, name="late", cancel=stop)
    assert store.list_datasets() == [] and store.audit_log().empty
    # with time enough, the same file imports whole (4 samples per problem line)
    assert import_path(store, src, name="in time", time_limit_s=600).info.n_responses == 4 * len(
        lines
    )


def test_cpu_and_time_limits_stop_grading_mid_chunk(store: Store, tmp_path: Path) -> None:
    """768 answers take tens of seconds of grading: a 3 s CPU limit stops it while the
    workers grade (this process only waits then, so only the workers' CPU can reach the
    limit), and so does a wall-clock limit; nothing is stored."""
    from core.importers import ImportStopped
    from core.importers.budget import WorkBudget, process_cpu_s

    src = tmp_path / "sal256.jsonl"
    src.write_bytes(
        b"".join((SAL / "llama32_1b_math500_n256_truncated.jsonl").open("rb").readlines()[:3])
    )
    seen: list[str] = []

    def progress(stage: str, done: int, total: int) -> None:
        seen.append(stage)

    with pytest.raises(ImportStopped, match=r"more than its 3 s of CPU time \(at: grading") as ei:
        import_path(store, src, name="x", cpu_limit_s=3.0, progress=progress)
    assert "nothing was imported" in str(ei.value)
    assert not any(s.startswith("validating") for s in seen)
    with pytest.raises(ImportStopped, match=r"4 s time limit \(at: grading"):
        import_path(store, src, name="x", time_limit_s=4.0)
    assert store.list_datasets() == [] and store.audit_log().empty
    # the CPU reader: this process's own CPU time, as the OS counts it
    own = process_cpu_s(os.getpid())
    assert own is not None and abs(own - time.process_time()) < 1.0
    with pytest.raises(TTSLabError, match=">= 0"):
        WorkBudget(cpu_s=-1.0)


@pytest.mark.browser
def test_the_stop_button_ends_an_upload_in_the_middle_of_grading(
    tmp_path: Path, browser: Any
) -> None:
    """768 answers to grade (a minute or more with the one worker `ttslab serve` leaves):
    "Stop the import" ends it within seconds, says so, and stores nothing."""
    db = tmp_path / "stop.duckdb"
    with Store(db) as s:
        build_demo(s, n_problems=20, n_samples=8)
    src = tmp_path / "sal256.jsonl"
    src.write_bytes(
        b"".join((SAL / "llama32_1b_math500_n256_truncated.jsonl").open("rb").readlines()[:3])
    )
    with dashboard_server(db) as url:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        try:
            page.goto(url, wait_until="domcontentloaded")
            wait_until_idle(page)
            upload_through_the_page(page, src, "never stored", wait=False)
            page.get_by_text(re.compile(r"^grading")).first.wait_for(timeout=60_000)
            clicked = time.monotonic()
            page.get_by_role("button", name="Stop the import").click()
            page.get_by_text("The import was stopped: nothing was imported").wait_for(
                timeout=30_000
            )
            stopped_after = time.monotonic() - clicked
            wait_until_idle(page)
            full_page_screenshot(page, ARTIFACTS / "datasets_import_stopped.png")
        finally:
            page.close()
    print(f"stopped {stopped_after:.1f} s after the click")
    with Store(db, read_only=True) as s:
        assert [i.name for i in s.list_datasets()] == [DEMO_NAME]
        assert "never stored" not in set(s.audit_log()["dataset"])


def _sigint_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.browser
def test_ctrl_c_stops_an_import_and_its_graders(tmp_path: Path) -> None:
    """Ctrl-C (SIGINT to the terminal's process group) in the middle of grading: the
    command ends at once with nothing stored, and no grading worker is left behind."""
    src = tmp_path / "sal256.jsonl"
    src.write_bytes(
        b"".join((SAL / "llama32_1b_math500_n256_truncated.jsonl").open("rb").readlines()[:3])
    )
    db = tmp_path / "c.duckdb"
    proc = subprocess.Popen(
        [sys.executable, "-m", "core.cli", "--db", str(db), "import", str(src), "--name", "x"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        # as from a terminal: a shell without job control starts background commands
        # with SIGINT ignored, and the ignore is inherited (a test run started with `&`
        # from a script then waited here for the whole grading)
        preexec_fn=_sigint_default,
    )
    try:
        time.sleep(6.0)  # reading done, grading 768 answers (about 40 s) under way
        assert proc.poll() is None, proc.communicate()
        os.killpg(proc.pid, signal.SIGINT)
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode != 0
    assert "Traceback" not in err, err[-2000:]
    assert "interrupted" in err or "nothing was imported" in err
    deadline = time.monotonic() + 10
    alive = True
    while alive and time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
            time.sleep(0.2)
        except ProcessLookupError:
            alive = False
    assert not alive, "grading workers outlived the command"
    if db.exists():
        with Store(db, read_only=True) as s:
            assert s.list_datasets() == []


def test_serve_leaves_a_core_for_serving_while_grading(monkeypatch: pytest.MonkeyPatch) -> None:
    from core.grading import GRADE_WORKERS_ENV, default_workers

    monkeypatch.delenv(GRADE_WORKERS_ENV, raising=False)
    _, env = serve_command(build_parser().parse_args(["serve"]))
    assert int(env[GRADE_WORKERS_ENV]) == max(1, (os.cpu_count() or 2) - 1)
    monkeypatch.setenv(GRADE_WORKERS_ENV, "1")
    assert default_workers() == 1


def test_serve_turns_off_streamlits_collection_after_every_run() -> None:
    # gc.collect(2) after each script run held the interpreter lock while the run's last
    # message waited to be sent (150-170 ms of each interaction); Python's own
    # generational collector still runs (bench/RESULTS.md: memory stays flat)
    from streamlit import config

    cmd, _ = serve_command(build_parser().parse_args(["serve"]))
    assert cmd[cmd.index("--runner.postScriptGC") + 1] == "false"
    assert config.get_option("runner.postScriptGC") is True  # Streamlit's default: it matters
