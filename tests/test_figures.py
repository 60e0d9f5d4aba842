"""dashboard.figures: pure builders, checked on view objects of a small simulated store."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import replace

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from scipy import special

from core import info as V
from core.cli import DEMO_NAME, build_demo
from core.evaluation import EvalConfig
from core.info import PairRef
from core.info.stopping import StoppingView
from core.methods import color as strategy_color
from core.methods import short_name
from core.reports import efficiency_sentence
from core.store import DatasetInfo, Store
from dashboard import figures as F
from dashboard.text import plotly_plain

LLM, VER = "sim-llm-C", "sim-qwen-orm"
SETTINGS = EvalConfig(n_subsets=20, n_boot=200)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    s = Store(tmp_path_factory.mktemp("figs") / "f.duckdb")
    build_demo(s, n_problems=40, n_samples=8)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture(scope="module")
def info(demo: Store) -> DatasetInfo:
    return demo.get_dataset(DEMO_NAME)


@pytest.fixture(scope="module")
def wview(demo: Store, info: DatasetInfo) -> V.WeightView:
    return V.weight_view(demo, info, LLM, VER, "kde_wv", EvalConfig(weight_boot=10))


def _by_name(fig: go.Figure, prefix: str) -> list[go.BaseTraceType]:
    return [t for t in fig.data if (t.name or "").startswith(prefix)]


def _curve(fig: go.Figure) -> go.Scatter:
    (t,) = _by_name(fig, "w(s)")
    return t


# ---- weight functions ----------------------------------------------------------------


def test_negative_region_is_shaded_iff_some_weight_is_negative(wview: V.WeightView) -> None:
    assert wview.has_negative
    fig = F.weight_figure(wview)
    (neg,) = _by_name(fig, "w < 0")
    assert neg.fill == "tozeroy"
    np.testing.assert_allclose(neg.y, np.minimum(wview.w, 0.0))
    assert min(neg.y) < 0
    assert len([s for s in fig.layout.shapes if s.type == "rect"]) == len(wview.negative)
    positive = replace(wview, w=np.abs(wview.w) + 0.1, negative=())
    fig2 = F.weight_figure(positive)
    assert not _by_name(fig2, "w < 0")
    assert not [s for s in fig2.layout.shapes if s.type == "rect"]


def test_zero_line_and_band_around_the_curve(wview: V.WeightView) -> None:
    fig = F.weight_figure(wview)
    zero = [s for s in fig.layout.shapes if s.type == "line" and s.y0 == 0 == s.y1]
    assert zero, "a zero line is drawn"
    upper = next(t for t in fig.data if t.name == "band upper")
    lower = next(t for t in fig.data if (t.name or "").endswith("resamples of problems)"))
    assert lower.fill == "tonexty"
    curve = np.asarray(_curve(fig).y)
    assert np.all(np.asarray(lower.y) <= curve + 1e-12)
    assert np.all(curve <= np.asarray(upper.y) + 1e-12)


def test_densities_share_the_x_axis_with_the_weights(wview: V.WeightView) -> None:
    fig = F.weight_figure(wview)
    dens = _by_name(fig, "correct responses: density") + _by_name(
        fig, "incorrect responses: density"
    )
    assert len(dens) == 2
    assert {t.xaxis for t in dens} == {"x2"} and _curve(fig).xaxis == "x"
    assert fig.layout.xaxis.matches == "x2" or fig.layout.xaxis2.matches == "x"
    hist = _by_name(fig, "correct responses: histogram")
    assert hist and hist[0].type == "bar"
    # the histogram is a density too (area 1 per class)
    area = float(np.sum(np.asarray(hist[0].y) * np.asarray(hist[0].width)))
    assert area == pytest.approx(1.0)


def test_logit_axis(wview: V.WeightView) -> None:
    fig = F.weight_figure(wview, axis="logit")
    np.testing.assert_allclose(_curve(fig).x, special.logit(wview.grid))
    assert "logit" in fig.layout.xaxis2.title.text
    with pytest.raises(ValueError):
        F.weight_figure(wview, axis="log")


def test_a_two_line_score_axis_title_pushes_the_legend_down(wview: V.WeightView) -> None:
    """A lower-is-better signal's axis title takes a second line; the legend below it
    moves down and the bottom margin grows (the title ran into the legend at 1000 px)."""
    one = F.weight_figure(replace(wview, orientation="higher"))
    two = F.weight_figure(replace(wview, orientation="lower"))
    assert "<br>" not in one.layout.xaxis2.title.text
    assert two.layout.xaxis2.title.text.count("<br>") == 1
    assert two.layout.legend.y < one.layout.legend.y - 0.03
    assert two.layout.margin.b > one.layout.margin.b


def test_offset_by_hand_shows_the_fitted_curve_dashed(demo: Store, info: DatasetInfo) -> None:
    v = V.weight_view(demo, info, LLM, VER, "logit_wv", EvalConfig(weight_boot=10))
    fig = F.weight_figure(v.with_offset(0.2))
    fitted = _by_name(fig, "fitted (b =")
    assert fitted and fitted[0].line.dash == "dash"
    assert "chosen by hand" in _curve(fig).name
    assert any("b = 0.20" in (a.text or "") for a in fig.layout.annotations)
    assert not np.allclose(_curve(fig).y, _curve(F.weight_figure(v)).y)


def test_titles_say_simulated(wview: V.WeightView) -> None:
    fig = F.weight_figure(replace(wview, dataset="mine"))
    assert "mine (simulated)" in fig.layout.title.text
    assert "w(s)" in fig.layout.yaxis.title.text and "log-odds" in fig.layout.yaxis.title.text
    assert fig.layout.xaxis2.title.text.startswith("verifier score")


def test_small_multiples_one_panel_per_pair(demo: Store, info: DatasetInfo) -> None:
    g = V.weight_grid_view(demo, info, "kde_wv", EvalConfig())
    fig = F.weight_grid_figure(g)
    curves = [t for t in fig.data if t.name == "w(s)"]
    assert len(curves) == len(g.llms) * len(g.verifiers)
    n_neg = sum(bool(np.any(p.w < 0)) for p in g.panels)
    assert len([t for t in fig.data if (t.name or "").startswith("w < 0")]) == n_neg
    titles = {a.text for a in fig.layout.annotations}
    assert set(g.llms) <= titles
    assert "(simulated)" in fig.layout.title.text


# ---- budget curves -------------------------------------------------------------------


@pytest.fixture(scope="module")
def bview(demo: Store, info: DatasetInfo) -> V.BudgetView:
    return V.budget_view(
        demo,
        info,
        [(LLM, VER), ("sim-llm-E", "sim-grm-orm")],
        ["majority", "vanilla_wv", "logit_wv", "kde_wv_oracle", "pass_at_n"],
        SETTINGS,
    )


def test_budget_axis_is_log2(bview: V.BudgetView) -> None:
    fig = F.budget_figure(bview)
    for ax in (fig.layout.xaxis, fig.layout.xaxis2):
        assert ax.type == "log"
        ticks = list(ax.tickvals)
        assert ticks == list(bview.budgets)
        assert all(int(t) & (int(t) - 1) == 0 for t in ticks)  # powers of two
        assert "log2" in ax.title.text
    assert fig.layout.yaxis.tickformat == ".0%"


def test_oracle_curves_are_dashed_others_solid(bview: V.BudgetView) -> None:
    fig = F.budget_figure(bview)
    lines = [t for t in fig.data if t.mode == "lines+markers" and t.legendgroup != "eff"]
    assert len(lines) == len(bview.curves)
    for t in lines:
        oracle = t.legendgroup in ("kde_wv_oracle", "pass_at_n")
        assert (t.line.dash == "dash") == oracle


def test_budget_bands_hold_the_curves(bview: V.BudgetView) -> None:
    fig = F.budget_figure(bview)
    bands = [t for t in fig.data if t.fill == "toself"]
    assert len(bands) == len(bview.curves)
    for band, c in zip(bands, bview.curves, strict=True):
        y = np.asarray(band.y)
        n = len(c.budgets)
        np.testing.assert_allclose(y[:n], c.high)
        np.testing.assert_allclose(y[n:][::-1], c.low)


def _shown(markup: str) -> str:
    """What a Plotly text shows, as one line: tags dropped, whitespace collapsed."""
    return " ".join(re.sub(r"<[^>]+>", " ", markup).split())


def test_budget_bands_only_for_the_highlighted_strategies_when_many(
    bview: V.BudgetView,
) -> None:
    def banded(fig: go.Figure) -> set[str]:
        return {t.legendgroup for t in fig.data if t.type == "scatter" and t.fill == "toself"}

    every = {cur.strategy for cur in bview.curves}
    assert len(every) == 5 and banded(F.budget_figure(bview)) == every
    fig = F.budget_figure(bview, highlight=("logit_wv", "vanilla_wv"))
    assert banded(fig) == {"logit_wv", "vanilla_wv"}
    title = fig.layout.title.text.replace("<br>", " ")
    assert "drawn for logit WV and vanilla WV (hover any curve for its interval)" in title
    # every curve is still drawn, with its interval in the hover
    lines = [t for t in fig.data if t.mode == "lines+markers" and t.legendgroup in every]
    assert {t.legendgroup for t in lines} == every
    assert all(t.customdata is not None and "%{customdata[0]" in t.hovertemplate for t in lines)
    # a strategy not drawn highlights nothing: all bands again
    assert banded(F.budget_figure(bview, highlight=("kde_wv",))) == every


def test_efficiency_written_under_each_panels_title(bview: V.BudgetView) -> None:
    fig = F.budget_figure(bview)
    texts = [a.text for a in fig.layout.annotations]
    assert bview.efficiencies
    for e in bview.efficiencies:
        # the panel's title holds the pair and the sentence with its interval; the
        # tokens part only when the axis is tokens
        head, _, tok = efficiency_sentence(e).partition("; in tokens, ")
        title = next(t for t in texts if _shown(t).startswith(f"{e.llm} × {e.verifier}"))
        assert _shown(head) in _shown(title)
        assert "in tokens" not in title
        assert head.startswith("logit WV ")
        assert tok.endswith(" per problem")
    tok_fig = F.budget_figure(bview, "tokens")
    boxes = [a.text for a in tok_fig.layout.annotations if "reaches" in a.text]
    assert boxes and all("in tokens: " in _shown(b) for b in boxes)


# ---- compare -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cview(demo: Store, info: DatasetInfo) -> V.CompareView:
    return V.compare_view(
        demo,
        info,
        [(LLM, VER), (LLM, "sim-grm-orm"), ("sim-llm-E", VER)],
        ["majority", "vanilla_wv", "logit_wv", "kde_wv", "pass_at_n"],
        4,
        "majority",
        SETTINGS,
    )


def test_heatmap_values_are_the_views_numbers(cview: V.CompareView) -> None:
    hm, cells = F.compare_figure(cview).data
    assert hm.type == "heatmap" and cells.type == "scatter"
    # one clickable cell per (pair, strategy), carrying its indices into the view
    n_p, n_s = len(cview.pairs), len(cview.strategies)
    assert [list(c) for c in cells.customdata] == [[i, j] for i in range(n_p) for j in range(n_s)]
    assert list(cells.y) == [lb for lb in cview.pair_labels for _ in range(n_s)]
    np.testing.assert_allclose(np.asarray(hm.z, dtype=float), 100 * cview.gain)
    assert list(hm.y) == list(cview.pair_labels)
    assert hm.zmid == 0
    acc = F.compare_figure(cview, metric="accuracy").data[0]
    np.testing.assert_allclose(np.asarray(acc.z, dtype=float), 100 * cview.accuracy)
    text = np.asarray(hm.text)
    assert all("baseline" in t for t in text[:, 0])
    i, j = 0, 2
    assert f"{100 * cview.gain[i, j]:+.1f}" in text[i, j]
    assert f"{100 * cview.gain_low[i, j]:+.1f}" in text[i, j]


def test_heatmap_colours_follow_the_real_strategies(cview: V.CompareView) -> None:
    hm = F.compare_figure(cview).data[0]
    real = 100 * np.abs(cview.gain[:, :4])
    assert hm.zmax == pytest.approx(max(float(real.max()), 1.0))
    assert "(simulated)" in F.compare_figure(cview).layout.title.text


# ---- problem explorer ----------------------------------------------------------------


def test_problem_figure_bars_and_picks(demo: Store, info: DatasetInfo) -> None:
    strategies = ("majority", "best_of_n", "logit_wv", "kde_wv")
    d = V.disagreement_problems(demo, info, LLM, VER, strategies, SETTINGS)
    pid = d.problem_ids[0] if d.problem_ids else d.all_problem_ids[0]
    v = V.problem_view(demo, info, LLM, VER, pid, strategies, SETTINGS)
    fig = F.problem_figure(v)
    bars = [t for t in fig.data if t.type == "bar"]
    assert len(bars) == len(strategies)
    for j, bar in enumerate(bars):
        np.testing.assert_allclose(bar.x, v.total[j])
        grey = [c == "#d0d4d9" for c in bar.marker.color]
        assert [not g for g in grey] == list(v.picked[j])
    labels = list(fig.layout.yaxis.categoryarray)
    assert len(labels) == len(v.answers)
    assert all(lab.startswith(("✓", "✗")) for lab in labels)
    assert f"gold answer {v.gold}" in fig.layout.title.text
    dots = [t for t in fig.data if t.type == "scatter"]
    assert sum(len(t.x) for t in dots) == int(v.count.sum())
    # each strategy's panel: a zero line across it, the clusters top-down in one order
    lines = {(sh.xref, sh.yref) for sh in fig.layout.shapes if sh.x0 == 0 and sh.x1 == 0}
    assert lines == {(bar.xaxis, f"{bar.yaxis} domain") for bar in bars}
    for bar in bars:
        yaxis = fig.layout["yaxis" + bar.yaxis[1:]]
        assert yaxis.autorange == "reversed" and list(yaxis.categoryarray) == labels
        xaxis = fig.layout["xaxis" + bar.xaxis[1:]]
        assert xaxis.range[0] <= 0 <= xaxis.range[1] and xaxis.showticklabels is False
        # its "total" under the panel no larger than the figure's text (13 px)
        assert xaxis.title.font.size <= 13


def test_problem_figure_reads_lengths_and_empty_answers(demo: Store, info: DatasetInfo) -> None:
    """A lower-is-better signal (response length): best-of-N's panel shows the lengths, the
    lowest winning (it showed the negated "-3701"); the score axis writes thousands as
    "2k"; an empty answer is "(no answer)"; bar labels stay short."""
    strategies = ("majority", "best_of_n")
    pid = V.disagreement_problems(demo, info, LLM, VER, strategies, SETTINGS).all_problem_ids[0]
    v = V.problem_view(demo, info, LLM, VER, pid, strategies, SETTINGS)
    lengths = 1000.0 + 50.0 * np.arange(v.response_score.size)
    per_cluster = np.array([lengths[v.response_cluster == c].min() for c in range(len(v.answers))])
    total = np.array(v.total, dtype=np.float64)
    total[1] = -per_cluster
    weight = np.array(v.response_weight, dtype=np.float64)
    weight[1] = -lengths
    longer = replace(
        v,
        response_score=lengths,
        response_weight=weight,
        total=total,
        answers=("", *v.answers[1:]),
    )
    fig = F.problem_figure(longer)
    best = [t for t in fig.data if t.type == "bar"][1]
    np.testing.assert_allclose(np.asarray(best.x, dtype=float), per_cluster)
    assert fig.layout.xaxis3.title.text == "lowest<br>score"
    assert fig.layout.xaxis.tickformat == "~s"
    # the strategies' panels (~55 px at 1000 px) carry numbers on their bars, no tick
    # labels to run into their neighbours'; their headers wrap at 8 characters
    assert fig.layout.xaxis.showticklabels is not False
    assert fig.layout.xaxis2.showticklabels is False and fig.layout.xaxis3.showticklabels is False
    heads = [a.text for a in fig.layout.annotations if a.yref == "paper" and a.y >= 1.0]
    assert "best-of-N" in heads and "majority<br>vote" in heads
    assert fig.layout.yaxis.categoryarray[0].split(" ")[1:3] == ["(no", "answer)"]
    # the same figure on the view as computed: best-of-N's own top scores
    plain = F.problem_figure(v)
    assert plain.layout.xaxis3.title.text == "top<br>score"
    assert F._fmt_total(116.234) == "116" and F._fmt_total(63.63) == "63.6"
    assert F._fmt_total(7.414) == "7.41" and F._fmt_total(50.0) == "50"
    # token counts in five characters at most
    assert F._fmt_total(8887.0) == "8887" and F._fmt_total(30268.0) == "30.3k"
    assert F._fmt_total(-12879.0) == "-12.9k" and F._fmt_total(234567.0) == "235k"
    assert F._fmt_total(1234567.0) == "1.2M"


# ---- calibration transfer ------------------------------------------------------------

BEYOND = EvalConfig(n_subsets=20, n_boot=200, folds=3)


@pytest.fixture(scope="module")
def tview(demo: Store) -> V.TransferView:
    src = [PairRef(DEMO_NAME, m, VER) for m in ("sim-llm-C", "sim-llm-E")]
    tgt = [PairRef(DEMO_NAME, m, VER) for m in ("sim-llm-B", "sim-llm-C", "sim-llm-E")]
    return V.transfer_view(demo, src, tgt, "logit_wv", "majority", 4, BEYOND)


def test_transfer_heatmap_cells_are_the_views_gains(tview: V.TransferView) -> None:
    fig = F.transfer_heatmap(tview)
    (hm,) = [t for t in fig.data if t.type == "heatmap"]
    np.testing.assert_allclose(np.asarray(hm.z, dtype=float), 100 * tview.gain)
    text = np.asarray(hm.text)
    sig = tview.significant()
    for i in range(len(tview.sources)):
        for j in range(len(tview.targets)):
            cell = text[i, j].replace("<br>", " ")  # a narrow cell's interval: two lines
            assert f"{100 * tview.gain[i, j]:+.1f}" in cell
            assert f"[{100 * tview.low[i, j]:+.1f}, {100 * tview.high[i, j]:+.1f}]" in cell
            assert ("*" in cell) == bool(sig[i, j])
    assert list(fig.layout.yaxis.ticktext) == list(tview.source_labels)
    assert [t.split("<br>")[0] for t in fig.layout.xaxis.ticktext] == list(tview.target_labels)
    assert fig.layout.yaxis.title.text == "calibrated on"
    assert fig.layout.xaxis.title.text == "evaluated on"
    # a pair evaluated on itself is outlined
    assert len([s for s in fig.layout.shapes if s.type == "rect"]) == int(tview.diagonal.sum())
    assert "(simulated)" in fig.layout.title.text


def test_transfer_heatmap_splits_intervals_of_narrow_cells(tview: V.TransferView) -> None:
    # six target columns (the three twice): a cell is then too narrow on a laptop screen
    # for an interval on one line
    twice = np.concatenate
    wide = replace(
        tview,
        targets=tview.targets * 2,
        target_simulated=tview.target_simulated * 2,
        target_labels=tuple(f"{lb} ({k})" for k in (1, 2) for lb in tview.target_labels),
        accuracy=twice([tview.accuracy] * 2, axis=1),
        baseline_accuracy=twice([tview.baseline_accuracy] * 2),
        gain=twice([tview.gain] * 2, axis=1),
        low=twice([tview.low] * 2, axis=1),
        high=twice([tview.high] * 2, axis=1),
        shared=twice([tview.shared] * 2, axis=1),
        target_budget=twice([tview.target_budget] * 2),
        target_problems=twice([tview.target_problems] * 2),
    )
    for cell in np.asarray(F.transfer_heatmap(wide).data[0].text).ravel():
        lines = [_shown(x) for x in cell.split("<br>")]
        assert len(lines) == 3 and max(len(x) for x in lines) <= 7, cell
    # three columns keep it on one line
    narrow = np.asarray(F.transfer_heatmap(tview).data[0].text).ravel()
    assert all(cell.count("<br>") == 1 for cell in narrow)


def test_transfer_colour_scale_is_centred_at_zero(tview: V.TransferView) -> None:
    hm = F.transfer_heatmap(tview).data[0]
    assert hm.zmid == 0 and hm.zmin == -hm.zmax
    assert hm.zmax >= float(np.nanmax(np.abs(100 * tview.gain)))
    assert hm.colorscale[0][1] != hm.colorscale[-1][1]  # diverging: two ends differ
    nan_cell = replace(tview, gain=np.where(tview.diagonal, np.nan, tview.gain))
    text = np.asarray(F.transfer_heatmap(nan_cell).data[0].text)
    assert (text[nan_cell.diagonal] == "cannot fit").all()


# ---- allocation by difficulty ---------------------------------------------------------


@pytest.fixture(scope="module")
def aview(demo: Store, info: DatasetInfo) -> V.AllocationView:
    cands = ("majority", "best_of_n", "logit_wv", "kde_wv")
    return V.allocation_view(demo, info, LLM, VER, cands, SETTINGS, n_bins=2)


def test_allocation_curve_with_its_band_on_a_log2_axis(aview: V.AllocationView) -> None:
    fig = F.allocation_figure(aview)
    for ax in (fig.layout.xaxis, fig.layout.xaxis2):
        assert ax.type == "log"
        assert list(ax.tickvals) == list(aview.budgets)
    assert "log2" in fig.layout.xaxis2.title.text
    (choice,) = _by_name(fig, "per-bin choice (")
    np.testing.assert_allclose(choice.y, aview.curve)
    np.testing.assert_allclose(choice.x, aview.budgets)
    (band,) = [t for t in fig.data if t.type == "scatter" and t.fill == "toself"]
    y = np.asarray(band.y)
    n = len(aview.budgets)
    assert np.all(y[:n] >= np.asarray(choice.y) - 1e-12)
    assert np.all(y[n:][::-1] <= np.asarray(choice.y) + 1e-12)
    fixed = [t for t in fig.data if t.name in aview.labels]
    assert [t.name for t in fixed] == list(aview.labels)
    for t, row in zip(fixed, aview.fixed, strict=True):
        np.testing.assert_allclose(t.y, row)
    # the headline gain at the full budget, with its interval, on lines that fit a
    # laptop-width panel (one line of ~90 characters ran past the chart's edge)
    (note,) = [a.text for a in fig.layout.annotations if "best fixed" in a.text]
    last = len(aview.budgets) - 1
    assert f"at N = {aview.budgets[last]}:" in note
    assert re.search(r"<b>[+-]?\d+\.\d</b> points \[[+-]?\d+\.\d, [+-]?\d+\.\d\]", note)
    assert max(len(_shown(line)) for line in note.split("<br>")) <= 60


def test_allocation_says_which_bin_is_hardest_in_the_scores_as_imported(
    aview: V.AllocationView,
) -> None:
    # bin 1 is the predicted hardest: the lowest mean score, but the highest where lower
    # scores are better (a length), whose bins are shown in raw units
    higher = F.allocation_figure(aview).layout.title.text.replace("<br>", " ")
    assert "bin 1 = lowest mean score: the predicted hardest" in higher
    lower = replace(aview, lower_is_better=True)
    title = F.allocation_figure(lower).layout.title.text.replace("<br>", " ")
    assert "bin 1 = highest mean score (lower is better here)" in title
    assert "bin 1 = lowest" not in title


def test_allocation_choice_panel_shows_each_bins_choice(aview: V.AllocationView) -> None:
    fig = F.allocation_figure(aview)
    (hm,) = [t for t in fig.data if t.type == "heatmap"]
    z = np.asarray(hm.z)
    assert z.shape == (2 * aview.n_bins, len(aview.budgets))
    for k in range(aview.n_bins):
        for f in (0, 1):
            np.testing.assert_array_equal(z[2 * k + f], aview.choice[f, :, k])
            names = [short_name(aview.candidates[int(c)]) for c in aview.choice[f, :, k]]
            # the cell: the name's first word; the hover: the full label
            assert list(np.asarray(hm.text)[2 * k + f]) == [n.split(" ")[0] for n in names]
            full = [aview.labels[int(c)] for c in aview.choice[f, :, k]]
            assert [c[2] for c in hm.customdata[2 * k + f]] == full
    assert len(hm.x) == len(aview.budgets) + 1  # cell edges around each budget
    assert hm.xaxis == "x2"
    # short row names (the width goes to the cells); each bin's mean scores in the hover
    assert list(hm.y) == [
        f"bin {k + 1} · fold {f + 1}" for k in range(aview.n_bins) for f in (0, 1)
    ]
    for k in range(aview.n_bins):
        assert hm.customdata[2 * k][0][0] == f"bin {k + 1}: mean score {aview.score_range(k)}"


# ---- combined signals -----------------------------------------------------------------


@pytest.fixture(scope="module")
def mview(demo: Store, info: DatasetInfo) -> V.CombineView:
    return V.combine_view(demo, info, LLM, [VER, "sim-grm-orm", "sim-shepherd-last"], SETTINGS)


def test_combine_one_trace_per_strategy_on_a_log2_axis(mview: V.CombineView) -> None:
    fig = F.combine_figure(mview)
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    assert sorted(t.name for t in lines) == sorted(mview.labels)
    # majority, three signals alone, two labelled and two label-free combiners
    assert len(lines) == len(mview.strategies) == 1 + 3 + 4
    for t in lines:
        s = mview.labels.index(t.name)
        np.testing.assert_allclose(t.y, mview.accuracy[s])
        assert (t.line.dash == "dot") == (mview.kinds[s] == "single")
    assert fig.layout.xaxis.type == "log"
    assert list(fig.layout.xaxis.tickvals) == list(mview.budgets)
    bands = [t for t in fig.data if t.type == "scatter" and t.fill == "toself"]
    assert {t.legendgroup for t in bands} == {"sum_llr", "logistic", "latent_pv", "weak_sup"}
    for band in bands:
        s = mview.strategies.index(band.legendgroup)
        y = np.asarray(band.y)
        n = len(mview.budgets)
        np.testing.assert_allclose(y[:n], mview.high[s])
        np.testing.assert_allclose(y[n:][::-1], mview.low[s])
    assert "(simulated)" in fig.layout.title.text
    # each combiner's gain at the full budget, with its interval, under the title: no
    # box inside the plot (one covered the curves at laptop width)
    title = fig.layout.title.text
    last = len(mview.budgets) - 1
    assert f"at N = {mview.budgets[last]}, gain over the best single signal" in title
    for s, kind in enumerate(mview.kinds):
        if kind == "combined":
            gain = f"{100 * mview.gain[s, last]:+.1f}"
            band = f"[{100 * mview.gain_low[s, last]:+.1f}, {100 * mview.gain_high[s, last]:+.1f}]"
            assert f"{mview.labels[s]}: <b>{gain}</b> points {band}" in title
    assert not [a for a in fig.layout.annotations if "gain over" in (a.text or "")]


def test_dataset_overview_is_the_pair_summary() -> None:
    import pandas as pd

    summary = pd.DataFrame(
        {
            "llm": ["a", "a", "b", "b"],
            "verifier": ["v1", "length", "v1", "length"],
            "accuracy": [0.25, 0.25, 0.9, 0.9],
            "separation": [1.2, -0.4, float("nan"), -0.1],
        }
    )
    fig = F.dataset_overview_figure(summary, "demo: pairs")
    (heat,) = fig.data
    z = np.asarray(heat.z, dtype=float)
    np.testing.assert_allclose(z, [[1.2, -0.4], [np.nan, -0.1]])
    assert list(heat.y) == ["a (25% correct)", "b (90% correct)"]
    assert heat.text[1][0] == "–" and heat.text[0][1] == "-0.40"
    # a diverging scale centred on 0: negative separation (lower is better) reads blue/red
    assert heat.zmid == 0.0 and heat.zmin == -1.2 and heat.zmax == 1.2


def test_dataset_overview_of_one_llm_and_many_verifiers_lists_them_as_rows() -> None:
    import pandas as pd

    vers = [f"verifier-{k}" for k in range(10)]  # RewardMATH: 1 LLM x 10 reward models
    seps = [0.1 * k - 0.3 for k in range(10)]
    summary = pd.DataFrame(
        {"llm": ["m"] * 10, "verifier": vers, "accuracy": [0.1] * 10, "separation": seps}
    )
    fig = F.dataset_overview_figure(summary, "one LLM: pairs")
    (heat,) = fig.data
    assert list(heat.y) == vers and list(heat.x) == ["m (10% correct)"]
    np.testing.assert_allclose(np.asarray(heat.z, dtype=float).ravel(), seps)
    assert [r[0] for r in heat.text] == [f"{v:+.2f}" for v in seps]
    assert "%{x}<br>%{y}" in heat.hovertemplate  # the LLM first, as in the other layout

    # one row of 42 px per verifier, and never a strip too low for its colour bar
    def cells(f: go.Figure) -> int:
        return int(f.layout.height - f.layout.margin.t - f.layout.margin.b)

    assert cells(fig) >= 42 * 10
    few = F.dataset_overview_figure(summary.iloc[:1], "one pair")
    assert cells(few) >= 150
    # the title and its subtitle sit in a top margin made for them, above the cells (on
    # the plot area the subtitle ran into a one-row strip)
    for f in (fig, few):
        assert f.layout.title.yref == "container" and f.layout.title.yanchor == "top"
        assert f.layout.margin.t >= 34 + 16 + 20


def test_issue_lines_show_user_strings_as_written() -> None:
    from core.info import Issue
    from dashboard.text import plain

    hostile = "![x](http://127.0.0.1:9/x.png) **b** :red[c] $d$"
    line = F.issue_lines((Issue("unfittable", f"{hostile} × v", "kde_wv", "why"),))[0]
    # every markdown-active character is escaped, so nothing renders or is fetched
    for raw in ("![", "](", "**", ":red[", "$d$"):
        assert raw not in line
    assert plain("a_b*c") == "a\\_b\\*c" and plain("plain text") == "plain text"


# ---- user strings are text, never Plotly markup ----------------------------------------

EVIL_LLM = '<a href="http://evil.example/">m</a>'
EVIL_VER = "<img src=x onerror=1>"
EVIL_DS = "<b>bold</b>%{y}$x$"
EVIL_ANSWER = "x<3 "  # prefixed to every answer (and the gold one): clusters stay apart

#: what a hostile string looks like when Plotly would render it
RAW = ("<a href", "<img", "<b>bold", "<i>", "</i>", "%{y}$", "$x$", "x<3")
#: the escaped forms (Plotly draws them as the characters written)
ESC_LLM, ESC_VER, ESC_DS = "&lt;a href=", "&lt;img src=x", "&lt;b&gt;bold&lt;/b&gt;&#37;{y}"
ESC_STRATEGY, ESC_ANSWER = "&lt;i&gt;", "x&lt;3"


def _evil(name: str) -> str:
    """A hostile strategy name or label (a plugin's): markup and a template variable."""
    return f"<i>{name}</i>%{{y}}"


def _rename(name: str) -> str:
    return {LLM: EVIL_LLM, VER: EVIL_VER}.get(name, name)


def _strings(fig: go.Figure) -> list[str]:
    """Every string of the figure as plotly.js receives it."""
    out: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, str):
            out.append(node)
        elif isinstance(node, dict):
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(json.loads(fig.to_json()))
    return out


