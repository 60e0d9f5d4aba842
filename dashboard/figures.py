"""Plotly figure builders and the prose around charts: pure functions of the frozen
results of `core.info`.

Each builder takes one result (and display options) and returns a `go.Figure`; nothing
here reads the store or computes statistics, so the tests call the builders directly.
Strategy colours come from the registry, so a strategy has one colour on every page;
sentences come from `core.reports` (the CLI says the same things).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots
from scipy import special

from core.info import (
    NO_ANSWER,
    AllocationView,
    BudgetView,
    CombineView,
    CompareView,
    Efficiency,
    Issue,
    OverlayView,
    ProblemView,
    TransferView,
    WeightGridView,
    WeightView,
    dataset_label,
)
from core.info.frontier import FrontierView
from core.info.stopping import StoppingView
from core.methods import color as strategy_color
from core.methods import display_label, get_strategy, short_name
from core.reports import (
    compare_latex,
    efficiency_sentence,
    issue_text,
    savings_display,
    weight_facts,
)
from dashboard.text import plain, plotly_plain

CORRECT = "#1b9e77"  # teal green
INCORRECT = "#d95f02"  # orange
NEGATIVE_FILL = "rgba(214, 39, 40, 0.28)"
NEGATIVE_LINE = "#b2182b"
CURVE = "#1f3b73"
BAND_FILL = "rgba(31, 119, 180, 0.22)"
MUTED = "#9aa0a6"
OVERLAY = "#7b3294"  # a second fit drawn over the first (label-free vs labelled)


def _calibration_caption(k: int, calibration: str) -> str:
    """How the weights of a figure were fitted, in a few words."""
    if calibration == "none":
        return "label-free weights (EM, no labels read)"
    if calibration.startswith("semi:"):
        return (
            f"semi-supervised weights ({plotly_plain(calibration[5:])} labels per fold, {k}-fold)"
        )
    return f"{k}-fold cross-fitted weights"


FONT = {"family": "Inter, Segoe UI, Helvetica, Arial, sans-serif", "size": 13}


__all__ = [
    "CORRECT",
    "INCORRECT",
    "NEGATIVE_FILL",
    "allocation_figure",
    "budget_figure",
    "combine_figure",
    "compare_figure",
    "compare_latex",
    "dataset_overview_figure",
    "efficiency_sentence",
    "frontier_figure",
    "issue_lines",
    "problem_figure",
    "savings_display",
    "stopping_figure",
    "transfer_heatmap",
    "weight_facts",
    "weight_figure",
    "weight_grid_figure",
]


def _band(
    x: np.ndarray, low: np.ndarray, high: np.ndarray, fill: str, name: str, group: str
) -> go.Scatter:
    """A filled confidence band (a closed polygon, no legend entry, no hover)."""
    return go.Scatter(
        x=np.concatenate([x, x[::-1]]),
        y=np.concatenate([high, low[::-1]]),
        mode="lines",
        fill="toself",
        fillcolor=fill,
        line={"width": 0},
        hoverinfo="skip",
        showlegend=False,
        legendgroup=group,
        name=name,
    )


#: style of the boxed notes written on charts (efficiency ratio, gains)
NOTE_BOX: dict[str, Any] = {
    "bgcolor": "rgba(255,255,255,0.9)",
    "bordercolor": "#444",
    "borderwidth": 1,
    "borderpad": 4,
    "font": {"size": 12, "color": "#111"},
}


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r}, {g}, {b}, {alpha})"


def _pair(llm: str, verifier: str) -> str:
    """A pair's name for a figure (the user's names escaped)."""
    return f"{plotly_plain(llm)} × {plotly_plain(verifier)}"


#: Every figure's template: Plotly's white one with the project's type and ink. The
#: dashboard draws a figure with this template alone (`theme=None`), so the screen, the
#: SVG/PDF/PNG exports and the report show the same figure. A figure takes Plotly's
#: default template when it is made (about 3 ms), while `template=` on each figure
#: validated and copied the whole template every time (25-30 ms a figure, on every rerun
#: of a page); so the figures are made by `_figure` and `_subplots`, which make it the
#: default first (importing Streamlit sets its own).
TEMPLATE = "ttslab"
#: text colour of titles, legends and notes; axes are a lighter grey
INK = "#262730"
AXIS_INK = "#5c5f6e"


def _register_template() -> None:
    base = go.layout.Template(pio.templates["plotly_white"])
    axis = {"tickfont": {"color": AXIS_INK}, "title": {"font": {"color": AXIS_INK}}}
    base.layout.update(
        font={"family": FONT["family"], "color": INK},
        title={"font": {"color": INK}},
        legend={"font": {"color": INK}},
        xaxis=axis,
        yaxis=axis,
        hoverlabel={"bgcolor": "white", "bordercolor": "#c9ccd6", "font": {"color": INK}},
    )
    pio.templates[TEMPLATE] = base


def _white_default() -> None:
    if pio.templates.default != TEMPLATE:
        if TEMPLATE not in pio.templates:
            _register_template()
        pio.templates.default = TEMPLATE


def _figure(*args: Any, **kwargs: Any) -> go.Figure:
    _white_default()
    return go.Figure(*args, **kwargs)


def _subplots(**kwargs: Any) -> go.Figure:
    _white_default()
    return make_subplots(**kwargs)


#: subtitle lines are wrapped at about this many characters: a 1000 px window gives a
#: chart about 560 px, some 88 characters of the bold 12.6 px subtitle type
SUBTITLE_CHARS = 86
#: and title lines (18 px type) at this many
TITLE_CHARS = 56


def _wrap_sub(sub: str, width: int = SUBTITLE_CHARS) -> str:
    """Wrap a subtitle's lines (already split by <br>) at " · " or spaces."""
    out: list[str] = []
    for line in sub.split("<br>"):
        cur = ""
        for part in re.split(r"(?<= · )|(?<= )", line):
            if cur and len(re.sub(r"<[^>]+>", "", cur + part)) > width:
                out.append(cur.rstrip())
                cur = part
            else:
                cur += part
        out.append(cur.rstrip())
    return "<br>".join(out)


def _bold(main: str) -> str:
    """A title's main line(s), wrapped and bold (each line its own <b>)."""
    return "<br>".join(f"<b>{line}</b>" for line in _wrap_sub(main, TITLE_CHARS).split("<br>"))


def _title_lines(title: Mapping[str, object]) -> int:
    return str(title["text"]).count("<br>") + 1


def _top_margin(title: Mapping[str, object], below: int) -> int:
    """The top margin that holds a `_panel_title` and, under it, `below` pixels (the
    panels' own titles or column headers)."""
    return 34 + 16 * (_title_lines(title) - 1) + below


def _panel_title(main: str, sub: str) -> dict[str, object]:
    """The title of a figure of several panels: at the top of the figure (the panels'
    own titles sit above the plot areas, where `_title` would put it); the figure's top
    margin is set from `_title_lines`."""
    return {
        "text": f"{_bold(main)}<br><sup style='color:#555'>{_wrap_sub(sub)}</sup>",
        "x": 0.0,
        "xanchor": "left",
        "yref": "container",
        "y": 1.0,
        "yanchor": "top",
        "pad": {"t": 14},
        "font": {"size": 18},
    }


def _title(main: str, sub: str) -> dict[str, object]:
    """A figure's title and subtitle (Plotly markup, user strings already escaped). The
    subtitle is wrapped, and the title pushes the plot area down as far as it needs
    (automargin), so neither is clipped on a narrow screen."""
    return {
        "text": f"{_bold(main)}<br><sup style='color:#555'>{_wrap_sub(sub)}</sup>",
        "x": 0.0,
        "xanchor": "left",
        "yref": "paper",
        "y": 1.0,
        "yanchor": "bottom",
        "pad": {"b": 12},
        "automargin": True,
        "font": {"size": 18},
    }


def _base_layout(fig: go.Figure, height: int) -> None:
    fig.update_layout(
        font=FONT,
        height=height,
        margin={"l": 70, "r": 30, "t": 110, "b": 60},
        hoverlabel={"font_size": 12},
    )


# --------------------------------------------------------------------------------------
# weight functions
# --------------------------------------------------------------------------------------


WEIGHT_AXES = ("score", "logit", "raw")


def _x_axis(view: WeightView, t: np.ndarray, axis: str) -> np.ndarray:
    """Positions of transformed scores `t` on the chosen x axis."""
    if axis == "logit":
        return np.asarray(special.logit(t), dtype=np.float64)
    if axis == "raw":
        return np.asarray(np.interp(t, view.grid, view.raw_grid), dtype=np.float64)
    return np.asarray(t, dtype=np.float64)


