"""Dashboard responsiveness in a real browser on the full-size demo data.

Starts the real server (`ttslab serve`) on the demo benchmark (5 LLMs x 7 verifiers x 500
problems x 64 samples, built in bench/_work/ if missing), drives headless Chromium with
Playwright, warms the caches by visiting every page and every control state once (the
cold times are reported too), then times page switches and control changes: from the
click (or key press) until the page has settled - the script no longer running, the page
title drawn, the chart or widgets changed and quiet for 300 ms (the time of the last
change counts). Prints median and max and appends them, with machine and date, to
bench/RESULTS.md. Targets: warm interactions, median under 300 ms; first visits from an
empty result cache (`--first-visits`: a new server per page, with the background curve
warm-up off, as before, and on), under 5 s each.

    .venv/bin/python bench/bench_dashboard.py --all --fresh   # both, one run
    .venv/bin/python bench/bench_dashboard.py [--rounds 3] [--first-visits] [--no-write]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import re
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.cli import DEMO_NAME, build_demo  # noqa: E402
from core.store import Store  # noqa: E402
from tests.browser_util import (  # noqa: E402
    CHROMIUM_ARGS,
    RUNNING_JS,
    chromium_path,
    dashboard_server,
    wait_until_idle,
)

WORK = ROOT / "bench" / "_work"
DB = WORK / "dashboard_demo.duckdb"
RESULTS = ROOT / "bench" / "RESULTS.md"
TARGET = 1.0

SIGNATURE_JS = (
    """() => {
  const busy = ("""
    + RUNNING_JS
    + """)();
  const h1 = document.querySelector("[data-testid='stMain'] h1");
  const labels = Array.from(document.querySelectorAll("[data-testid='stWidgetLabel']"))
    .map(e => e.innerText).join('|');
  let sig = '';
  // every chart on the page (a side chart, such as the offset search, comes first)
  for (const el of document.querySelectorAll('.js-plotly-plot')) {
    if (!el._fullData) continue;
    sig += '#' + (((el.layout || {}).title || {}).text || '');
    sig += '|' + ((el.layout || {}).annotations || []).map(a => a.text).join('|');
    for (const t of el._fullData) {
      sig += '|' + (t.name || '');
      for (const v of [t.x, t.z || t.y]) {
        if (v) sig += ':' + v.length + ':' + Array.from(v).slice(0, 60).flat().join(',');
      }
    }
  }
  const progress = document.querySelector("[data-testid='stProgress']") !== null;
  return {busy: busy, title: h1 ? h1.innerText : '', sig: sig, labels: labels,
          progress: progress};
}"""
)


def _state(page: Any) -> dict[str, Any]:
    out: dict[str, Any] = page.evaluate(SIGNATURE_JS)
    return out


def timed(
    page: Any,
    action: Callable[[], None],
    title: str,
    chart: bool = True,
    prepare: Callable[[], None] | None = None,
    quiet_ms: float = 300.0,
    probe: list[float] | None = None,
    t_start: float | None = None,
) -> float:
    """Seconds from `action` until the page has settled: the app is not running, the
    page shows `title` (and, if `chart`, a Plotly chart), something changed (chart data,
    title, annotations or widget labels), and nothing has changed for `quiet_ms`. The
    time reported is that of the last change. `prepare` (e.g. opening a dropdown) runs
    before the clock starts."""
    if prepare is not None:
        prepare()
    st = _state(page)
    before = st["sig"] + "#" + st["labels"]
    t0 = time.perf_counter() if t_start is None else t_start
    action()
    last_sig, last_t = before, t0
    deadline = t0 + 120
    while True:
        now = time.perf_counter()
        s = _state(page)
        if probe is not None and not probe and (s["progress"] or s["sig"]):
            probe.append(now - t0)
        sig = s["sig"] + "#" + s["labels"]
        if sig != last_sig:
            last_sig, last_t = sig, now
        ready = (
            not s["busy"]
            and s["title"] == title
            and (not chart or s["sig"] != "")
            and last_sig != before
        )
        if ready and (now - last_t) * 1000 >= quiet_ms:
            return last_t - t0
        if now > deadline:
            raise TimeoutError(f"the page did not settle after the action ({title})")
        page.wait_for_timeout(15)


def nav(page: Any, label: str) -> Callable[[], None]:
    return lambda: page.get_by_test_id("stSidebarNav").get_by_text(label, exact=True).click()


def open_box(page: Any, combobox: str) -> Callable[[], None]:
    return lambda: page.get_by_role("combobox", name=combobox).click()


def choose(page: Any, option: str) -> Callable[[], None]:
    return lambda: page.get_by_role("option", name=option, exact=True).click()


def pick(page: Any, combobox: str, option: str) -> dict[str, Callable[[], None]]:
    """A selectbox choice: the dropdown opens before the clock starts."""
    return {"prepare": open_box(page, combobox), "action": choose(page, option)}


def click_text(page: Any, text: str) -> Callable[[], None]:
    return lambda: page.get_by_text(text, exact=True).click()


def key_on_slider(page: Any, index: int, key: str) -> Callable[[], None]:
    def run() -> None:
        s = page.get_by_role("slider").nth(index)
        s.focus()
        s.press(key)

    return run


PAGES = [  # the app opens on Datasets; every pass ends elsewhere
    ("Weight functions", "Weight functions", True),
    ("Budget curves", "Budget curves", True),
    ("Compare", "Compare strategies", True),
    ("Problem explorer", "Problem explorer", True),
    ("Datasets", "Datasets", False),
]


def scenario(page: Any, record: Callable[[str, str, float], None]) -> None:
    """One pass over every page switch and control change (first pass = warm-up)."""
    for label, title, chart in PAGES:
        record("page switch", f"to {label}", timed(page, nav(page, label), title, chart))
    # weight functions
    wt = "Weight functions"
    timed(page, nav(page, wt), wt)
    record(
        "control",
        "calibrator KDE -> logit",
        timed(page, title=wt, **pick(page, "Calibrator", "Logit WV")),
    )
    record(
        "control",
        "offset b by hand on",
        timed(page, click_text(page, "Set b by hand"), wt),
    )
    record(
        "control", "offset slider (new b)", timed(page, key_on_slider(page, -1, "ArrowLeft"), wt)
    )
    record(
        "control",
        "offset b by hand off",
        timed(page, click_text(page, "Set b by hand"), wt),
    )
    record(
        "control",
        "calibrator logit -> KDE",
        timed(page, title=wt, **pick(page, "Calibrator", "KDE WV (Thm 3.2)")),
    )
    record("control", "score axis -> logit", timed(page, click_text(page, "logit(s)"), wt))
    record("control", "score axis -> score", timed(page, click_text(page, "score s"), wt))
    record(
        "control",
        "pair: verifier -> easy2hard",
        timed(page, title=wt, **pick(page, "Verifier", "sim-easy2hard-last")),
    )
    record(
        "control",
        "pair: verifier -> qwen-orm",
        timed(page, title=wt, **pick(page, "Verifier", "sim-qwen-orm")),
    )
    record("control", "all pairs (small multiples)", timed(page, click_text(page, "all pairs"), wt))
    record("control", "back to one pair", timed(page, click_text(page, "one pair"), wt))
    # budget curves
    bt = "Budget curves"
    timed(page, nav(page, bt), bt)
    record(
        "control",
        "efficiency of -> KDE WV",
        timed(page, title=bt, **pick(page, "Efficiency of", "KDE WV (Thm 3.2)")),
    )
    record(
        "control",
        "efficiency of -> logit WV",
        timed(page, title=bt, **pick(page, "Efficiency of", "Logit WV")),
    )
    # compare
    ct = "Compare strategies"
    timed(page, nav(page, "Compare"), ct)
    record("control", "budget N 32 -> 16", timed(page, key_on_slider(page, 0, "ArrowLeft"), ct))
    record("control", "budget N 16 -> 32", timed(page, key_on_slider(page, 0, "ArrowRight"), ct))
    record(
        "control",
        "baseline -> weighted vote",
        timed(page, title=ct, **pick(page, "Baseline", "Vanilla WV")),
    )
    record(
        "control",
        "baseline -> majority vote",
        timed(page, title=ct, **pick(page, "Baseline", "Majority vote")),
    )
    record("control", "colour by accuracy", timed(page, click_text(page, "accuracy"), ct))
    record("control", "colour by gain", timed(page, click_text(page, "gain"), ct))
    # problem explorer
    pt = "Problem explorer"
    timed(page, nav(page, pt), pt)
    for _ in range(3):
        box = page.get_by_role("combobox", name=re.compile(r"^Problem \("))

        def open_next(box: Any = box) -> None:
            box.click()
            box.press("ArrowDown")

        record(
            "control",
            "next problem",
            timed(page, lambda box=box: box.press("Enter"), pt, prepare=open_next),
        )
    record(
        "control",
        "list all problems",
        timed(page, title=pt, **pick(page, "List the problems", "all problems")),
    )
    record(
        "control",
        "list where strategies disagree",
        timed(page, title=pt, **pick(page, "List the problems", "where the strategies disagree")),
    )


#: every page: sidebar label, page title, whether it draws a chart
ALL_PAGES = [
    ("Datasets", "Datasets", False),
    ("Weight functions", "Weight functions", True),
    ("Budget curves", "Budget curves", True),
    ("Adaptive sampling", "Adaptive sampling", True),
    ("Compute frontier", "Compute frontier", True),
    ("Compare", "Compare strategies", True),
    ("Transfer", "Calibration transfer", True),
    ("Allocation by difficulty", "Allocation by difficulty", True),
    ("Combine signals", "Combine signals", True),
    ("Problem explorer", "Problem explorer", True),
]
FIRST_VISIT_TARGET = 5.0
READ_S = 10.0  # seconds a reader spends on the Datasets page before the first analysis page


def first_visits(
    pristine: Path, warm: bool = True, read_s: float = 0.0
) -> list[tuple[str, float, float]]:
    """For every page: a new server on a copy of the store with an empty result cache
    (with the background curve warm-up on or off); the Datasets page opens (the server
    process imports its modules; nothing is computed by the page) and is read for
    `read_s` seconds, then the page is visited from the sidebar and timed until it has
    settled. Returns (page, seconds, seconds until the first progress bar or chart)."""
    from playwright.sync_api import sync_playwright

    out = []
    os.environ["TTSLAB_WARM"] = "1" if warm else "0"
    for label, title, chart in ALL_PAGES:
        db = WORK / "first_visit.duckdb"
        shutil.copy(pristine, db)
        Path(str(db) + ".wal").unlink(missing_ok=True)
        with dashboard_server(db, timeout=120) as url, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(url, wait_until="domcontentloaded")
            wait_until_idle(page)
            page.wait_for_timeout(int(1000 * read_s))
            if label == "Datasets":
                t = time.perf_counter()
                page.reload(wait_until="domcontentloaded")
                wait_until_idle(page)
                seconds, shown = time.perf_counter() - t, math.nan
            else:
                seen: list[float] = []
                t0 = time.perf_counter()

                def action(page: Any = page, label: str = label) -> None:
                    nav(page, label)()

                seconds = timed(page, action, title, chart, probe=seen, t_start=t0)
                shown = seen[0] if seen else math.nan
            browser.close()
        print(
            f"first visit ({'warm-up on' if warm else 'warm-up off'}) {label:26s} "
            f"{seconds:6.2f} s (feedback after {shown:.2f} s)"
        )
        out.append((label, seconds, shown))
    db.unlink(missing_ok=True)
    return out


def machine() -> str:
    import numpy

    load = os.getloadavg()
    return (
        f"{platform.platform()}, {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, numpy {numpy.__version__}; load average (1/5/15 min) "
        f"{load[0]:.2f}/{load[1]:.2f}/{load[2]:.2f}"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3, help="timed passes after the warm-up")
    ap.add_argument("--no-write", action="store_true", help="do not append to RESULTS.md")
    ap.add_argument(
        "--fresh",
        action="store_true",
        help="rebuild the store first, so the warm-up pass starts with an empty result cache",
    )
    ap.add_argument(
        "--first-visits",
        action="store_true",
        help="only time every page's first visit from an empty result cache",
    )
    ap.add_argument(
        "--all",
        action="store_true",
        help="first visits, then the warm timings, in one run (use with --fresh)",
    )
    args = ap.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    if args.fresh:
        for p in (DB, DB.with_name(DB.name + ".wal")):
            p.unlink(missing_ok=True)
    if args.first_visits or args.all:
        first_visit_report(args.no_write)
        if not args.all:
            return 0
        os.environ["TTSLAB_WARM"] = "1"
    t = time.perf_counter()
    with Store(DB) as s:
        if not s.has_dataset(DEMO_NAME):
            build_demo(s)
        info = s.get_dataset(DEMO_NAME)
    build_s = time.perf_counter() - t
    print(f"demo store ready ({info.n_responses:,} responses) in {build_s:.1f} s: {DB}")
    from playwright.sync_api import sync_playwright

    warm: list[tuple[str, str, float]] = []
    timed_runs: list[tuple[str, str, float]] = []
    load_start = os.getloadavg()
    with dashboard_server(DB, timeout=120) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        t = time.perf_counter()
        page.goto(url, wait_until="domcontentloaded")
        wait_until_idle(page)
        first = time.perf_counter() - t
        print(f"first page load: {first:.2f} s")
        t = time.perf_counter()
        scenario(page, lambda k, n, s: warm.append((k, n, s)))
        warm_s = time.perf_counter() - t
        print(f"warm-up pass (computes and caches): {warm_s:.1f} s")
        for k, n, s in warm:
            print(f"  cold {k:12s} {n:32s} {s:7.3f} s")
        for r in range(args.rounds):
            scenario(page, lambda k, n, s: timed_runs.append((k, n, s)))
            print(f"round {r + 1} done")
        browser.close()
    load_end = os.getloadavg()

    def summary(kind: str | None) -> tuple[int, float, float, float]:
        xs = [s for k, _, s in timed_runs if kind is None or k == kind]
        return len(xs), statistics.median(xs), max(xs), sum(x < TARGET for x in xs) / len(xs)

    lines = []
    for kind in ("page switch", "control", None):
        n, med, mx, ok = summary(kind)
        label = kind or "all"
        lines.append(
            f"| {label} | {n} | {med * 1000:.0f} ms | {mx * 1000:.0f} ms | {100 * ok:.0f}% |"
        )
    per_action: dict[str, list[float]] = {}
    for k, n, s in timed_runs:
        per_action.setdefault(f"{k}: {n}", []).append(s)
    cold = {f"{k}: {n}": s for k, n, s in warm}
    detail = [
        f"| {name} | {cold.get(name, float('nan')):.2f} s | "
        f"{statistics.median(xs) * 1000:.0f} ms | {max(xs) * 1000:.0f} ms |"
        for name, xs in per_action.items()
    ]
    print("\n".join(lines))
    print("\n".join(detail))
    if args.no_write:
        return 0
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = [
        "",
        f"## Dashboard responsiveness in the browser (bench/bench_dashboard.py), {now}",
        "",
        f"Machine: {machine()} at the end; {load_start[0]:.2f} at the start (shared machine).",
        f"Data: demo (simulated), {info.n_problems} problems x 64 samples, "
        f"{len(info.llms)} LLMs x {len(info.verifiers)} verifiers ({info.n_responses:,} "
        "responses). Real server (`ttslab serve`), headless Debian Chromium via Playwright, "
        "window 1400 x 900. Timed from the click or key press (a dropdown is opened before "
        "the clock starts) until the page has settled: the script is not running, the page "
        "title is drawn, the chart (data, title, annotations) or the widget labels have "
        "changed, and nothing changes for 300 ms more; the time reported is that of the last "
        f"change (polled about every 20 ms). {args.rounds} timed passes after one warm-up "
        "pass that visits every page and control state once.",
        "",
        f"First page load {first:.2f} s; warm-up pass {warm_s:.1f} s "
        + (
            "from an empty result cache (it computes and caches the cross-fitted curves of "
            "7 pairs for Compare, the weight fits of 35 pairs, ...)."
            if args.fresh
            else "with the DuckDB result cache of earlier runs (a new server process, so "
            "Streamlit's in-memory caches start empty)."
        ),
        "",
        "| actions | n | median | max | under 1 s |",
        "|---|---|---|---|---|",
        *lines,
        "",
        "<details><summary>per action: cold (warm-up pass), then warm median and max</summary>",
        "",
        "| action | cold | warm median | warm max |",
        "|---|---|---|---|",
        *detail,
        "",
        "</details>",
        "",
        f"Load average at the end (1 min): {load_end[0]:.2f}.",
    ]
    with RESULTS.open("a") as fh:
        fh.write("\n".join(text) + "\n")
    print(f"appended to {RESULTS}")
    return 0


def first_visit_report(no_write: bool) -> int:
    pristine = WORK / "first_visit_pristine.duckdb"
    if not pristine.exists():
        with Store(pristine) as s:
            build_demo(s)
    with Store(pristine, read_only=True) as s:
        info = s.get_dataset(DEMO_NAME)
        assert not s.cache_kinds(), "the pristine store must have an empty result cache"
    load_start = os.getloadavg()
    runs = {
        "off": first_visits(pristine, warm=False),
        "on": first_visits(pristine, warm=True),
        "on10": first_visits(pristine, warm=True, read_s=READ_S),
    }

    def cell(sec: float, shown: float) -> str:
        flag = "" if sec < FIRST_VISIT_TARGET else " **(over)**"
        fb = "" if math.isnan(shown) else f" ({shown:.2f} s)"
        return f"{sec:.2f} s{fb}{flag}"

    rows = [
        f"| {label} | "
        + " | ".join(cell(*runs[k][i][1:]) for k in ("off", "on", "on10"))
        + f" | {runs['off'][i][1] / max(runs['on10'][i][1], 1e-9):.1f}x |"
        for i, (label, _, _) in enumerate(runs["off"])
    ]
    print("\n".join(rows))
    if no_write:
        return 0
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = [
        "",
        f"## Dashboard first visits from an empty result cache (bench/bench_dashboard.py "
        f"--first-visits), {now}",
        "",
        f"Machine: {machine()} at the end; {load_start[0]:.2f} at the start (shared machine).",
        f"Data: demo (simulated), {info.n_problems} problems x 64 samples, "
        f"{len(info.llms)} LLMs x {len(info.verifiers)} verifiers ({info.n_responses:,} "
        "responses), the default demo. For every page: a new server (`ttslab serve`) on a "
        "copy of the store with an empty result cache; the Datasets page opens (the server "
        "imports its modules; the page computes nothing); then the page is clicked in the "
        "sidebar and timed, with its default selection, until it has settled (as for the "
        "warm timings). Datasets: a reload. In brackets: the first progress bar or chart on "
        "screen. Three runs in the same process, one after the other: the background curve "
        "warm-up off (the previous method: the page computes what it shows), on with the "
        f"page clicked at once, and on with {READ_S:.0f} s spent on the Datasets page first "
        f"(a reader). Goal: under {FIRST_VISIT_TARGET:.0f} s each.",
        "",
        "| page | warm-up off (previous) | warm-up on, at once | warm-up on, after "
        f"{READ_S:.0f} s | ratio off / on after {READ_S:.0f} s |",
        "|---|---|---|---|---|",
        *rows,
    ]
    with RESULTS.open("a") as fh:
        fh.write("\n".join(text) + "\n")
    print(f"appended to {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