def _evil_weights(request: pytest.FixtureRequest) -> go.Figure:
    v: V.WeightView = request.getfixturevalue("wview")
    evil = replace(v, llm=EVIL_LLM, verifier=EVIL_VER, dataset=EVIL_DS, label=_evil("KDE"))
    return F.weight_figure(evil, axis="raw")


def _evil_grid(request: pytest.FixtureRequest) -> go.Figure:
    demo: Store = request.getfixturevalue("demo")
    g = V.weight_grid_view(demo, request.getfixturevalue("info"), "kde_wv", EvalConfig())
    panels = tuple(replace(p, llm=_rename(p.llm), verifier=_rename(p.verifier)) for p in g.panels)
    panels = (replace(panels[0], error=f"cannot fit {EVIL_LLM}"), *panels[1:])
    evil = replace(
        g,
        llms=tuple(map(_rename, g.llms)),
        verifiers=tuple(map(_rename, g.verifiers)),
        panels=panels,
        dataset=EVIL_DS,
        label=_evil("KDE"),
    )
    return F.weight_grid_figure(evil)


def _evil_budget(request: pytest.FixtureRequest) -> go.Figure:
    v: V.BudgetView = request.getfixturevalue("bview")
    evil = replace(
        v,
        dataset=EVIL_DS,
        pairs=tuple((_rename(m), _rename(w)) for m, w in v.pairs),
        strategies=tuple(map(_evil, v.strategies)),
        curves=tuple(
            replace(
                c,
                llm=_rename(c.llm),
                verifier=_rename(c.verifier),
                strategy=_evil(c.strategy),
                label=_evil(c.label),
            )
            for c in v.curves
        ),
        efficiencies=tuple(
            replace(e, llm=_rename(e.llm), verifier=_rename(e.verifier), a=_evil(e.a), b=_evil(e.b))
            for e in v.efficiencies
        ),
    )
    assert evil.efficiencies  # the efficiency sentence quotes the strategies' names
    return F.budget_figure(evil)