def weight_figure(view: WeightView, axis: str = "score") -> go.Figure:
    """w(s) with its bootstrap band, the negative region shaded and a zero line; beneath it
    on the same x axis the class densities (KDE lines) over a histogram of the scores.

    `axis`: "score" (transformed score t in [0, 1], oriented so that higher is better),
    "logit" (logit t, where the KDE is fitted and where scores piled up near 0 or 1 spread
    out) or "raw" (the imported score: tokens, raw reward; logarithmic for positive scores
    spanning more than two decades; the lower panel keeps densities per unit of t).
    """
    if axis not in WEIGHT_AXES:
        raise ValueError(f"axis must be one of {WEIGHT_AXES}, got {axis!r}")
    x = _x_axis(view, view.grid, axis)
    fig = _subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        row_heights=[0.6, 0.4],
        vertical_spacing=0.08,
        subplot_titles=(
            "weight w(s): > 0 evidence for the answer, < 0 against it",
            "where the scores lie, by correctness",
        ),
    )
    # bootstrap band of the fitted curve
    fig.add_trace(
        go.Scatter(
            x=x,
            y=view.band_high,
            mode="lines",
            line={"width": 0},
            hoverinfo="skip",
            showlegend=False,
            name="band upper",
            legendgroup="band",
        ),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=view.band_low,
            mode="lines",
            line={"width": 0},
            fill="tonexty",
            fillcolor=BAND_FILL,
            hoverinfo="skip",
            name=f"{view.level:.0%} bootstrap band ({view.n_boot} resamples of problems)",
            legendgroup="band",
        ),
        row=1,
        col=1,
    )
    if view.has_negative:
        fig.add_trace(
            go.Scatter(
                x=x,
                y=np.minimum(view.w, 0.0),
                mode="lines",
                line={"width": 0},
                fill="tozeroy",
                fillcolor=NEGATIVE_FILL,
                hoverinfo="skip",
                name=f"w < 0: counts against its answer ({view.share_negative:.0%} of responses)",
            ),
            row=1,
            col=1,
        )
    if view.manual_offset and view.b_fitted is not None:
        fig.add_trace(
            go.Scatter(
                x=x,
                y=view.w_fitted,
                mode="lines",
                line={"color": MUTED, "width": 1.5, "dash": "dash"},
                name=f"fitted (b = {view.b_fitted:.2f})",
            ),
            row=1,
            col=1,
        )
    if view.overlay is not None:
        fig.add_trace(
            go.Scatter(
                x=x,
                y=view.overlay,
                mode="lines",
                line={"color": OVERLAY, "width": 2.2, "dash": "dash"},
                name=plotly_plain(view.overlay_label),
                hovertemplate="s = %{x:.3f}<br>w = %{y:.3f}<extra>"
                + plotly_plain(view.overlay_label)
                + "</extra>",
            ),
            row=1,
            col=1,
        )
    name = "w(s)"
    if view.calibration != "labels":
        name += " (label-free fit)" if view.calibration == "none" else " (semi-supervised fit)"
    elif view.overlay is not None:
        name += " (labelled fit)"
    if view.b is not None:
        name += f", b = {view.b:.2f}" + (" (chosen by hand)" if view.manual_offset else " (fitted)")
    fig.add_trace(
        go.Scatter(
            x=x,
            y=view.w,
            mode="lines",
            line={"color": CURVE, "width": 2.6},
            name=name,
            hovertemplate="s = %{x:.3f}<br>w = %{y:.3f}<extra></extra>",
        ),
        row=1,
        col=1,
    )
    fig.add_hline(y=0.0, line={"color": "black", "width": 1.2}, row=1, col=1)
    if view.b is not None:
        bx = float(_x_axis(view, np.array([view.b]), axis)[0]) if 0 < view.b < 1 else None
        if bx is not None:
            ci = ""
            if view.b_low is not None and view.b_high is not None:
                ci = f", fitted b {view.level:.0%} interval [{view.b_low:.2f}, {view.b_high:.2f}]"
            fig.add_vline(
                x=bx,
                line={"color": CURVE, "width": 1, "dash": "dot"},
                annotation_text=f"b = {view.b:.2f}{ci}",
                annotation_position="top left",
                annotation_font_size=11,
                row=1,
                col=1,
            )
    # where the scores lie
    if axis == "logit":
        edges, hc, hi_ = view.hist_edges_logit, view.hist_correct_logit, view.hist_incorrect_logit
    else:
        edges, hc, hi_ = view.hist_edges, view.hist_correct, view.hist_incorrect
    heights_per = np.diff(edges)  # densities per unit of the histogram's own axis
    if axis == "raw":  # bars placed on the raw axis, heights still per unit of t
        edges = _x_axis(view, edges, "raw")
    centers = (edges[:-1] + edges[1:]) / 2.0
    widths = np.abs(np.diff(edges))
    n1, n0 = max(float(hc.sum()), 1.0), max(float(hi_.sum()), 1.0)
    for counts, n, color, what in (
        (hc, n1, CORRECT, "correct"),
        (hi_, n0, INCORRECT, "incorrect"),
    ):
        fig.add_trace(
            go.Bar(
                x=centers,
                y=counts / (n * heights_per),
                width=widths,
                marker={"color": _rgba(color, 0.35), "line": {"width": 0}},
                name=f"{what} responses: histogram ({int(counts.sum())})",
                customdata=counts,
                hovertemplate="%{customdata:.0f} " + what + " responses<extra></extra>",
                legendgroup=what,
            ),
            row=2,
            col=1,
        )
    if view.f1 is not None and view.f0 is not None:
        jac = view.grid * (1.0 - view.grid) if axis == "logit" else 1.0
        for dens, color, what in ((view.f1, CORRECT, "correct"), (view.f0, INCORRECT, "incorrect")):
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=dens * jac,
                    mode="lines",
                    line={"color": color, "width": 2.2},
                    name=f"{what} responses: density (KDE)",
                    legendgroup=what,
                    hovertemplate="density %{y:.2f}<extra></extra>",
                ),
                row=2,
                col=1,
            )
    # the negative region of w, carried down to where the scores lie (added after the
    # panel's traces: plotly skips shapes on subplots that are still empty)
    for lo, hi in view.negative:
        x0, x1 = (float(v) for v in _x_axis(view, np.array([lo, hi]), axis))
        fig.add_vrect(
            x0=min(x0, x1),
            x1=max(x0, x1),
            fillcolor=NEGATIVE_FILL,
            opacity=0.35,
            line_width=0,
            layer="below",
            row=2,
            col=1,
        )
    fig.update_layout(barmode="overlay", bargap=0)
    tname = plotly_plain(view.transform.split(":", 1)[0])
    lower = view.orientation == "lower"
    if axis == "logit":
        xtitle = "logit of the verifier score, log(s / (1 - s))"
    elif axis == "raw":
        xtitle = f"raw {plotly_plain(view.verifier)} score as imported" + (
            " (lower is better: weights fall to the right)" if lower else ""
        )
    else:
        xtitle = "verifier score s" + (
            f" (after the {tname} transform, in [0, 1])" if tname != "identity" else ""
        )
    if lower and axis != "raw":
        # on a second line: one line ran past both edges of a laptop-width chart
        xtitle += "<br>lower raw scores are better, so s = 1 - transformed score"
    fig.update_xaxes(title_text=xtitle, automargin=True, row=2, col=1)
    extra_lines = xtitle.count("<br>")
    if axis == "raw":
        lo_r, hi_r = float(np.min(view.raw_grid)), float(np.max(view.raw_grid))
        if lo_r > 0 and hi_r / lo_r > 100:
            fig.update_xaxes(type="log")
    unit = "score units" if view.kind == "linear_wv" else "log-odds"
    fig.update_yaxes(title_text=f"w(s)  [{unit}]", zeroline=False, row=1, col=1)
    fig.update_yaxes(title_text="density", rangemode="tozero", row=2, col=1)
    if axis == "score":
        fig.update_xaxes(range=[0.0, 1.0])
    ds = plotly_plain(dataset_label(view.dataset, view.simulated))
    fig.update_layout(
        title=_panel_title(
            f"{plotly_plain(view.label)} weights · {_pair(view.llm, view.verifier)}",
            f"{ds} · fitted on all {view.n_problems} problems ({view.n_responses:,} responses, "
            f"{view.n_correct / max(view.n_responses, 1):.0%} correct) · step reduction: "
            f"{plotly_plain(view.reduction)}",
        ),
        # below the axis title: lower on a two-line title (it ran into the legend's
        # first row at 1000 px)
        legend={
            "orientation": "h",
            "x": 0.0,
            "y": -0.12 - 0.05 * extra_lines,
            "font": {"size": 12},
        },
    )
    _base_layout(fig, 800)
    fig.update_layout(
        margin={
            "b": 150 + 30 * extra_lines,
            "t": _top_margin(fig.layout.title.to_plotly_json(), 40),
        }
    )
    return fig


def _grid_axes(rows: int, cols: int, hgap: float, vgap: float) -> dict[str, object]:
    """Layout axes of a rows x cols grid with shared x (per column) and y (all panels):
    what make_subplots builds, written out directly because make_subplots and plotly's
    per-panel helpers take most of a second for 35 panels."""
    w = (1.0 - (cols - 1) * hgap) / cols
    h = (1.0 - (rows - 1) * vgap) / rows
    axes: dict[str, object] = {}
    for r in range(rows):
        for c in range(cols):
            k = r * cols + c + 1
            sx, sy = ("", "") if k == 1 else (str(k), str(k))
            x0 = c * (w + hgap)
            y1 = 1.0 - r * (h + vgap)
            axes[f"xaxis{sx}"] = {
                "domain": [x0, x0 + w],
                "anchor": f"y{sy}",
                "matches": "x",
                "showticklabels": r == rows - 1,
                "fixedrange": True,
                "showgrid": False,
                "range": [0, 1],
                "tickvals": [0.2, 0.5, 0.8],
                "ticktext": [".2", ".5", ".8"],
            }
            yaxis: dict[str, object] = {
                "domain": [y1 - h, y1],
                "anchor": f"x{sx}",
                "showticklabels": c == 0,
                "fixedrange": True,
                "showgrid": False,
                "zeroline": True,
                "zerolinecolor": "black",
                "zerolinewidth": 1,
            }
            if k > 1:
                yaxis["matches"] = "y"
            axes[f"yaxis{sy}"] = yaxis
    return axes


def offset_figure(view: WeightView) -> go.Figure:
    """The offset search of an offset strategy: calibration accuracy against b (every
    candidate, with a pointwise bootstrap band over problems), the fitted b (dashed) and
    the b shown (solid, when set by hand). Small, to sit beside the b slider."""
    if view.offset_candidates.size == 0:
        raise ValueError(f"{view.label} has no offset search to draw")
    x = view.offset_candidates
    fig = _figure()
    fig.add_trace(
        _band(
            x,
            100 * view.offset_low,
            100 * view.offset_high,
            _rgba(CURVE, 0.15),
            f"{view.level:.0%} band",
            "acc",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=100 * view.offset_accuracy,
            mode="lines",
            line={"color": CURVE, "width": 2},
            name="calibration accuracy",
            hovertemplate="b = %{x:.2f}<br>accuracy %{y:.1f}%<extra></extra>",
        )
    )
    marks = [(view.b_fitted, "fitted b", "dash")]
    if view.manual_offset:
        marks.append((view.b, "b shown", "solid"))
    for b, name, dash in marks:
        if b is None or not math.isfinite(b):
            continue
        fig.add_vline(x=b, line={"color": "#b2182b", "width": 1.5, "dash": dash})
        fig.add_annotation(
            x=b,
            y=1.0,
            yref="paper",
            text=name,
            showarrow=False,
            yanchor="bottom",
            font={"size": 10, "color": "#b2182b"},
        )
    budgets = view.offset_budgets
    at = f"N = {budgets[0]}" if len(budgets) == 1 else f"mean over N = {budgets[0]}–{budgets[-1]}"
    fig.update_layout(
        font=FONT,
        height=240,
        margin={"l": 50, "r": 10, "t": 30, "b": 50},
        showlegend=False,
        title={"text": f"calibration accuracy vs. b ({at})", "font": {"size": 12}, "x": 0.0},
    )
    fig.update_xaxes(title_text="offset b", title_standoff=8, automargin=True)
    fig.update_yaxes(title_text="%", ticksuffix="")
    return fig


