"""Exports: a chart's numbers as CSV, its picture as SVG / PDF / PNG (Kaleido driving
Debian's Chromium), and a dataset's self-contained HTML report (builder and CLI)."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from plotly.subplots import make_subplots

from core.cli import DEMO_NAME, build_demo
from core.evaluation import EvalConfig
from core.importers import import_path
from core.info import compare_view
from core.store import Store
from dashboard.export import (
    CSV_COLUMNS,
    ExportError,
    figure_csv,
    figure_image,
    figures_html,
    file_stem,
)
from dashboard.figures import compare_figure
from dashboard.report import build_report
from tests.browser_util import chromium

ROOT = Path(__file__).resolve().parents[1]


def _csv(fig: go.Figure) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(figure_csv(fig)), keep_default_na=False)


def test_csv_of_panels_with_error_bars() -> None:
    fig = make_subplots(rows=1, cols=2, subplot_titles=("left panel", "right <b>panel</b>"))
    fig.add_trace(
        go.Scatter(x=[1, 2, 4], y=[0.5, 0.6, 0.7], name="vote", error_y={"array": [0.1, 0.2, 0.3]}),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Scatter(
            x=[1, 2],
            y=[0.25, 0.75],
            name="other",
            error_y={"array": [0.05, 0.05], "arrayminus": [0.01, 0.02]},
        ),
        row=1,
        col=2,
    )
    fig.update_xaxes(title_text="N", row=1, col=1)
    fig.update_yaxes(title_text="accuracy", row=1, col=2)
    df = _csv(fig)
    assert list(df.columns) == list(CSV_COLUMNS)
    assert len(df) == 5
    left = df[df["trace"] == "vote"]
    assert list(left["panel"].unique()) == ["left panel"]
    assert list(left["x_axis"].unique()) == ["N"]
    np.testing.assert_allclose(left["y"].astype(float), [0.5, 0.6, 0.7], rtol=1e-12)
    np.testing.assert_allclose(left["error_plus"].astype(float), [0.1, 0.2, 0.3], rtol=1e-12)
    np.testing.assert_allclose(left["error_minus"].astype(float), [0.1, 0.2, 0.3], rtol=1e-12)
    right = df[df["trace"] == "other"]
    assert list(right["panel"].unique()) == ["right  panel"] or list(right["panel"].unique()) == [
        "right panel"
    ]
    assert list(right["y_axis"].unique()) == ["accuracy"]
    np.testing.assert_allclose(right["error_minus"].astype(float), [0.01, 0.02], rtol=1e-12)


def test_csv_of_a_heatmap_has_one_row_per_cell() -> None:
    fig = go.Figure(
        go.Heatmap(
            z=[[1.0, 2.0, 3.0], [4.0, float("nan"), 6.0]],
            x=["a", "b", "c"],
            y=["r1", "r2"],
            text=[["t1", "t2", "t3"], ["t4", "t5", "t6"]],
            name="gain",
        )
    )
    df = _csv(fig)
    assert len(df) == 6
    cell = df[(df["x"] == "c") & (df["y"] == "r2")].iloc[0]
    assert float(cell["z"]) == pytest.approx(6.0) and cell["text"] == "t6"
    assert df[(df["x"] == "b") & (df["y"] == "r2")]["z"].iloc[0] == ""  # NaN: empty


def test_csv_of_the_compare_chart_holds_the_views_gains(tmp_path: Path) -> None:
    with Store(tmp_path / "c.duckdb") as s:
        build_demo(s, n_problems=30, n_samples=8)
        info = s.get_dataset(DEMO_NAME)
        pairs = info.pairs[:2]
        view = compare_view(s, info, pairs, ["majority", "logit_wv"], 4, "majority", EvalConfig())
    df = _csv(compare_figure(view, "gain"))
    heat = df[df["type"] == "heatmap"]
    assert len(heat) == 2 * 2
    got = np.sort(heat["z"].replace("", np.nan).astype(float).to_numpy())
    want = np.sort(100 * np.asarray(view.gain, dtype=float).ravel())
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9, equal_nan=True)


def test_file_stems_are_plain() -> None:
    assert file_stem("budget", "my data/set (v2)", "Qwen 7B") == "budget_my_data_set_v2_Qwen_7B"
    assert file_stem("", "<>") == "figure"


@pytest.mark.browser
@pytest.mark.parametrize("fmt", ["svg", "pdf", "png"])
def test_pictures_are_valid_files(fmt: str) -> None:
    fig = go.Figure(go.Scatter(x=[1, 2, 3], y=[2, 1, 3], name="curve"))
    fig.update_layout(title_text="a title", width=500, height=300)
    data = figure_image(fig, fmt)
    if fmt == "svg":
        root = ET.fromstring(data)
        assert root.tag.endswith("svg")
        assert b"a title" in data
    elif fmt == "pdf":
        assert data.startswith(b"%PDF-") and b"%%EOF" in data[-64:]
    else:
        from PIL import Image

        assert data.startswith(b"\x89PNG\r\n\x1a\n")
        img = Image.open(io.BytesIO(data))
        assert img.size == (1000, 600)  # twice the layout's pixels


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="svg, pdf, png"):
        figure_image(go.Figure(), "gif")
    assert issubclass(ExportError, RuntimeError)


def test_plotlyjs_is_inlined_once() -> None:
    frags = figures_html([go.Figure(go.Scatter(y=[1, 2])) for _ in range(3)])
    big = [len(f) > 1_000_000 for f in frags]
    assert big == [True, False, False]


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    db = tmp_path_factory.mktemp("report") / "r.duckdb"
    with Store(db) as s:
        build_demo(s, n_problems=30, n_samples=8)
    yield db


def test_report_holds_every_section(demo_db: Path) -> None:
    with Store(demo_db) as s:
        info = s.get_dataset(DEMO_NAME)
        seen: list[tuple[int, int]] = []
        page = build_report(s, info, EvalConfig(), progress=lambda st, d, t: seen.append((d, t)))
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    for heading in ("Data and grading", "Weight functions", "Budget curves", "Compare at N = 8"):
        assert heading in page, heading
    assert page.count("Plotly.newPlot(") == 2 + len(info.llms) + 1
    assert page.count('<script type="text/javascript">/**') <= 1  # plotly.js once
    assert "95% bootstrap" in page
    for m in info.llms:
        assert f"<h3>{m}</h3>" in page
    assert seen and seen[-1][0] == seen[-1][1]
    assert max(d / t for d, t in seen) == pytest.approx(1.0)
    assert all(0 <= d <= t for d, t in seen)


def test_report_compares_at_a_budget_every_llm_evaluates(tmp_path: Path) -> None:
    """LLMs with 16 and 6 samples: the mean, 11, is neither's budget and 8 is not the
    6-sample LLM's; the report compares at 4, the largest both evaluate exactly."""
    from tests.conftest import make_long_frame

    a = make_long_frame(n_problems=5, n_samples=16, llms=("sixteen",), verifiers=("prm",))
    b = make_long_frame(n_problems=5, n_samples=6, llms=("six",), verifiers=("prm",), seed=1)
    path = tmp_path / "two.csv"
    pd.concat([a, b]).to_csv(path, index=False)
    with Store(tmp_path / "two.duckdb") as s:
        import_path(s, path, name="two")
        page = build_report(s, s.get_dataset("two"), EvalConfig(), strategies=["majority"])
    assert "Compare at N = 4" in page