def _evil_compare(request: pytest.FixtureRequest) -> go.Figure:
    v: V.CompareView = request.getfixturevalue("cview")
    evil = replace(
        v,
        dataset=EVIL_DS,
        pairs=tuple((_rename(m), _rename(w)) for m, w in v.pairs),
        strategies=tuple(map(_evil, v.strategies)),
        baseline=_evil(v.baseline),
        labels=tuple(map(_evil, v.labels)),
    )
    return F.compare_figure(evil)


def _evil_problem(request: pytest.FixtureRequest) -> go.Figure:
    demo: Store = request.getfixturevalue("demo")
    info: DatasetInfo = request.getfixturevalue("info")
    strategies = ("majority", "best_of_n", "logit_wv", "kde_wv")
    d = V.disagreement_problems(demo, info, LLM, VER, strategies, SETTINGS)
    pid = d.problem_ids[0] if d.problem_ids else d.all_problem_ids[0]
    v = V.problem_view(demo, info, LLM, VER, pid, strategies, SETTINGS)
    evil = replace(
        v,
        dataset=EVIL_DS,
        llm=EVIL_LLM,
        verifier=EVIL_VER,
        problem_id=EVIL_VER,
        gold=EVIL_ANSWER + (v.gold or ""),
        answers=tuple(EVIL_ANSWER + a for a in v.answers),
        strategies=tuple(map(_evil, v.strategies)),
        labels=tuple(map(_evil, v.labels)),
    )
    fig = F.problem_figure(evil)
    # the answers are the y categories: the dots and bars use the same (escaped) ones
    cats = list(fig.layout.yaxis.categoryarray)
    assert all(ESC_ANSWER in c for c in cats)
    assert {y for t in fig.data for y in t.y} <= set(cats)
    return fig