def weight_grid_figure(view: WeightGridView) -> go.Figure:
    """Small multiples: one panel per (LLM, verifier) pair, rows LLMs, columns verifiers,
    shared axes; negative regions shaded.

    Built in one go from plain dicts (every 4th grid point, zero lines as axis zero lines,
    no zooming): through make_subplots and per-panel helpers, 35 panels took over a
    second to build and plotly.js twice as long to draw.
    """
    rows, cols = len(view.llms), len(view.verifiers)
    hgap, vgap = 0.012, 0.035
    finite = np.concatenate([p.w[np.isfinite(p.w)] for p in view.panels] or [np.zeros(1)])
    if finite.size == 0:
        finite = np.zeros(1)
    lo = min(float(np.percentile(finite, 0.5)), -0.5)
    hi = max(float(np.percentile(finite, 99.5)), 0.5)
    pad = 0.08 * (hi - lo)
    step = 4
    x = view.grid[::step]
    traces: list[dict[str, object]] = []
    notes: list[dict[str, object]] = []
    first_neg = True
    wcol = (1.0 - (cols - 1) * hgap) / cols
    hrow = (1.0 - (rows - 1) * vgap) / rows
    for c, v in enumerate(view.verifiers):
        title = plotly_plain(v)
        if len(v) > 16:
            title = title.replace("-", "-<br>", 1)
        notes.append(
            {
                "text": title,
                "showarrow": False,
                "xref": "paper",
                "yref": "paper",
                "x": c * (wcol + hgap) + wcol / 2,
                "y": 1.0,
                "xanchor": "center",
                "yanchor": "bottom",
                "font": {"size": 11},
            }
        )
    for r, m in enumerate(view.llms):
        notes.append(
            {
                "text": plotly_plain(m),
                "showarrow": False,
                "xref": "paper",
                "yref": "paper",
                "x": 1.0,
                "xshift": 6,
                "y": 1.0 - r * (hrow + vgap) - hrow / 2,
                "xanchor": "left",
                "yanchor": "middle",
                "textangle": 90,
                "font": {"size": 11},
            }
        )
    for p in view.panels:
        r = view.llms.index(p.llm)
        c = view.verifiers.index(p.verifier)
        k = r * cols + c + 1
        xa, ya = ("x", "y") if k == 1 else (f"x{k}", f"y{k}")
        where = {"xref": f"{xa} domain", "yref": f"{ya} domain"}
        if p.error is not None:
            notes.append(
                {
                    "text": "cannot fit",
                    "hovertext": plotly_plain(p.error),
                    "showarrow": False,
                    "x": 0.5,
                    "y": 0.5,
                    "font": {"color": MUTED},
                    **where,
                }
            )
            continue
        w = p.w[::step]
        if np.any(p.w < 0):
            traces.append(
                {
                    "type": "scatter",
                    "x": x,
                    "y": np.minimum(w, 0.0),
                    "xaxis": xa,
                    "yaxis": ya,
                    "mode": "lines",
                    "line": {"width": 0},
                    "fill": "tozeroy",
                    "fillcolor": NEGATIVE_FILL,
                    "hoverinfo": "skip",
                    "name": "w < 0 (counts against its answer)",
                    "legendgroup": "neg",
                    "showlegend": first_neg,
                }
            )
            first_neg = False
        traces.append(
            {
                "type": "scatter",
                "x": x,
                "y": np.clip(w, lo - pad, hi + pad),
                "xaxis": xa,
                "yaxis": ya,
                "mode": "lines",
                "line": {"color": CURVE, "width": 1.8},
                "name": "w(s)",
                "legendgroup": "w",
                "showlegend": k == 1,
                "hovertemplate": (
                    f"{_pair(p.llm, p.verifier)}<br>s = %{{x:.3f}}<br>w = %{{y:.2f}}<extra></extra>"
                ),
            }
        )
        notes.append(
            {
                "text": f"{p.share_negative:.0%} w<0",
                "showarrow": False,
                "x": 0.03,
                "y": 0.97,
                "xanchor": "left",
                "yanchor": "top",
                "font": {"size": 10, "color": NEGATIVE_LINE},
                **where,
            }
        )
    axes = _grid_axes(rows, cols, hgap, vgap)
    first_y = axes["yaxis"]
    assert isinstance(first_y, dict)
    first_y["range"] = [lo - pad, hi + pad]
    ds = plotly_plain(dataset_label(view.dataset, view.simulated))
    layout: dict[str, object] = {
        **axes,
        "annotations": notes,
        "title": _panel_title(
            f"{plotly_plain(view.label)} weights of every pair (rows: LLMs, columns: verifiers)",
            f"{ds} · x: verifier score s in [0, 1], y: w(s), shared axes · each pair fitted on "
            f"all its problems · step reduction: {plotly_plain(view.reduction)}<br>red: share "
            "of the pair's "
            "responses whose weight is negative",
        ),
        "legend": {"orientation": "h", "x": 0.0, "y": -0.06 - 0.1 / rows},
        "font": FONT,
        "height": 170 + 150 * rows,
        "margin": {"l": 50, "r": 60, "b": 70},
        "hoverlabel": {"font_size": 12},
    }
    # the title, then the column headers (verifier names, up to three lines)
    head = layout["title"]
    assert isinstance(head, dict)
    layout["margin"] = {"l": 50, "r": 60, "b": 70, "t": _top_margin(head, 100)}
    return _figure({"data": traces, "layout": layout})


# --------------------------------------------------------------------------------------
# budget curves
# --------------------------------------------------------------------------------------


def _axis_ref(i: int, kind: str) -> str:
    return f"{kind} domain" if i == 1 else f"{kind}{i} domain"


def _efficiency_box(eff: Efficiency, tokens: bool) -> str:
    """The efficiency sentence for a chart's note box: its interval on a second line, and
    the token counts on a third when the axis is tokens."""
    text, _, tok = efficiency_sentence(eff).partition("; in tokens, ")
    head, sep, ci = text.partition(" (")
    reach, comma, share = head.partition(", ")  # "... with 12 samples" / "19% of its budget"
    if comma:
        out = (
            plotly_plain(reach)
            + ",<br>"
            + plotly_plain(share)
            + (" (" + plotly_plain(ci) if sep else "")
        )
    else:
        out = plotly_plain(head) + ("<br>(" + plotly_plain(ci) if sep else "")
    if tokens and tok:
        out += "<br>in tokens: " + plotly_plain(tok)
    return out


