"""Warm pages: one computation per cached result at a time, the default curves of every
pair computed ahead (`warm_curves`), and the dashboard doing that in the background after
a dataset appears, so Compare opens from the cache."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from core.cli import DEMO_NAME, build_demo
from core.evaluation import EvalConfig
from core.info import compare_view, warm_curves
from core.methods import default_strategies
from core.store import Store
from tests.browser_util import chromium, dashboard_server, wait_until_idle


def test_one_computation_per_cache_key_at_a_time(store: Store) -> None:
    build_demo(store, n_problems=6, n_samples=4)
    info = store.get_dataset(DEMO_NAME)
    calls: list[int] = []
    started = threading.Event()

    def slow() -> dict[str, Any]:
        calls.append(1)
        started.set()
        time.sleep(0.5)
        return {"value": 42}

    out: list[tuple[dict[str, Any], bool]] = []

    def ask() -> None:
        out.append(store.cached(info, "test_kind", {"k": 1}, slow))

    first = threading.Thread(target=ask)
    first.start()
    started.wait(5)
    second = threading.Thread(target=ask)  # arrives while the first computes
    second.start()
    first.join(10)
    second.join(10)
    assert len(calls) == 1
    assert sorted(hit for _, hit in out) == [False, True]
    assert all(payload == {"value": 42} for payload, _ in out)
    # another key is not held up by this one
    assert store.cached(info, "test_kind", {"k": 2}, lambda: {"value": 7}) == ({"value": 7}, False)


def test_a_failed_computation_lets_the_next_asker_compute(store: Store) -> None:
    build_demo(store, n_problems=6, n_samples=4)
    info = store.get_dataset(DEMO_NAME)

    def boom() -> dict[str, Any]:
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        store.cached(info, "test_kind", {"k": 3}, boom)
    assert store.cached(info, "test_kind", {"k": 3}, lambda: {"v": 1}) == ({"v": 1}, False)


def test_warm_curves_fills_the_cache_compare_reads(store: Store) -> None:
    build_demo(store, n_problems=20, n_samples=8)
    info = store.get_dataset(DEMO_NAME)
    config = EvalConfig(n_subsets=20, n_boot=100)
    first = info.llms[2]
    stops = iter([False, False, True])  # stop after two pairs
    assert warm_curves(store, info, config, llm_first=first, stop=lambda: next(stops)) == 2
    assert store.cache_kinds().get("pair_curves") == 2
    assert warm_curves(store, info, config, llm_first=first) == len(info.pairs) - 2
    assert warm_curves(store, info, config) == 0  # everything cached now
    # Compare's default view of the first LLM's pairs is served from that cache
    pairs = [(first, v) for v in info.verifiers]
    view = compare_view(
        store,
        info,
        pairs,
        list(default_strategies(simulated=info.has_truth)),
        8,
        "majority",
        config,
    )
    assert all(view.from_cache)


@pytest.mark.browser
def test_the_dashboard_warms_a_dataset_in_the_background(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    with Store(db) as s:
        build_demo(s, n_problems=30, n_samples=8)
        n_pairs = len(s.get_dataset(DEMO_NAME).pairs)
        assert not s.cache_kinds()
    old = os.environ.get("TTSLAB_WARM")
    os.environ["TTSLAB_WARM"] = "1"
    try:
        with dashboard_server(db) as url, chromium() as browser:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"{url}/datasets", wait_until="domcontentloaded")
            wait_until_idle(page)  # only the Datasets page: it computes nothing itself

            def cached() -> int:
                with Store(db, read_only=True, shared=True) as s:
                    return s.cache_kinds().get("pair_curves", 0)

            deadline = time.monotonic() + 240
            while cached() < n_pairs and time.monotonic() < deadline:
                time.sleep(1)
            assert cached() == n_pairs  # every pair, with no analysis page visited
            page.goto(f"{url}/compare", wait_until="domcontentloaded")
            wait_until_idle(page)
            page.wait_for_selector(".js-plotly-plot .main-svg", timeout=60_000)
            assert cached() == n_pairs  # Compare computed no curves of its own
            assert page.locator("[data-testid='stException']").count() == 0
            page.close()
    finally:
        if old is None:
            os.environ.pop("TTSLAB_WARM", None)
        else:
            os.environ["TTSLAB_WARM"] = old


def test_warm_curves_goes_in_the_order_the_pages_open_on(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    import core.info.budget as budget_mod

    build_demo(store, n_problems=6, n_samples=4)
    info = store.get_dataset(DEMO_NAME)
    seen: list[tuple[str, str]] = []

    class Done:
        from_cache = True

    def record(_s: Any, _i: Any, pairs: Any, *_a: Any, **_k: Any) -> list[Done]:
        seen.extend(pairs)
        return [Done()]

    monkeypatch.setattr(budget_mod, "many_curves", record)
    first = info.llms[2]
    assert warm_curves(store, info, EvalConfig(), llm_first=first) == 0
    n_v = len(info.verifiers)
    assert seen[:n_v] == [(first, v) for v in info.verifiers]  # Compare's default view
    frontier = [(m, info.verifiers[0]) for m in info.llms if m != first]
    assert seen[n_v : n_v + len(frontier)] == frontier  # Compute frontier's default view
    assert sorted(seen) == sorted(info.pairs)


def test_warm_curves_reports_within_each_pair(store: Store) -> None:
    # the dashboard's warm-up pauses in this callback while a page opens (`_PageWork`)
    build_demo(store, n_problems=12, n_samples=4)
    info = store.get_dataset(DEMO_NAME)
    calls: list[tuple[str, int, int]] = []
    stops = iter([False, True])  # one pair
    warm_curves(
        store,
        info,
        EvalConfig(n_subsets=10, n_boot=20),
        stop=lambda: next(stops),
        progress=lambda stage, done, total: calls.append((stage, done, total)),
    )
    # per fold and strategy, before the pair is done: more than a start and an end
    assert len(calls) > 5
    assert any(0 < done < total for _, done, total in calls)
    assert any("fold" in stage for stage, _, _ in calls)


def test_the_warm_up_pauses_while_a_page_opens_but_not_while_it_computes() -> None:
    from dashboard.state import _PageWork

    work = _PageWork()
    t = time.monotonic()
    work.yield_to_openings(limit_s=2.0)  # nothing opening: no pause
    assert time.monotonic() - t < 0.5
    done = work.open()
    threading.Timer(0.3, done).start()  # the page's opening ends after 0.3 s
    t = time.monotonic()
    work.yield_to_openings(limit_s=5.0)
    assert 0.25 <= time.monotonic() - t < 3.0
    done()  # a second call changes nothing
    assert work.opening == 0
    with work:  # a page computing (it may wait for the warm-up's own result) ...
        other = work.open()  # ... while another visitor's page opens: no pause
        t = time.monotonic()
        work.yield_to_openings(limit_s=2.0)
        assert time.monotonic() - t < 0.5
        other()
    stuck = work.open()  # an opening that never ends holds the warm-up at most limit_s
    t = time.monotonic()
    work.yield_to_openings(limit_s=0.3)
    assert 0.25 <= time.monotonic() - t < 3.0
    stuck()