def _evil_transfer(request: pytest.FixtureRequest, same_common: bool = False) -> go.Figure:
    v: V.TransferView = request.getfixturevalue("tview")
    evil = replace(
        v,
        strategy=_evil(v.strategy),
        strategy_label=_evil(v.strategy_label),
        baseline=_evil(v.baseline),
        baseline_label=_evil(v.baseline_label),
        source_labels=tuple(f"{EVIL_LLM} {lb}" for lb in v.source_labels),
        target_labels=tuple(f"{EVIL_VER} {lb}" for lb in v.target_labels),
        source_common=EVIL_DS,
        target_common=EVIL_DS if same_common else EVIL_DS + " ",
    )
    return F.transfer_heatmap(evil)


def _evil_allocation(request: pytest.FixtureRequest) -> go.Figure:
    v: V.AllocationView = request.getfixturevalue("aview")
    evil = replace(
        v,
        dataset=EVIL_DS,
        llm=EVIL_LLM,
        verifier=EVIL_VER,
        candidates=tuple(map(_evil, v.candidates)),
        labels=tuple(map(_evil, v.labels)),
    )
    return F.allocation_figure(evil)


def _evil_combine(request: pytest.FixtureRequest) -> go.Figure:
    v: V.CombineView = request.getfixturevalue("mview")
    evil = replace(
        v,
        dataset=EVIL_DS,
        llm=EVIL_LLM,
        verifiers=tuple(map(_rename, v.verifiers)),
        strategies=tuple(map(_evil, v.strategies)),
        labels=tuple(map(_evil, v.labels)),
    )
    return F.combine_figure(evil)