def budget_figure(
    view: BudgetView,
    x_axis: str = "samples",
    params: Mapping[str, float] | None = None,
    mode: str = "accuracy",
    highlight: Sequence[str] = (),
) -> go.Figure:
    """Accuracy against N on a log2 axis (or against the expected generated tokens per
    problem, `x_axis="tokens"`, or FLOPs = 2 x parameters x tokens with `params` per LLM,
    `x_axis="flops"`; pairs without token counts or parameters stay in samples), one panel
    per pair, with bootstrap bands; oracle curves dashed; majority over all samples (the
    Best-of-infinity asymptote) dotted; the efficiency ratio written on each panel.
    `mode="gain"` (a view with a baseline): each strategy's gain over the baseline in
    points against N, with its paired bootstrap band, and a zero line. `highlight`: with
    more than three strategies drawn, only these get bands (e.g. the two of the efficiency
    ratio; every curve's interval stays in its hover): many overlapping bands are a grey
    mass on real data."""
    if x_axis not in ("samples", "tokens", "flops"):
        raise ValueError(f"x_axis must be samples, tokens or flops, got {x_axis!r}")
    if mode not in ("accuracy", "gain"):
        raise ValueError(f"mode must be accuracy or gain, got {mode!r}")
    gain_mode = mode == "gain"
    if gain_mode and view.baseline is None:
        raise ValueError("the gain mode needs a view computed with a baseline")
    n = len(view.pairs)
    cols = min(n, 2)  # two panels a row stay legible on a laptop screen
    rows = math.ceil(n / cols)
    panel_h = 360
    # each panel's title: the pair, and under it the efficiency sentence (inside the
    # plot it covered the curves and was cut off by the next panel)
    titles = []
    for k, (m, v) in enumerate(view.pairs):
        eff = next((e for e in view.efficiencies if (e.llm, e.verifier) == (m, v)), None)
        note = ""
        if eff is not None:
            has_tok = k < len(view.tokens) and view.tokens[k] is not None
            box = _efficiency_box(eff, x_axis == "tokens" and has_tok)
            note = "<br><span style='font-size:11px'>" + _wrap_sub(box, 60) + "</span>"
        titles.append(f"<b>{_pair(m, v)}</b>{note}")
    title_h = max(t.count("<br>") + 1 for t in titles) * 15 + 12
    gap = title_h + 70  # the panel title plus the x axis title of the row above
    fig = _subplots(
        rows=rows,
        cols=cols,
        subplot_titles=titles,
        horizontal_spacing=0.1,
        vertical_spacing=min(0.4, gap / (rows * panel_h + (rows - 1) * gap)) if rows > 1 else 0,
    )
    seen: set[str] = set()
    budgets = list(view.budgets)
    # bands stay readable when many overlap: their total shade is bounded
    drawn = {cur.strategy for cur in view.curves}
    if gain_mode and view.baseline is not None:
        drawn.discard(view.baseline)
    banded = drawn & set(highlight) if len(drawn) > 3 and set(highlight) & drawn else drawn
    n_strat = max(1, len(banded))
    band_alpha = min(0.10, 0.30 / n_strat)
    for i, (m, v) in enumerate(view.pairs):
        r, c = i // cols + 1, i % cols + 1
        tok = view.tokens[i] if i < len(view.tokens) else None
        if x_axis == "flops" and tok is not None:
            tok = 2.0 * params[m] * tok if params is not None and m in params else None
        use_tokens = x_axis != "samples" and tok is not None
        unit = "FLOPs" if x_axis == "flops" else "tokens"

        own = view.curves_of(m, v)
        pair_budgets = own[0].budgets if own else np.asarray(budgets)

        def to_x(
            n: np.ndarray, tok: Any = tok, use_tokens: bool = use_tokens, at: Any = pair_budgets
        ) -> np.ndarray:
            """Budgets as positions on this panel's axis (tokens: interpolated in log2 N
            over the pair's own budgets)."""
            if not use_tokens:
                return np.asarray(n, dtype=float)
            return np.asarray(
                np.interp(np.log2(n), np.log2(np.asarray(at, dtype=float)), tok), dtype=float
            )

        if gain_mode:
            ends = to_x(np.asarray([pair_budgets[0], pair_budgets[-1]], dtype=float))
            fig.add_trace(
                go.Scatter(
                    x=ends,
                    y=[0.0, 0.0],
                    mode="lines",
                    line={"color": "#333", "width": 1},
                    showlegend=False,
                    hoverinfo="skip",
                    name="zero",
                ),
                row=r,
                col=c,
            )
        for cur in view.curves_of(m, v):
            s = cur.strategy
            if gain_mode and (s == view.baseline or cur.gain is None):
                continue  # the baseline's own gain is zero by construction
            color = strategy_color(s)
            x = to_x(cur.budgets.astype(float))
            group = plotly_plain(s)
            cur_label = plotly_plain(cur.label)
            if gain_mode:
                assert cur.gain is not None and cur.gain_low is not None
                assert cur.gain_high is not None
                y_mid, y_lo, y_hi = 100 * cur.gain, 100 * cur.gain_low, 100 * cur.gain_high
            else:
                y_mid, y_lo, y_hi = cur.accuracy, cur.low, cur.high
            if s in banded:
                fig.add_trace(
                    _band(x, y_lo, y_hi, _rgba(color, band_alpha), f"{cur_label} band", group),
                    row=r,
                    col=c,
                )
            label = cur_label + (
                " [oracle]" if cur.oracle and "oracle" not in cur.label.lower() else ""
            )
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=y_mid,
                    mode="lines+markers",
                    line={"color": color, "width": 2.2, "dash": "dash" if cur.oracle else "solid"},
                    marker={"size": 6},
                    name=label,
                    legendgroup=group,
                    showlegend=s not in seen,
                    # band, then what a click needs (drill-down): pair, strategy and N
                    customdata=np.column_stack(
                        [
                            y_lo,
                            y_hi,
                            np.full(len(x), i),
                            np.full(len(x), view.strategies.index(s)),
                            cur.budgets,
                        ]
                    ),
                    text=[f"N = {int(b)}" for b in cur.budgets],
                    hovertemplate=(
                        f"{cur_label}<br>%{{text}}"
                        + (f" · %{{x:,.3s}} {unit}" if use_tokens else "")
                        + (
                            "<br>gain %{y:+.1f} points "
                            "[%{customdata[0]:+.1f}, %{customdata[1]:+.1f}]<extra></extra>"
                            if gain_mode
                            else "<br>accuracy %{y:.1%} "
                            "[%{customdata[0]:.1%}, %{customdata[1]:.1%}]<extra></extra>"
                        )
                    ),
                ),
                row=r,
                col=c,
            )
            seen.add(s)
        if not gain_mode and i < len(view.asymptote) and math.isfinite(view.asymptote[i]):
            ends = to_x(np.asarray([pair_budgets[0], pair_budgets[-1]], dtype=float))
            fig.add_trace(
                go.Scatter(
                    x=ends,
                    y=[view.asymptote[i]] * 2,
                    mode="lines",
                    line={"color": "#777", "width": 1.2, "dash": "dot"},
                    name="majority over all samples (Best-of-∞ asymptote)",
                    legendgroup="asymptote",
                    showlegend="asymptote" not in seen,
                    hovertemplate="majority over all samples: %{y:.1%}<extra></extra>",
                ),
                row=r,
                col=c,
            )
            seen.add("asymptote")
        eff = next((e for e in view.efficiencies if (e.llm, e.verifier) == (m, v)), None)
        if eff is not None and not gain_mode:
            res = eff.result
            if res.reached and res.budget is not None:
                fig.add_trace(
                    go.Scatter(
                        x=to_x(np.asarray([res.budget, float(eff.ref_budget)])),
                        y=[res.target, res.target],
                        mode="lines+markers",
                        line={"color": "black", "width": 1.2, "dash": "dot"},
                        marker={"size": 7, "symbol": "diamond"},
                        name="efficiency: same accuracy, fewer samples",
                        legendgroup="eff",
                        showlegend="eff" not in seen,
                        hoverinfo="skip",
                    ),
                    row=r,
                    col=c,
                )
                seen.add("eff")
    if x_axis != "samples" and any(t is not None for t in view.tokens):
        what = "FLOPs (2 x parameters x tokens)" if x_axis == "flops" else "generated tokens"
        fig.update_xaxes(type="log", showgrid=True)
        x_title = f"expected {what} per problem (log)"
    else:
        fig.update_xaxes(
            type="log", tickvals=budgets, ticktext=_budget_ticktext(budgets), showgrid=True
        )
        x_title = "samples per problem N (log2 scale)"
    y_title = "accuracy"
    if gain_mode:
        base_label = plotly_plain(get_strategy(str(view.baseline)).label)
        fig.update_yaxes(tickformat="+.0f", showgrid=True)
        y_title = f"gain over {base_label} (points)"
    else:
        fig.update_yaxes(tickformat=".0%", showgrid=True)
    # axis titles once: x under the lowest panel of each column, y left of each row
    for i in range(n):
        r, c = i // cols + 1, i % cols + 1
        if i + cols >= n:
            fig.update_xaxes(title_text=x_title, row=r, col=c)
        if c == 1:
            fig.update_yaxes(title_text=y_title, row=r, col=c)
    ds = plotly_plain(dataset_label(view.dataset, view.simulated))
    fig.update_layout(
        title=_panel_title(
            (
                f"Gain over {plotly_plain(get_strategy(str(view.baseline)).label)} vs. samples "
                "per problem (paired bands)"
                if gain_mode
                else "Accuracy vs. samples per problem"
            ),
            f"{ds} · {_calibration_caption(view.k, view.calibration)}, {view.n_subsets} "
            "random subsets per "
            f"budget, {view.level:.0%} bootstrap bands over {view.n_problems} problems"
            + (
                f" drawn for {' and '.join(plotly_plain(short_name(x)) for x in sorted(banded))}"
                " (hover any curve for its interval)"
                if banded != drawn
                else ""
            )
            + "<br>"
            + (
                "dashed: oracles (test labels or the simulator's parameters); only pass@N "
                "and the Bayes-optimal vote are ceilings"
                if view.simulated
                else "dashed: oracles (they use the test labels); pass@N is a ceiling"
            ),
        ),
        legend={"orientation": "h", "x": 0.0, "y": 0.0, "yref": "container", "yanchor": "bottom"},
    )
    top = 30 + 18 * _title_lines(fig.layout.title.to_plotly_json()) + title_h
    legend_h = 150
    _base_layout(fig, top + rows * panel_h + (rows - 1) * gap + 60 + legend_h)
    fig.update_layout(margin={"b": 60 + legend_h, "t": top})
    return fig


PAIR_DASHES = ("solid", "dash", "dot", "dashdot")
PAIR_SYMBOLS = ("circle", "square", "diamond", "triangle-up")


def overlay_figure(view: OverlayView) -> go.Figure:
    """Pairs of any datasets on one chart: accuracy against N (log2 axis) with bootstrap
    bands; a strategy keeps its colour (as on every page), a pair has its own line style
    and marker, and the legend names both."""
    fig = _figure()
    n_strat = max(1, len(view.strategies))
    alpha = min(0.10, 0.30 / (n_strat * max(1, len(view.refs))) ** 0.5)
    budgets: set[int] = set()
    for c in view.curves:
        k = view.refs.index(c.ref)
        color = strategy_color(c.strategy)
        x = c.budgets.astype(float)
        budgets.update(int(b) for b in c.budgets)
        pair = plotly_plain(c.pair_label)
        name = f"{pair} · {plotly_plain(c.label)}"
        group = f"{k}:{plotly_plain(c.strategy)}"
        fig.add_trace(_band(x, c.low, c.high, _rgba(color, alpha), f"{name} band", group))
        fig.add_trace(
            go.Scatter(
                x=x,
                y=c.accuracy,
                mode="lines+markers",
                line={"color": color, "width": 2.2, "dash": PAIR_DASHES[k % len(PAIR_DASHES)]},
                marker={"size": 7, "symbol": PAIR_SYMBOLS[k % len(PAIR_SYMBOLS)]},
                name=name,
                legendgroup=group,
                customdata=np.stack([c.low, c.high], axis=1),
                text=[f"N = {int(b)}" for b in c.budgets],
                hovertemplate=(
                    f"{name}<br>%{{text}}<br>accuracy %{{y:.1%}} "
                    "[%{customdata[0]:.1%}, %{customdata[1]:.1%}]<extra></extra>"
                ),
            )
        )
    ticks = sorted(budgets)
    fig.update_xaxes(
        type="log",
        tickvals=ticks,
        ticktext=_budget_ticktext(ticks),
        title_text="samples per problem N (log2 scale)",
        showgrid=True,
    )
    fig.update_yaxes(tickformat=".0%", title_text="accuracy", showgrid=True)
    n_probs = sorted({c.n_problems for c in view.curves})
    probs = " / ".join(str(n) for n in n_probs)
    shared = f"{plotly_plain(view.common)} · " if view.common else ""
    fig.update_layout(
        title=_title(
            "Accuracy vs. samples per problem, pairs on one chart",
            f"{shared}line style: pair · colour: strategy · {view.k}-fold cross-fitted "
            f"weights, {view.n_subsets} random subsets per budget, {view.level:.0%} bootstrap "
            f"bands over problems ({probs} problems)"
            + (" · includes simulated data" if view.simulated else ""),
        ),
        legend={"orientation": "h", "x": 0.0, "y": 0.0, "yref": "container", "yanchor": "bottom"},
    )
    legend_h = 26 * min(8, len(view.curves)) + 20
    _base_layout(fig, 520 + legend_h)
    fig.update_layout(margin={"t": 40, "b": 60 + legend_h})
    return fig


# --------------------------------------------------------------------------------------
# compare
# --------------------------------------------------------------------------------------


def _wrap(label: str, width: int = 12) -> str:
    """Break a (plain text, user) label into lines of about `width` characters (for
    narrow columns), each escaped for Plotly."""
    words = label.replace(" (", " \x00(").split(" ")
    lines: list[str] = []
    cur = ""
    for w in words:
        w = w.replace("\x00", "")
        if cur and len(cur) + 1 + len(w) > width:
            lines.append(cur)
            cur = w
        else:
            cur = f"{cur} {w}".strip()
    if cur:
        lines.append(cur)
    return "<br>".join(plotly_plain(line) for line in lines)