def test_report_escapes_names(tmp_path: Path) -> None:
    with Store(tmp_path / "x.duckdb") as s:
        build_demo(s, n_problems=20, n_samples=4, name="<b>x</b> & {fig0}")
        info = s.get_dataset("<b>x</b> & {fig0}")
        page = build_report(s, info, EvalConfig(), strategies=["majority", "best_of_n"])
    assert "<b>x</b>" not in page
    assert "&lt;b&gt;x&lt;/b&gt; &amp; {fig0}" in page


def _cli(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "core.cli", "--db", str(db), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.browser
def test_cli_report_opens_in_chromium_with_every_figure_drawn(
    demo_db: Path, tmp_path: Path
) -> None:
    out = tmp_path / "sub" / "report.html"
    res = _cli(demo_db, "report", DEMO_NAME, "-o", str(out), "--budget", "4")
    assert res.returncode == 0, res.stderr
    assert "self-contained HTML" in res.stdout
    page = out.read_text()
    assert "Compare at N = 4" in page
    n_figs = page.count("Plotly.newPlot(")
    with chromium() as browser:
        tab = browser.new_page()
        tab.route(re.compile(r"^https?://"), lambda route: route.abort())  # offline
        tab.goto(out.as_uri())
        tab.wait_for_function(
            f"() => document.querySelectorAll('.js-plotly-plot .main-svg').length >= {n_figs}",
            timeout=60_000,
        )
        drawn = tab.evaluate(
            "() => Array.from(document.querySelectorAll('.js-plotly-plot'))"
            ".map(el => el._fullData.length)"
        )
        tab.close()
    assert len(drawn) == n_figs and all(n > 0 for n in drawn)


def test_cli_report_errors_are_clean(demo_db: Path, tmp_path: Path) -> None:
    res = _cli(demo_db, "report", "nope", "-o", str(tmp_path / "r.html"))
    assert res.returncode != 0
    assert "no dataset named 'nope'" in res.stderr and "Traceback" not in res.stderr
    res = _cli(demo_db, "report", DEMO_NAME, "-o", str(tmp_path / "r.html"), "--strategy", "zz")
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert not (tmp_path / "r.html").exists()