def _evil_overview(request: pytest.FixtureRequest) -> go.Figure:
    summary = pd.DataFrame(
        {
            "llm": [EVIL_LLM, EVIL_LLM, "b"],
            "verifier": [EVIL_VER, _evil("v"), EVIL_VER],
            "accuracy": [0.25, 0.25, 0.9],
            "separation": [1.2, -0.4, 0.3],
        }
    )
    return F.dataset_overview_figure(summary, f"{EVIL_DS}: pairs")


EVIL_FIGURES = {
    "weights": (_evil_weights, (ESC_LLM, ESC_VER, ESC_DS, ESC_STRATEGY)),
    "weight grid": (_evil_grid, (ESC_LLM, ESC_VER, ESC_DS, ESC_STRATEGY)),
    "budget": (_evil_budget, (ESC_LLM, ESC_VER, ESC_DS, ESC_STRATEGY)),
    "compare": (_evil_compare, (ESC_LLM, ESC_VER, ESC_DS, ESC_STRATEGY)),
    "problem": (_evil_problem, (ESC_LLM, ESC_VER, ESC_DS, ESC_STRATEGY, ESC_ANSWER)),
    # the pair labels are wrapped into lines of 18 and 24 characters
    "transfer": (_evil_transfer, ("&lt;a<br>href=", "&lt;img", ESC_DS, ESC_STRATEGY)),
    "transfer, one common part": (
        lambda r: _evil_transfer(r, same_common=True),
        ("&lt;a<br>href=", "&lt;img", ESC_DS, ESC_STRATEGY),
    ),
    "allocation": (_evil_allocation, (ESC_LLM, ESC_VER, ESC_DS, ESC_STRATEGY)),
    "combine": (_evil_combine, (ESC_LLM, ESC_VER, ESC_DS, ESC_STRATEGY)),
    "dataset overview": (_evil_overview, (ESC_LLM, ESC_VER, ESC_DS, ESC_STRATEGY)),
}