def dataset_overview_figure(summary: pd.DataFrame, title: str) -> go.Figure:
    """Heatmap of one dataset's pairs (`Store.pair_summary`): how well each verifier
    separates correct from incorrect responses of each LLM (difference of the class means
    in score standard deviations; negative: lower scores go with correct answers), each
    LLM labelled with its share of correct responses (near 0 % or 100 % leaves little to
    aggregate). `title` is plain text (it names the dataset)."""
    llms = list(dict.fromkeys(summary["llm"]))
    vers = list(dict.fromkeys(summary["verifier"]))
    z = np.full((len(llms), len(vers)), np.nan)
    for row in summary.itertuples(index=False):
        z[llms.index(str(row.llm)), vers.index(str(row.verifier))] = float(row.separation)
    share = summary.groupby("llm", sort=False)["accuracy"].first()
    llm_lab = [f"{plotly_plain(m)} ({100 * float(share[m]):.0f}% correct)" for m in llms]
    text = [["–" if np.isnan(v) else f"{v:+.2f}" for v in r] for r in z]
    lim = float(np.nanmax(np.abs(z))) if np.isfinite(z).any() else 1.0
    # many verifiers of few LLMs (RewardMATH: 1 x 10): verifiers as rows, so their names
    # and the cells stay legible on a laptop screen instead of one strip of run-together
    # numbers
    flip = len(vers) > 6 and len(llms) < len(vers)
    if flip:
        z, text = z.T, [list(r) for r in zip(*text, strict=True)]
        x, y = [_wrap(m, 18) for m in llm_lab], [plotly_plain(v) for v in vers]
        hover = "%{x}<br>%{y}: separation %{z:.2f} sd<extra></extra>"
    else:
        x, y = [_wrap(v, 14) for v in vers], llm_lab
        hover = "%{y}<br>%{x}: separation %{z:.2f} sd<extra></extra>"
    fig = _figure(
        go.Heatmap(
            z=z,
            x=x,
            y=y,
            text=text,
            texttemplate="%{text}",
            colorscale="PuOr",
            zmid=0.0,
            zmin=-lim,
            zmax=lim,
            colorbar={"title": {"text": "separation<br>(sd)"}, "thickness": 14},
            hovertemplate=hover,
        )
    )
    fig.update_yaxes(autorange="reversed")
    # the title at the top of the figure with a margin made for it (anchored on the plot
    # area, its subtitle ran into a one-row strip of cells)
    fig.update_layout(
        title=_panel_title(
            plotly_plain(title),
            "separation: mean score of correct minus incorrect responses, in sds "
            "(negative: lower is better)",
        )
    )
    # at least ~150 px of cells: a one-row strip left no room for the colour bar's title
    # and ticks
    top = _top_margin(fig.layout.title.to_plotly_json(), 30)
    _base_layout(fig, top + 60 + max(150, 42 * len(y)))
    fig.update_layout(margin={"t": top})
    return fig


def compare_figure(view: CompareView, metric: str = "gain") -> go.Figure:
    """Heatmap of pairs x strategies at one budget: gain over the baseline in percentage
    points (diverging colours, 0 = white) or accuracy in %; every cell is annotated with
    the accuracy, the gain and its paired interval."""
    if metric not in ("gain", "accuracy"):
        raise ValueError(f"metric must be 'gain' or 'accuracy', got {metric!r}")
    z = 100.0 * (view.gain if metric == "gain" else view.accuracy)
    sig = view.significant()
    # beyond 6 strategies a cell shows accuracy and gain only (the interval is in the
    # hover and the table): three lines of ~80 px per column do not fit a laptop screen
    compact = len(view.strategies) > 6
    text, hover = [], []
    for i in range(len(view.pairs)):
        row, hrow = [], []
        for j, s in enumerate(view.strategies):
            acc = f"{100 * view.accuracy[i, j]:.1f}%"
            if math.isnan(view.accuracy[i, j]):
                full = short = "not fitted"
            elif s == view.baseline:
                full = short = f"{acc}<br>baseline"
            elif math.isnan(view.gain[i, j]):
                full = short = f"{acc}<br>no baseline"
            else:
                mark = "*" if sig[i, j] else ""
                short = f"{acc}<br><b>{100 * view.gain[i, j]:+.1f}{mark}</b>"
                full = (
                    f"{short}<br>[{100 * view.gain_low[i, j]:+.1f}, "
                    f"{100 * view.gain_high[i, j]:+.1f}]"
                )
            row.append(short if compact else full)
            hrow.append(full)
        text.append(row)
        hover.append(hrow)
    x = [
        lb + (" (oracle)" if o and "oracle" not in lb.lower() else "")
        for lb, o in zip(view.labels, view.oracle, strict=True)
    ]
    x = [plotly_plain(lb) if compact else _wrap(lb) for lb in x]
    if metric == "gain":
        # oracles would wash out the real strategies: they may saturate
        real = [j for j, o in enumerate(view.oracle) if not o] or list(range(z.shape[1]))
        zr = z[:, real]
        finite = np.abs(zr[np.isfinite(zr)])
        lim = max(float(finite.max()) if finite.size else 1.0, 1.0)
        scale = {"colorscale": "RdBu", "zmid": 0.0, "zmin": -lim, "zmax": lim}
        ctitle = "gain (points)"
    else:
        real = [j for j, o in enumerate(view.oracle) if not o] or list(range(z.shape[1]))
        zr = z[:, real][np.isfinite(z[:, real])]
        scale = {
            "colorscale": "Viridis",
            "zmin": float(zr.min()) if zr.size else 0.0,
            "zmax": float(zr.max()) if zr.size else 100.0,
        }
        ctitle = "accuracy (%)"
    # one LLM (or one verifier) in every pair: rows named by the other, the shared one in
    # the subtitle, so the labels leave room for the cells
    llms = {m for m, _ in view.pairs}
    verifiers = {v for _, v in view.pairs}
    if len(view.pairs) == 1:  # one row: its name in the subtitle, the width to the cells
        ys = [" "]
        shared = f"{_pair(*view.pairs[0])} · "
    elif len(llms) == 1:
        ys = [plotly_plain(v) for _, v in view.pairs]
        shared = f"LLM {plotly_plain(next(iter(llms)))} · "
    elif len(verifiers) == 1:
        ys = [plotly_plain(m) for m, _ in view.pairs]
        shared = f"verifier {plotly_plain(next(iter(verifiers)))} · "
    else:
        ys = [_pair(m, v) for m, v in view.pairs]
        shared = ""
    fig = _figure(
        go.Heatmap(
            z=z,
            x=x,
            y=ys,
            text=text,
            texttemplate="%{text}",
            textfont={"size": 10 if compact else 11},
            hoverinfo="skip",
            # many columns: no colour bar (every cell is written out; the subtitle says
            # what the colour means), the room goes to the cells
            showscale=not compact,
            colorbar={"title": {"text": ctitle}},
            xgap=2,
            ygap=2,
            **scale,
        )
    )
    # one invisible marker per cell carries the hover text and, for a click (drill-down
    # to the problems behind the cell), the cell's indices: Plotly reports no clicks on
    # heatmaps to Streamlit
    cells = [(i, j) for i in range(len(view.pairs)) for j in range(len(view.strategies))]
    fig.add_trace(
        go.Scatter(
            x=[x[j] for _, j in cells],
            y=[ys[i] for i, _ in cells],
            mode="markers",
            marker={"size": 30, "symbol": "square", "color": "rgba(0,0,0,0)"},
            customdata=[[i, j] for i, j in cells],  # indices into view.pairs, strategies
            text=[hover[i][j] for i, j in cells],
            hovertemplate="%{y}<br>%{x}<br>%{text}<br>(click: the problems behind this "
            "cell)<extra></extra>",
            showlegend=False,
            name="cells",
        )
    )
    fig.update_layout(hoverdistance=-1)
    fig.update_yaxes(autorange="reversed", automargin=True)
    # strategy names under the cells (a title above the plot cannot clear labels on top);
    # slanted when the columns are many
    fig.update_xaxes(side="bottom", tickangle=-35 if compact else 0, automargin=True)
    base = next(
        lb for s, lb in zip(view.strategies, view.labels, strict=True) if s == view.baseline
    )
    base = plotly_plain(base)
    what = "Gain over" if metric == "gain" else "Accuracy, with the gain over"
    ds = plotly_plain(dataset_label(view.dataset, view.simulated))
    fig.update_layout(
        title=_title(
            f"{what} {base} at N = {view.budget}",
            f"{ds} · {shared}"
            + (
                (
                    "colour: gain (blue) or loss (red) · "
                    if metric == "gain"
                    else "colour: accuracy · "
                )
                if compact
                else ""
            )
            + "cell: accuracy, gain in points"
            + (" (" if compact else " [")
            + f"paired {view.level:.0%} bootstrap interval over {view.n_problems} problems"
            + (" in the hover and the table)" if compact else "]")
            + f", * = interval excludes 0 · {view.k}-fold cross-fitted",
        ),
    )
    _base_layout(fig, 190 + 72 * len(view.pairs) + (110 if compact else 60))
    fig.update_layout(margin={"l": 40, "t": 60, "b": 20})
    return fig


# --------------------------------------------------------------------------------------
# problem explorer
# --------------------------------------------------------------------------------------


def _short(text: str, n: int = 22) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def problem_figure(view: ProblemView) -> go.Figure:
    """One row per answer cluster: the response scores (dots) and, per strategy, the
    cluster total the vote compares (bars; the picked cluster in colour, green when it is
    correct, orange when not)."""
    n_s = len(view.strategies)
    labels: list[str] = []
    for a, n, cc in zip(view.answers, view.count, view.cluster_correct, strict=True):
        shown = plotly_plain(_short(a)) if a.strip() else NO_ANSWER
        lab = f"{'✓' if cc >= 0.5 else '✗'} {shown} ×{int(n)}"
        while lab in labels:  # answers that look alike after shortening stay apart
            lab += "\u200b"
        labels.append(lab)
    fig = _subplots(
        rows=1,
        cols=1 + n_s,
        shared_yaxes=True,
        column_widths=[1.4] + [1.0] * n_s,
        horizontal_spacing=0.03,
        # short column headers on up to two lines: at 1000 px a panel is ~55 px wide
        subplot_titles=[
            "response<br>scores",
            *(_wrap(short_name(s), 8) for s in view.strategies),
        ],
    )
    fig.update_annotations(font_size=11)
    y_resp = [labels[int(c)] for c in view.response_cluster]
    for ok, color, what in ((True, CORRECT, "correct"), (False, INCORRECT, "incorrect")):
        sel = view.response_correct == ok
        if not sel.any():
            continue
        fig.add_trace(
            go.Scatter(
                x=view.response_score[sel],
                y=[y for y, s in zip(y_resp, sel, strict=True) if s],
                mode="markers",
                marker={"color": color, "size": 8, "opacity": 0.7, "line": {"width": 0}},
                name=f"{what} response",
                hovertemplate="score %{x:.3f}<extra></extra>",
            ),
            row=1,
            col=1,
        )
    # best-of-N on a lower-is-better signal (length) compares negated scores: its panel
    # shows the scores themselves, the lowest winning, rather than "-3701"
    lowest = [
        s == "best_of_n"
        and bool(np.allclose(view.response_weight[j], -view.response_score, equal_nan=True))
        and not bool(np.allclose(view.response_weight[j], view.response_score, equal_nan=True))
        for j, s in enumerate(view.strategies)
    ]
    shown_total = [
        -np.asarray(view.total[j], dtype=np.float64) if lowest[j] else view.total[j]
        for j in range(n_s)
    ]
    for j, s in enumerate(view.strategies):
        sname = plotly_plain(short_name(s))
        picked = view.picked[j]
        colors = [
            (CORRECT if view.cluster_correct[c] >= 0.5 else INCORRECT) if picked[c] else "#d0d4d9"
            for c in range(len(labels))
        ]
        fig.add_trace(
            go.Bar(
                x=shown_total[j],
                y=labels,
                orientation="h",
                marker={"color": colors},
                text=[_fmt_total(t) for t in shown_total[j]],
                textposition="auto",
                textfont={"size": 10},
                cliponaxis=False,  # a total beside a short bar is drawn past the axis end
                name=sname,
                showlegend=False,
                hovertemplate="%{y}<br>"
                + ("lowest score" if lowest[j] else "total")
                + " %{x:.3f}<extra>"
                + sname
                + "</extra>",
            ),
            row=1,
            col=2 + j,
        )
    # the panels' axes and zero lines are set in one layout update: Plotly's per-panel
    # helpers (`update_xaxes(row=, col=)`, `add_vline`) each walked the whole figure
    # (150 -> 95 ms for this figure, built on every "next problem")
    scores = np.asarray(view.response_score, dtype=np.float64)
    big = scores.size > 0 and float(np.nanmax(np.abs(scores))) >= 1000
    layout: dict[str, Any] = {
        "xaxis": {
            "title": {"text": "score", "font": {"size": 12}},
            "nticks": 3,
            "tickfont": {"size": 10},
            # "2k 4k 6k" stay level; "2000 4000" turned
            **({"tickformat": "~s"} if big else {}),
        }
    }
    shapes: list[dict[str, Any]] = []
    for j, s in enumerate(view.strategies):
        best_of = s == "best_of_n"
        # both sides of zero with room for the bar labels (a small winning total next to
        # large losing ones must stay visible)
        tot = np.asarray(shown_total[j], dtype=np.float64)
        lo, hi = min(0.0, float(np.nanmin(tot))), max(0.0, float(np.nanmax(tot)))
        pad = 0.35 * ((hi - lo) or 1.0)
        head = ("lowest<br>score" if lowest[j] else "top<br>score") if best_of else "total"
        layout[f"xaxis{2 + j}"] = {
            "title": {"text": head, "font": {"size": 12}},
            "range": [lo - (pad if lo < 0 else 0.0), hi + pad],
            # every bar carries its number: ticks on panels ~55 px wide only ran into
            # their neighbours' ("40k0 5 10")
            "showticklabels": False,
        }
        shapes.append(
            {
                "type": "line",
                "xref": f"x{2 + j}",
                "yref": f"y{2 + j} domain",
                "x0": 0.0,
                "x1": 0.0,
                "y0": 0,
                "y1": 1,
                "line": {"color": "black", "width": 0.8},
            }
        )
    categories = {
        "autorange": "reversed",
        "type": "category",
        "categoryorder": "array",
        "categoryarray": labels,
    }
    for c in range(1, 2 + n_s):
        layout["yaxis" if c == 1 else f"yaxis{c}"] = categories
    ds = plotly_plain(dataset_label(view.dataset, view.simulated))
    gold = view.gold if view.gold is not None else "unknown"
    title = _panel_title(
        f"Problem {plotly_plain(view.problem_id)} · gold answer "
        f"{plotly_plain(_short(gold, 40))} · {_pair(view.llm, view.verifier)}",
        f"{ds} · weights from cross-fitting fold {view.fold + 1} of {view.k}, fitted on "
        f"{view.n_calib} other problems (never on this one) · coloured bar = the "
        "strategy's pick (green correct, orange wrong)",
    )
    height = int(min(250 + 30 * len(labels), 1600))
    _base_layout(fig, height)
    top = _top_margin(title, 40)
    plot_h = height - top - 100
    fig.update_layout(
        title=title,
        bargap=0.25,
        shapes=shapes,
        margin={"l": 150, "b": 100, "t": top},
        legend={"orientation": "h", "x": 0.0, "y": -62 / plot_h, "yanchor": "top"},
        **layout,
    )
    return fig


def _fmt_total(t: float) -> str:
    """A bar's label in a panel about 55-80 px wide: at most about 5 characters
    ("30.3k" for a score of 30,268 tokens, "1.2M")."""
    a = abs(float(t))
    if a >= 999_500:
        return f"{t / 1e6:.1f}M"
    if a >= 10_000:
        return f"{t / 1e3:.1f}k" if a < 99_950 else f"{t / 1e3:.0f}k"
    if float(t).is_integer() or a >= 100:
        return f"{t:.0f}"
    return f"{t:.1f}" if a >= 10 else f"{t:.2f}"


# --------------------------------------------------------------------------------------
# calibration transfer
# --------------------------------------------------------------------------------------


def _points(x: float) -> str:
    return f"{100 * x:+.1f}"


def transfer_heatmap(view: TransferView) -> go.Figure:
    """Calibrated on (rows) x evaluated on (columns): the gain of the transferred strategy
    over the baseline in points, diverging colours centred at 0, the paired interval
    written in each cell (* when it excludes 0); a pair evaluated on itself is outlined."""
    z = 100.0 * view.gain
    sig = view.significant()
    # from four columns on, a cell is narrower than "[+10.6, +15.2]" on a laptop screen:
    # the interval's two ends go on two lines
    split = "<br>" if len(view.targets) >= 4 else " "
    text: list[list[str]] = []
    for i in range(len(view.sources)):
        row = []
        for j in range(len(view.targets)):
            if math.isnan(view.gain[i, j]):
                row.append("cannot fit")
                continue
            mark = "*" if sig[i, j] else ""
            row.append(
                f"<b>{_points(view.gain[i, j])}{mark}</b><br>"
                f"[{_points(view.low[i, j])},{split}{_points(view.high[i, j])}]"
            )
        text.append(row)
    finite = np.abs(z[np.isfinite(z)])
    lim = max(float(finite.max()) if finite.size else 1.0, 1.0)
    base = plotly_plain(short_name(view.baseline))
    x = [
        _wrap(lb, 18)
        + (
            f"<br><span style='color:#666'>{base} {100 * view.baseline_accuracy[j]:.1f}%</span>"
            if math.isfinite(view.baseline_accuracy[j])
            else ""
        )
        for j, lb in enumerate(view.target_labels)
    ]
    y = [_wrap(lb, 24) for lb in view.source_labels]
    custom = np.stack(
        [
            100 * view.accuracy,
            np.broadcast_to(100 * view.baseline_accuracy, view.accuracy.shape),
            np.broadcast_to(view.target_budget, view.accuracy.shape).astype(float),
        ],
        axis=-1,
    )
    strat = plotly_plain(short_name(view.strategy))
    fig = _figure(
        go.Heatmap(
            z=z,
            x=list(range(len(x))),
            y=list(range(len(y))),
            text=text,
            texttemplate="%{text}",
            textfont={"size": 12},
            customdata=custom,
            hovertemplate=(
                "calibrated on %{y}<br>evaluated on %{x}<br>N = %{customdata[2]:.0f}: "
                f"{strat} %{{customdata[0]:.1f}}%, {base} %{{customdata[1]:.1f}}%<br>"
                "gain %{text}<extra></extra>"
            ),
            colorscale="RdBu",
            zmid=0.0,
            zmin=-lim,
            zmax=lim,
            colorbar={"title": {"text": "gain<br>(points)"}, "thickness": 14},
            xgap=2,
            ygap=2,
        )
    )
    for i, s in enumerate(view.sources):
        for j, t in enumerate(view.targets):
            if s == t:
                fig.add_shape(
                    type="rect",
                    x0=j - 0.47,
                    x1=j + 0.47,
                    y0=i - 0.45,
                    y1=i + 0.45,
                    line={"color": "#222", "width": 1.6, "dash": "dot"},
                    fillcolor="rgba(0,0,0,0)",
                )
    fig.update_xaxes(
        title_text="evaluated on",
        tickvals=list(range(len(x))),
        ticktext=x,
        showgrid=False,
        zeroline=False,
    )
    fig.update_yaxes(
        title_text="calibrated on",
        tickvals=list(range(len(y))),
        ticktext=y,
        autorange="reversed",
        showgrid=False,
        zeroline=False,
    )
    common = []
    if view.source_common == view.target_common and view.source_common:
        common.append(plotly_plain(view.source_common))
    else:
        if view.source_common:
            common.append(f"calibrated on: {plotly_plain(view.source_common)}")
        if view.target_common:
            common.append(f"evaluated on: {plotly_plain(view.target_common)}")
    shown = " ".join([*common, *view.source_labels, *view.target_labels])
    sim = " · <b>simulated data</b>" if view.simulated and "simulated" not in shown else ""
    budgets = sorted({int(b) for b in view.target_budget})
    n_txt = f"N = {budgets[0]}" if len(budgets) == 1 else f"N = {view.budget} (clipped: {budgets})"
    fig.update_layout(
        title=_title(
            f"{plotly_plain(view.strategy_label)} calibrated on one pair, evaluated on "
            f"another: gain over {plotly_plain(view.baseline_label)} at {n_txt}",
            " · ".join(common)
            + sim
            + f"<br>cell: gain in points [paired {view.level:.0%} bootstrap interval over the "
            "evaluated problems], * = the interval excludes 0<br>dotted outline: a pair "
            f"evaluated on itself · pairs that share problems are cross-fitted in {view.k} "
            "folds (no problem is weighted by a fit that saw it)",
        ),
    )
    n_rows = len(view.sources)
    _base_layout(fig, max(420, 260 + 66 * n_rows))
    fig.update_layout(margin={"l": 40, "t": 40, "b": 40})
    return fig


# --------------------------------------------------------------------------------------
# allocation by predicted difficulty
# --------------------------------------------------------------------------------------


def _tint(hex_color: str, amount: float) -> str:
    """`hex_color` mixed with white (amount 0: the colour, 1: white)."""
    h = hex_color.lstrip("#")
    rgb = [int(h[i : i + 2], 16) for i in (0, 2, 4)]
    mixed = [round(c + (255 - c) * amount) for c in rgb]
    return "#" + "".join(f"{c:02x}" for c in mixed)


CHOICE = "#111111"


def _budget_ticktext(budgets: Sequence[int], min_gap: float = 0.5) -> list[str]:
    """Tick labels of budgets on a log2 axis: a budget closer than `min_gap` doublings to
    the last labelled one gets none (64 and 80 ran together as "6480"); the last budget
    (the full one) is always labelled, in place of a close predecessor."""
    logs = np.log2(np.asarray(budgets, dtype=float))
    keep = [False] * len(budgets)
    last = -math.inf
    for i, x in enumerate(logs):
        if x - last >= min_gap:
            keep[i], last = True, x
    if keep and not keep[-1]:
        j = max(i for i in range(len(keep) - 1) if keep[i])
        keep[j] = j == 0  # the first label stays (the axis needs a start)
        keep[-1] = True
    return [str(b) if k else "" for b, k in zip(budgets, keep, strict=True)]