@pytest.mark.parametrize("which", list(EVIL_FIGURES))
def test_user_names_are_drawn_as_text_not_markup(
    which: str, request: pytest.FixtureRequest
) -> None:
    build, escaped = EVIL_FIGURES[which]
    strings = _strings(build(request))
    for raw in RAW:
        assert not [s for s in strings if raw in s], f"{raw!r} reaches plotly unescaped"
    for esc in escaped:
        # (a long title may be wrapped at a space inside the name, each line bold: the
        # same words shown)
        shown = [_shown(s) for s in strings]
        assert any(esc in s for s in strings + shown), f"{esc!r} (an escaped user name) is missing"
    # every template variable left is the figure's own (none from a user string)
    variables = {m for s in strings for m in re.findall(r"%\{([^}]*)\}", s)}
    assert variables <= {
        "x",
        "y",
        "z:.2f",
        "text",
        "x:.3f",
        "y:.3f",
        "y:.2f",
        "y:.1%",
        "customdata:.0f",
        "customdata[0]",
        "customdata[0]:.1%",
        "customdata[1]:.1%",
        "customdata[0]:.1f",
        "customdata[1]:.1f",
        "customdata[2]:.0f",
        "customdata[2]",
    }, variables


def _convert_entities(text: str) -> str:
    """plotly.js `svg_text_utils.convertEntities`: what a drawn text shows."""
    named = {"mu": "μ", "amp": "&", "lt": "<", "gt": ">", "nbsp": "\xa0", "times": "×"}

    def one(m: re.Match[str]) -> str:
        r = m.group(1)
        if r.startswith("#"):
            return chr(int(r[2:], 16) if r[1] == "x" else int(r[1:]))
        return named.get(r, m.group(0))

    return re.sub(r"&(#\d+|#x[\da-fA-F]+|[a-z]+);", one, text)