def _log2_edges(budgets: tuple[int, ...]) -> list[float]:
    """Cell edges centred on each budget on a log axis (geometric midpoints)."""
    b = np.asarray(budgets, dtype=float)
    if b.size == 1:
        return [float(b[0]) / math.sqrt(2), float(b[0]) * math.sqrt(2)]
    mids = np.sqrt(b[:-1] * b[1:])
    first = b[0] ** 2 / mids[0]
    last = b[-1] ** 2 / mids[-1]
    return [float(first), *map(float, mids), float(last)]


def allocation_figure(view: AllocationView) -> go.Figure:
    """Top: accuracy against N (log2 axis) of choosing the strategy per difficulty bin,
    with its bootstrap band, and of every fixed strategy. Bottom, on the same N axis: the
    strategy chosen for each bin (and each fold of the two-fold cross-validation)."""
    fig = _subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        row_heights=[0.6, 0.4],
        vertical_spacing=0.1,
        subplot_titles=(
            "accuracy: per-bin choice (black) vs each fixed strategy",
            "strategy chosen per bin and fold (on the other fold)",
        ),
    )
    x = np.asarray(view.budgets, dtype=float)
    fig.add_trace(
        _band(
            x,
            view.curve_low,
            view.curve_high,
            "rgba(17, 17, 17, 0.13)",
            f"per-bin choice: {view.level:.0%} band",
            "choice",
        ),
        row=1,
        col=1,
    )
    labels = [plotly_plain(lb) for lb in view.labels]
    for s, name in enumerate(view.candidates):
        color = strategy_color(name)
        fig.add_trace(
            go.Scatter(
                x=x,
                y=view.fixed[s],
                mode="lines+markers",
                line={"color": color, "width": 1.8},
                marker={"size": 5},
                name=labels[s],
                legendgroup=plotly_plain(name),
                customdata=np.stack([view.fixed_low[s], view.fixed_high[s]], axis=1),
                hovertemplate=(
                    f"{labels[s]}<br>N = %{{x}}<br>accuracy %{{y:.1%}} "
                    "[%{customdata[0]:.1%}, %{customdata[1]:.1%}]<extra></extra>"
                ),
            ),
            row=1,
            col=1,
        )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=view.curve,
            mode="lines+markers",
            line={"color": CHOICE, "width": 3.2},
            marker={"size": 8, "symbol": "diamond"},
            name=f"per-bin choice ({view.n_bins} bins, two-fold CV)",
            legendgroup="choice",
            customdata=np.stack([view.curve_low, view.curve_high], axis=1),
            hovertemplate=(
                "per-bin choice<br>N = %{x}<br>accuracy %{y:.1%} "
                "[%{customdata[0]:.1%}, %{customdata[1]:.1%}]<extra></extra>"
            ),
        ),
        row=1,
        col=1,
    )
    last = len(view.budgets) - 1
    best = labels[int(view.best_fixed[last])]
    fig.add_annotation(
        text=(
            # two lines: one is wider than the panel on a laptop screen
            f"at N = {view.budgets[last]}: per-bin choice − best fixed ({best})<br>= "
            f"<b>{_points(view.gain[last])}</b> points "
            f"[{_points(view.gain_low[last])}, {_points(view.gain_high[last])}]"
        ),
        showarrow=False,
        xref="x domain",
        yref="y domain",
        x=0.01,
        y=0.99,
        xanchor="left",
        yanchor="top",
        **NOTE_BOX,
    )
    # which strategy each (bin, fold) chose: rows from bin 1 (top) down; a cell less than
    # half a doubling wide (64 next to 80) is named in its hover only
    edges = np.log2(_log2_edges(view.budgets))
    wide_cells = list(np.diff(edges) >= 0.5)
    n_c = len(view.candidates)
    zrows, trows, ylabels, custom = [], [], [], []
    for k in range(view.n_bins):
        for f in (0, 1):
            idx = [int(view.choice[f, b, k]) for b in range(len(view.budgets))]
            zrows.append(idx)
            # a cell is ~60 px on a laptop: the name's first word (the colour is the
            # strategy's own, as in the curves above; the hover has the full name)
            trows.append(
                [
                    plotly_plain(short_name(view.candidates[i]).split(" ")[0][:9]) if wide else ""
                    for i, wide in zip(idx, wide_cells, strict=True)
                ]
            )
            # short, so the cells keep the width for their names; the bin's mean scores
            # are in the hover and the per-bin table (with them the labels took a
            # quarter of a laptop-width chart and the names ran into each other)
            ylabels.append(f"bin {k + 1} · fold {f + 1}")
            custom.append(
                [
                    [
                        view.bin_label(k),
                        100 * float(view.bin_choice_accuracy[b, k]),
                        plotly_plain(view.labels[idx[b]]),
                    ]
                    for b in range(len(view.budgets))
                ]
            )
    scale: list[list[object]] = []
    for i, name in enumerate(view.candidates):
        c = _tint(strategy_color(name), 0.45)
        scale += [[i / n_c, c], [(i + 1) / n_c, c]]
    fig.add_trace(
        go.Heatmap(
            z=zrows,
            x=_log2_edges(view.budgets),
            y=ylabels,
            text=trows,
            texttemplate="%{text}",
            textfont={"size": 10, "color": "#111"},
            customdata=custom,
            hovertemplate=(
                "%{y}: %{customdata[0]}<br>chose %{customdata[2]}<br>per-bin choice in this bin "
                "%{customdata[1]:.1f}%<extra></extra>"
            ),
            colorscale=scale,
            zmin=-0.5,
            zmax=n_c - 0.5,
            showscale=False,
            xgap=2,
            ygap=1,
            name="chosen strategy",
        ),
        row=2,
        col=1,
    )
    for k in range(1, view.n_bins):
        fig.add_hline(y=2 * k - 0.5, line={"color": "white", "width": 5}, row=2, col=1)
    fig.update_yaxes(autorange="reversed", row=2, col=1, showgrid=False)
    budgets = list(view.budgets)
    fig.update_xaxes(type="log", tickvals=budgets, ticktext=_budget_ticktext(budgets))
    fig.update_xaxes(showgrid=True, row=1, col=1)
    fig.update_xaxes(title_text="samples per problem N (log2 scale)", showgrid=False, row=2, col=1)
    fig.update_xaxes(showticklabels=True, row=1, col=1)
    fig.update_yaxes(tickformat=".0%", title_text="accuracy", showgrid=True, row=1, col=1)
    ds = plotly_plain(dataset_label(view.dataset, view.simulated))
    fig.update_layout(
        title=_panel_title(
            f"Choosing the strategy per difficulty bin · {_pair(view.llm, view.verifier)}",
            f"{ds} · {view.n_bins} quantile bins of the mean verifier score per problem (no "
            f"labels; {view.bin_order}) · choice per bin and budget by two-fold CV over "
            f"{view.n_problems} problems<br>{view.k}-fold cross-fitted weights · band: "
            f"{view.level:.0%} bootstrap over problems with the bins and choices held fixed",
        ),
        legend={"orientation": "h", "x": 0.0, "y": 0.0, "yref": "container", "yanchor": "bottom"},
    )
    legend_h = 90
    top = _top_margin(fig.layout.title.to_plotly_json(), 50)
    _base_layout(fig, top + 560 + 30 * 2 * view.n_bins + legend_h)
    fig.update_layout(margin={"t": top, "r": 30, "b": 60 + legend_h})
    return fig


# --------------------------------------------------------------------------------------
# combined signals
# --------------------------------------------------------------------------------------

_SIGNAL_COLORS = ("#1f77b4", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
COMBINER_COLORS = {
    "sum_llr": "#d62728",
    "logistic": "#2ca02c",
    "latent_pv": "#9467bd",
    "weak_sup": "#8c564b",
    "majority": "#7f7f7f",
}


def combine_figure(view: CombineView) -> go.Figure:
    """Accuracy against N (log2 axis) of majority vote, each signal alone (dotted), the sum
    of per-signal LLRs and the logistic combiner (thick), with bootstrap bands."""
    fig = _figure()
    x = np.asarray(view.budgets, dtype=float)
    style: dict[int, tuple[str, dict[str, object]]] = {}
    n_single = 0
    for s, name in enumerate(view.strategies):
        kind = view.kinds[s]
        if kind == "single":
            color = _SIGNAL_COLORS[n_single % len(_SIGNAL_COLORS)]
            n_single += 1
            style[s] = (color, {"color": color, "width": 1.8, "dash": "dot"})
        elif kind == "combined":
            color = COMBINER_COLORS.get(name, "#d62728")
            style[s] = (color, {"color": color, "width": 3.2})
        else:
            color = COMBINER_COLORS["majority"]
            style[s] = (color, {"color": color, "width": 2.0, "dash": "dash"})
    combined = [s for s, kd in enumerate(view.kinds) if kd == "combined"]
    labels = [plotly_plain(lb) for lb in view.labels]
    groups = [plotly_plain(name) for name in view.strategies]
    # bands of the combiners only (more would bury the curves; hover gives every interval)
    for s in combined:
        fig.add_trace(
            _band(
                x,
                view.low[s],
                view.high[s],
                _rgba(style[s][0], 0.1),
                f"{labels[s]} band",
                groups[s],
            )
        )
    # thick combiners first, thin curves on top of them (they may coincide)
    others = [s for s in range(len(view.strategies)) if s not in combined]
    for s in [*combined, *others]:
        kind = view.kinds[s]
        fig.add_trace(
            go.Scatter(
                x=x,
                y=view.accuracy[s],
                mode="lines+markers",
                line=style[s][1],
                marker={"size": 7 if kind == "combined" else 5},
                name=labels[s],
                legendgroup=groups[s],
                legendrank=100 + s,
                customdata=np.stack([view.low[s], view.high[s]], axis=1),
                hovertemplate=(
                    f"{labels[s]}<br>N = %{{x}}<br>accuracy %{{y:.1%}} "
                    "[%{customdata[0]:.1%}, %{customdata[1]:.1%}]<extra></extra>"
                ),
            )
        )
    last = len(view.budgets) - 1
    best = labels[int(view.best_single[last])]
    lines = [f"at N = {view.budgets[last]}, gain over the best single signal ({best}):"]
    for s, kind in enumerate(view.kinds):
        if kind == "combined":
            lines.append(
                f"{labels[s]}: <b>{_points(view.gain[s, last])}</b> points "
                f"[{_points(view.gain_low[s, last])}, {_points(view.gain_high[s, last])}]"
            )
    budgets = list(view.budgets)
    fig.update_xaxes(
        type="log",
        tickvals=budgets,
        ticktext=_budget_ticktext(budgets),
        title_text="samples per problem N (log2 scale)",
        showgrid=True,
    )
    fig.update_yaxes(tickformat=".0%", title_text="accuracy", showgrid=True)
    ds = plotly_plain(dataset_label(view.dataset, view.simulated))
    order = "" if view.order == "random" else " · prefixes in sampling order (samples not iid)"
    fig.update_layout(
        title=_title(
            f"Combining {len(view.verifiers)} signals · {plotly_plain(view.llm)}",
            f"{ds} · signals: {', '.join(map(plotly_plain, view.verifiers))} · "
            f"{view.k}-fold cross-fitted (label-free combiners: every problem, no label "
            f"read), {view.n_subsets} common random subsets per budget{order}<br>bands: "
            f"{view.level:.0%} bootstrap over {view.n_problems} problems, drawn for the "
            "combiners (hover any curve for its interval) · dotted: KDE WV on one signal "
            "alone · dashed: majority vote<br>" + "<br>".join(lines),
            # the headline gains under the title, where they cannot cover a curve (a box
            # in the plot did, wherever it was put, on a laptop-width chart)
        ),
        legend={"orientation": "h", "x": 0.0, "y": -0.18},
    )
    _base_layout(fig, 620 + 16 * len(lines))  # the plot keeps its height under the notes
    fig.update_layout(margin={"b": 140, "t": 40})
    return fig


# --------------------------------------------------------------------------------------
# adaptive sampling
# --------------------------------------------------------------------------------------

#: one colour per stopping rule (the fixed-N strategies keep their registry colours)
RULE_COLORS = {
    "adaptive-consistency": "#e6550d",
    "esc": "#756bb1",
    "confidence": "#31a354",
    "posterior": "#d6267f",
}


def stopping_figure(view: StoppingView, x: str = "samples") -> go.Figure:
    """Accuracy against the mean samples (or tokens) used per problem on a log axis: each
    stopping rule's curve over its thresholds (solid, with markers), the fixed-N curves of
    majority vote and of the best calibrated strategy (dashed), bands for all of them, and
    the savings' target: the reference's accuracy at the reference budget, less the
    tolerance (dotted)."""
    if x not in ("samples", "tokens"):
        raise ValueError(f"x must be samples or tokens, got {x!r}")
    fig = _figure()
    unit = "samples" if x == "samples" else "tokens"
    fmt = "%{x:.1f}" if x == "samples" else "%{x:,.0f}"
    for f in view.fixed:
        color = strategy_color(f.strategy)
        xs = np.asarray(f.samples if x == "samples" else f.tokens, dtype=float)
        label = plotly_plain(display_label(f.strategy))
        fig.add_trace(_band(xs, f.low, f.high, _rgba(color, 0.05), f"{label} band", label))
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=f.accuracy,
                mode="lines+markers",
                line={"color": color, "width": 2, "dash": "dash"},
                marker={"size": 5, "symbol": "square"},
                name=f"{label}, fixed N",
                legendgroup=label,
                text=[f"N = {b}" for b in f.budgets],
                customdata=np.stack([f.low, f.high], axis=1),
                hovertemplate=f"{label}, %{{text}}<br>{fmt} {unit}<br>accuracy %{{y:.1%}} "
                "[%{customdata[0]:.1%}, %{customdata[1]:.1%}]<extra></extra>",
            )
        )
    for r in view.rules:
        color = RULE_COLORS.get(r.rule, CURVE)
        xs = np.asarray(r.samples if x == "samples" else r.tokens, dtype=float)
        label = plotly_plain(r.label)
        fig.add_trace(_band(xs, r.low, r.high, _rgba(color, 0.06), f"{label} band", label))
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=r.accuracy,
                mode="lines+markers",
                line={"color": color, "width": 2.4},
                marker={"size": 7},
                name=label,
                legendgroup=label,
                text=[f"{r.threshold_name} = {t:g}" for t in r.thresholds],
                customdata=np.stack([r.low, r.high], axis=1),
                hovertemplate=f"{label}, %{{text}}<br>{fmt} {unit} on average<br>accuracy "
                "%{y:.1%} [%{customdata[0]:.1%}, %{customdata[1]:.1%}]<extra></extra>",
            )
        )
    if view.fixed:
        ref = view.fixed[0]
        b = ref.budgets.index(view.reference_budget)
        target = float(ref.accuracy[b]) - view.tolerance
        line = {"color": "#555", "width": 1, "dash": "dot"}
        fig.add_hline(y=target, line=line)
        # named in the legend, not on the line: the rules' curves converge on this line
        # at the right, where a label sat on top of their markers
        fig.add_trace(
            go.Scatter(
                x=[None],
                y=[None],
                mode="lines",
                line=line,
                name=f"target: majority at N = {view.reference_budget} less "
                f"{100 * view.tolerance:g} pt",
                hoverinfo="skip",
            )
        )
    _base_layout(fig, 560)
    tok = "" if view.has_tokens else " · no token counts"
    fig.update_layout(
        title=_title(
            f"Early stopping: {_pair(view.llm, view.verifier)}",
            f"{view.n_problems} problems · cap {view.cap} samples · bands: "
            f"{view.level:.0%} bootstrap over problems · dashed: fixed N{tok}",
        ),
        legend={"orientation": "h", "yanchor": "top", "y": -0.16, "x": 0.0},
        margin={"l": 70, "r": 30, "t": 40, "b": 140},
    )
    ticks: dict[str, Any] = {}
    if x == "samples":
        top = max([view.cap, *(max(f.budgets) for f in view.fixed)])
        vals = [2**k for k in range(int(math.log2(max(top, 1))) + 2) if 2**k <= 2 * top]
        ticks = {"tickvals": vals, "ticktext": [str(v) for v in vals]}
    fig.update_xaxes(
        type="log", title=f"mean {unit} per problem (log scale)", showgrid=True, **ticks
    )
    fig.update_yaxes(title="accuracy", tickformat=".0%", showgrid=True)
    return fig


# --------------------------------------------------------------------------------------
# compute frontier
# --------------------------------------------------------------------------------------

#: one marker per strategy on the frontier chart (colour is the LLM's)
_SYMBOLS = ("circle", "square", "diamond", "triangle-up", "x", "star", "cross", "hexagon")
_LLM_COLORS = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
    "#393b79",
    "#637939",
)


def frontier_figure(view: FrontierView) -> go.Figure:
    """Every (LLM, strategy, N) as a faint point (colour: LLM, marker: strategy) against
    its cost per problem on a log axis, and the Pareto frontier as a step line through the
    points no other beats, with their bootstrap intervals."""
    fig = _figure()
    llms = list(dict.fromkeys(p.llm for p in view.points))
    strategies = list(dict.fromkeys(p.strategy for p in view.points))
    unit = view.unit
    cost_fmt = "%{x:.1f}" if unit == "samples" else "%{x:.3s}"
    for i, llm in enumerate(llms):
        color = _LLM_COLORS[i % len(_LLM_COLORS)]
        for j, s in enumerate(strategies):
            pts = sorted(
                (p for p in view.points if p.llm == llm and p.strategy == s), key=lambda p: p.cost
            )
            if not pts:
                continue
            name = plotly_plain(llm)
            fig.add_trace(
                go.Scatter(
                    x=[p.cost for p in pts],
                    y=[p.accuracy for p in pts],
                    mode="lines+markers",
                    line={"color": _rgba(color, 0.35), "width": 1},
                    marker={
                        "symbol": _SYMBOLS[j % len(_SYMBOLS)],
                        "size": 7,
                        "color": color,
                        "opacity": 0.55,
                    },
                    name=name,
                    legendgroup=name,
                    showlegend=j == 0,
                    text=[f"N = {p.budget}" for p in pts],
                    hovertemplate=f"{name}, {plotly_plain(display_label(s))}, %{{text}}<br>"
                    f"{cost_fmt} {unit}<br>accuracy %{{y:.1%}}<extra></extra>",
                )
            )
    front = view.frontier()
    if front:
        fig.add_trace(
            go.Scatter(
                x=[p.cost for p in front],
                y=[p.accuracy for p in front],
                mode="lines+markers",
                line={"color": "#111", "width": 2.5, "shape": "hv"},
                # a ring wider than the point's own marker (size 7), which shows inside it
                marker={
                    "size": 15,
                    "color": "#111",
                    "symbol": "circle-open",
                    "line": {"width": 1.5},
                },
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": [p.high - p.accuracy for p in front],
                    "arrayminus": [p.accuracy - p.low for p in front],
                    "color": "rgba(17,17,17,0.45)",
                    "thickness": 1.2,
                },
                name="Pareto frontier",
                text=[
                    f"{plotly_plain(p.llm)}, {plotly_plain(display_label(p.strategy))}, "
                    f"N = {p.budget}"
                    for p in front
                ],
                customdata=np.array([[p.low, p.high] for p in front]),
                hovertemplate="frontier: %{text}<br>" + cost_fmt + f" {unit}<br>accuracy "
                "%{y:.1%} [%{customdata[0]:.1%}, %{customdata[1]:.1%}]<extra></extra>",
            )
        )
    _base_layout(fig, 660)
    shapes = ", ".join(
        f"{_SYMBOLS[j % len(_SYMBOLS)].replace('-up', '')} {plotly_plain(short_name(s))}"
        for j, s in enumerate(strategies)
    )
    fig.update_layout(
        title=_title(
            f"Compute frontier: {plotly_plain(view.dataset)}",
            f"{len(llms)} LLMs · verifier {plotly_plain(view.verifier)} · "
            f"{view.n_problems} problems all answered · bars: {view.level:.0%} bootstrap"
            f"<br>markers: {shapes}",
        ),
        legend={"orientation": "h", "x": 0.0, "y": -0.2, "font": {"size": 11}},
        margin={"l": 70, "r": 30, "t": 40, "b": 170},
    )
    fig.update_xaxes(type="log", title=f"mean {unit} per problem (log scale)", showgrid=True)
    fig.update_yaxes(title="accuracy", tickformat=".0%", showgrid=True)
    return fig


#: issues a reader must not miss (shown as warnings, not as fine print)
WARNING_KINDS = frozenset({"few_problems", "few_responses", "few_fold_problems", "small_bins"})


def issue_notes(issues: tuple[Issue, ...]) -> list[tuple[bool, str]]:
    """(is a warning, sentence) for a result's issues: sample-size warnings first."""
    notes = [(i.kind in WARNING_KINDS, plain(issue_text(i))) for i in issues]
    return sorted(notes, key=lambda n: not n[0])


def issue_lines(issues: tuple[Issue, ...]) -> list[str]:
    """The sentences for a result's issues (shown under its chart, as markdown: the pair
    names and error texts in them are escaped)."""
    return [plain(issue_text(i)) for i in issues]