@pytest.mark.parametrize(
    "text",
    [EVIL_LLM, EVIL_VER, EVIL_DS, "a<b", "x &lt; 3 &amp; y", "50%{x}%", "$\\frac{1}{2}$", "ok"],
)
def test_plotly_plain_is_drawn_as_written(text: str) -> None:
    from dashboard.text import plotly_plain

    esc = plotly_plain(text)
    assert not {"<", ">", "$"} & set(esc) and "%{" not in esc
    assert _convert_entities(esc) == text
    assert plotly_plain("plain text 50%") == "plain text 50%"


def _stopping_view(llm: str = "m", has_tokens: bool = True) -> StoppingView:
    from core.info.stopping import FixedCurve, RuleCurve, StoppingView

    acc = np.array([0.5, 0.6, 0.7])
    rule = RuleCurve(
        rule="esc",
        label="ESC",
        threshold_name="window w",
        thresholds=(2.0, 4.0, 8.0),
        accuracy=acc,
        low=acc - 0.05,
        high=acc + 0.05,
        samples=np.array([2.5, 5.0, 9.0]),
        tokens=np.array([250.0, 500.0, 900.0]),
    )
    fixed = FixedCurve(
        strategy="majority",
        budgets=(1, 2, 4, 8, 16),
        accuracy=np.array([0.4, 0.5, 0.6, 0.65, 0.7]),
        low=np.full(5, 0.3),
        high=np.full(5, 0.8),
        samples=np.array([1.0, 2.0, 4.0, 8.0, 16.0]),
        tokens=np.array([100.0, 200.0, 400.0, 800.0, 1600.0]),
    )
    return StoppingView(
        dataset="d",
        llm=llm,
        verifier="v",
        n_problems=40,
        cap=16,
        rules=(rule,),
        fixed=(fixed,),
        reference_budget=8,
        savings=(),
        has_tokens=has_tokens,
        level=0.95,
        tolerance=0.005,
        issues=(),
    )


def test_stopping_figure_draws_rules_against_fixed_n_in_samples_or_tokens() -> None:
    from dashboard.figures import stopping_figure

    fig = stopping_figure(_stopping_view())
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    assert [t.name for t in lines] == ["Majority vote, fixed N", "ESC"]
    assert lines[0].line.dash == "dash" and lines[1].line.dash is None
    assert list(lines[1].x) == [2.5, 5.0, 9.0]
    assert fig.layout.xaxis.type == "log" and 16 in fig.layout.xaxis.tickvals
    # the savings' target: majority's accuracy at the reference N, less the tolerance
    (target,) = [s for s in fig.layout.shapes if s.y0 == s.y1]
    assert target.y0 == pytest.approx(0.65 - 0.005)
    # named in the legend (a dotted entry), not by a label on the line among the curves
    (entry,) = [t for t in fig.data if t.name and t.name.startswith("target:")]
    assert entry.name == "target: majority at N = 8 less 0.5 pt"
    assert entry.line.dash == "dot" and entry.showlegend is not False
    assert not [a for a in fig.layout.annotations if "majority at" in (a.text or "")]
    tok = stopping_figure(_stopping_view(), "tokens")
    assert list(next(t for t in tok.data if t.name == "ESC").x) == [250.0, 500.0, 900.0]
    assert "tokens" in tok.layout.xaxis.title.text
    with pytest.raises(ValueError, match="samples or tokens"):
        stopping_figure(_stopping_view(), "flops")
    hostile = stopping_figure(_stopping_view(llm='<a href="http://evil.example/">m</a>'))
    text = hostile.to_json()
    title = hostile.layout.title.text
    # (a long title is wrapped, each line bold: the words shown, tags dropped)
    assert "<a href" not in text and "<a href" not in title and "&lt;a href" in _shown(title)


def test_frontier_figure_marks_the_pareto_points() -> None:
    from core.info.frontier import FrontierPoint, FrontierView
    from dashboard.figures import frontier_figure

    pts = (
        FrontierPoint("a", "majority", 1, 100.0, 0.5, 0.4, 0.6, True),
        FrontierPoint("a", "majority", 2, 200.0, 0.55, 0.45, 0.65, False),
        FrontierPoint("<img src=x onerror=1>", "majority", 1, 150.0, 0.7, 0.6, 0.8, True),
        FrontierPoint("<img src=x onerror=1>", "logit_wv", 2, 300.0, 0.8, 0.7, 0.9, True),
    )
    view = FrontierView("d", "v", "tokens", 30, pts, 0.95, ())
    fig = frontier_figure(view)
    front = next(t for t in fig.data if t.name == "Pareto frontier")
    assert list(front.x) == [100.0, 150.0, 300.0] and list(front.y) == [0.5, 0.7, 0.8]
    assert list(front.error_y.array) == pytest.approx([0.1, 0.1, 0.1])
    # the frontier's ring leaves the point's own marker (its LLM's colour) visible inside
    points = [t for t in fig.data if t.name != "Pareto frontier" and t.marker.size]
    assert points and front.marker.size > 1.8 * max(t.marker.size for t in points)
    # one legend entry per LLM; the LLM's strategies share its colour
    shown = [t.name for t in fig.data if t.showlegend is not False and t.name != "Pareto frontier"]
    assert shown == ["a", "&lt;img src=x onerror=1&gt;"]
    assert fig.layout.xaxis.type == "log"
    assert "<img" not in fig.to_json()


def test_budget_gain_mode_draws_paired_gains(bview: V.BudgetView) -> None:
    with pytest.raises(ValueError, match="baseline"):
        F.budget_figure(bview, mode="gain")
    assert bview.curves  # the module's view has no baseline; build one with gains
    base = bview.curves[0].strategy
    gains = tuple(
        replace(
            c,
            gain=c.accuracy - bview.curve(c.llm, c.verifier, base).accuracy,
            gain_low=c.low - bview.curve(c.llm, c.verifier, base).accuracy,
            gain_high=c.high - bview.curve(c.llm, c.verifier, base).accuracy,
        )
        for c in bview.curves
    )
    view = replace(bview, curves=gains, baseline=base)
    fig = F.budget_figure(view, mode="gain")
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    assert base not in {t.legendgroup for t in lines}  # the baseline's zero is not drawn
    want = [c for m, v in view.pairs for c in view.curves_of(m, v) if c.strategy != base]
    assert len(lines) == len(want)
    for t, c in zip(lines, want, strict=True):
        assert t.legendgroup == plotly_plain(c.strategy)
        assert c.gain is not None
        np.testing.assert_allclose(np.asarray(t.y, dtype=float), 100 * c.gain, atol=1e-9)
    assert any(t.name == "zero" for t in fig.data)
    assert "Gain over" in fig.layout.title.text
    assert "points" in fig.layout.yaxis.title.text
    assert not [t for t in fig.data if str(t.name).startswith("majority over all samples")]


def test_offset_figure_marks_the_fitted_and_the_chosen_b(
    demo: Store, info: DatasetInfo, wview: V.WeightView
) -> None:
    with pytest.raises(ValueError, match="no offset search"):
        F.offset_figure(wview)  # KDE WV: no offset
    view = V.weight_view(demo, info, LLM, VER, "logit_wv", EvalConfig(weight_boot=10))
    fig = F.offset_figure(view)
    (line,) = [t for t in fig.data if t.name == "calibration accuracy"]
    np.testing.assert_allclose(np.asarray(line.x), view.offset_candidates)
    np.testing.assert_allclose(np.asarray(line.y), 100 * view.offset_accuracy)
    assert [sh.x0 for sh in fig.layout.shapes] == [pytest.approx(view.b_fitted)]
    hand = view.with_offset(0.3)
    marks = [sh.x0 for sh in F.offset_figure(hand).layout.shapes]
    assert marks == [pytest.approx(view.b_fitted), pytest.approx(0.3)]  # fitted, then shown
    assert "N = 8" in fig.layout.title.text


def test_overlay_figure_keeps_strategy_colours_and_styles_pairs(
    demo: Store, info: DatasetInfo
) -> None:
    refs = [V.PairRef(info.name, LLM, VER), V.PairRef(info.name, LLM, info.verifiers[1])]
    view = V.overlay_view(demo, refs, ["majority", "logit_wv"], SETTINGS)
    fig = F.overlay_figure(view)
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    assert len(lines) == 4
    for t, c in zip(lines, view.curves, strict=True):
        k = view.refs.index(c.ref)
        assert t.line.color == strategy_color(c.strategy)  # the strategy's colour everywhere
        assert t.line.dash == F.PAIR_DASHES[k] and t.marker.symbol == F.PAIR_SYMBOLS[k]
        np.testing.assert_allclose(np.asarray(t.y, dtype=float), c.accuracy)
    assert fig.layout.xaxis.type == "log"


@pytest.fixture
def every_figure(
    wview: V.WeightView,
    bview: V.BudgetView,
    cview: V.CompareView,
    tview: V.TransferView,
    aview: V.AllocationView,
    mview: V.CombineView,
) -> Callable[[], list[go.Figure]]:
    """Makes one figure of each kind (when the test calls it, after its own set-up)."""
    return lambda: [
        F.weight_figure(wview),
        F.budget_figure(bview),
        F.compare_figure(cview),
        F.transfer_heatmap(tview),
        F.allocation_figure(aview),
        F.combine_figure(mview),
        F.stopping_figure(_stopping_view()),
    ]


def test_every_figure_is_drawn_on_the_white_template(
    monkeypatch: pytest.MonkeyPatch, every_figure: Callable[[], list[go.Figure]]
) -> None:
    # the template comes from Plotly's default, which the figures module makes the white
    # one when it makes a figure: whatever set it before (importing Streamlit sets its
    # own; here Plotly's grey one), every figure and its JSON carry the white template
    import plotly.io as pio

    monkeypatch.setattr(pio.templates, "default", "plotly")
    for fig in every_figure():
        layout = fig.to_plotly_json()["layout"]
        assert layout["template"]["layout"]["plot_bgcolor"] == "white"
        assert layout["template"]["layout"]["xaxis"]["gridcolor"] == "#EBF0F8"
        # the project's type and ink (the dashboard draws the template alone)
        assert layout["template"]["layout"]["font"]["family"].startswith("Inter")
        assert layout["template"]["layout"]["font"]["color"] == "#262730"
        # the title's main line is bold (Streamlit's theme made it so on screen only)
        main = str(layout["title"]["text"]).split("<sup", 1)[0]
        assert main.startswith("<b>") and main.removesuffix("<br>").endswith("</b>")


def test_every_figures_subtitle_fits_a_1000_px_window(
    every_figure: Callable[[], list[go.Figure]],
) -> None:
    """A chart in a 1000 px window is about 560 px wide: some 88 characters of the bold
    subtitle type. A 95-character line of the budget chart's subtitle was cut at the
    chart's edge ("...bands over 10" for "over 100 problems", Qwen2.5-Math RM file)."""
    for fig in every_figure():
        title = str(fig.layout.title.text)
        sub = title.split("<sup", 1)[1].split(">", 1)[1]
        lines = [_shown(x) for x in sub.split("<br>")]
        assert max(len(x) for x in lines) <= 88, lines


def test_budget_tick_labels_never_run_together() -> None:
    # BoInf's budgets end in 64 and 80: a third of a doubling apart on the log2 axis
    assert F._budget_ticktext([1, 2, 4, 8, 16, 32, 64, 80]) == [
        "1", "2", "4", "8", "16", "32", "", "80",
    ]  # fmt: skip
    assert F._budget_ticktext([1, 2, 4, 8]) == ["1", "2", "4", "8"]
    assert F._budget_ticktext([32, 48, 64, 80]) == ["32", "48", "", "80"]
    assert F._budget_ticktext([8, 10]) == ["8", "10"]  # two: both kept
    assert F._budget_ticktext([1]) == ["1"]
