"""Exports of a figure: its numbers as CSV, and the picture as SVG, PDF or PNG.

Pure functions of a Plotly figure (no Streamlit), used by every chart of the dashboard
and by `ttslab report`. Pictures are rendered locally by Kaleido, which drives the
machine's own Chromium (Debian's `chromium`); nothing is downloaded.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

IMAGE_FORMATS = ("svg", "pdf", "png")
MIME = {
    "svg": "image/svg+xml",
    "pdf": "application/pdf",
    "png": "image/png",
    "csv": "text/csv",
    "html": "text/html",
}
#: the width a figure without its own is exported at (a two-column paper figure at 2x)
EXPORT_WIDTH = 1200
CSV_COLUMNS = (
    "trace",
    "type",
    "panel",
    "x_axis",
    "y_axis",
    "x",
    "y",
    "z",
    "error_minus",
    "error_plus",
    "text",
)


class ExportError(RuntimeError):
    """A figure could not be rendered (no Chromium, or Kaleido failed)."""


def file_stem(*parts: object) -> str:
    """A file name from free text: letters, digits, '.', '_' and '-' only."""
    text = "_".join(str(p) for p in parts if str(p))
    return re.sub(r"_{2,}", "_", re.sub(r"[^A-Za-z0-9._-]+", "_", text)).strip("_") or "figure"


def _values(seq: Any) -> list[Any]:
    if seq is None:
        return []
    arr = np.asarray(seq, dtype=object)
    return list(arr.ravel()) if arr.ndim <= 1 else [list(r) for r in arr]


def _axis_title(layout: go.Layout, axis: str) -> str:
    try:
        obj = layout[axis]
    except (KeyError, ValueError):
        return ""
    title = getattr(getattr(obj, "title", None), "text", None)
    return str(title or "")


def _panel_titles(fig: go.Figure) -> dict[tuple[str, str], str]:
    """Subplot titles (paper-anchored annotations just above a panel) by axis pair."""
    layout = fig.layout
    out: dict[tuple[str, str], str] = {}
    notes = [a for a in (layout.annotations or ()) if a.xref == "paper" and a.yref == "paper"]
    pairs = {(t.xaxis or "x", t.yaxis or "y") for t in fig.data if hasattr(t, "xaxis")}
    for xa, ya in pairs:
        try:
            xd = layout[f"xaxis{xa[1:]}"].domain or (0, 1)
            yd = layout[f"yaxis{ya[1:]}"].domain or (0, 1)
        except (KeyError, ValueError):
            continue
        for a in notes:
            if a.x is None or a.y is None or not a.text:
                continue
            if xd[0] - 1e-6 <= a.x <= xd[1] + 1e-6 and yd[1] - 1e-6 <= a.y <= yd[1] + 0.12:
                out[(xa, ya)] = re.sub(r"<[^>]+>", " ", str(a.text)).strip()
                break
    return out


def _rows(fig: go.Figure) -> Iterator[dict[str, Any]]:
    titles = _panel_titles(fig)
    for trace in fig.data:
        kind = trace.plotly_name
        xa = getattr(trace, "xaxis", None) or "x"
        ya = getattr(trace, "yaxis", None) or "y"
        base = {
            "trace": trace.name or "",
            "type": kind,
            "panel": titles.get((xa, ya), ""),
            "x_axis": _axis_title(fig.layout, f"xaxis{xa[1:]}"),
            "y_axis": _axis_title(fig.layout, f"yaxis{ya[1:]}"),
        }
        z = getattr(trace, "z", None)
        if z is not None:  # a heatmap: one row per cell
            zz = np.asarray(z, dtype=object)
            zz = zz.reshape(1, -1) if zz.ndim == 1 else zz
            xs = _values(getattr(trace, "x", None)) or list(range(zz.shape[1]))
            ys = _values(getattr(trace, "y", None)) or list(range(zz.shape[0]))
            text = getattr(trace, "text", None)
            tt = np.asarray(text, dtype=object) if text is not None else None
            for i, yv in enumerate(ys):
                for j, xv in enumerate(xs):
                    cell = zz[i, j] if i < zz.shape[0] and j < zz.shape[1] else None
                    label = ""
                    if tt is not None and tt.ndim == 2 and i < tt.shape[0] and j < tt.shape[1]:
                        label = str(tt[i, j])
                    yield {**base, "x": xv, "y": yv, "z": cell, "text": label}
            continue
        xs = _values(getattr(trace, "x", None))
        ys = _values(getattr(trace, "y", None))
        n = max(len(xs), len(ys))
        if n == 0:
            continue
        if not xs:
            xs = list(range(n))
        if not ys:
            ys = list(range(n))
        err = getattr(trace, "error_y", None)
        plus = _values(getattr(err, "array", None)) if err is not None else []
        minus = _values(getattr(err, "arrayminus", None)) if err is not None else []
        if plus and not minus and getattr(err, "symmetric", None) is not False:
            minus = plus
        text = getattr(trace, "text", None)
        texts = _values(text) if text is not None and not isinstance(text, str) else []
        for i in range(n):
            yield {
                **base,
                "x": xs[i] if i < len(xs) else None,
                "y": ys[i] if i < len(ys) else None,
                "z": None,
                "error_minus": minus[i] if i < len(minus) else None,
                "error_plus": plus[i] if i < len(plus) else None,
                "text": texts[i] if i < len(texts) else "",
            }


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float | np.floating):
        v = float(value)
        return "" if v != v else repr(v)
    if isinstance(value, np.integer):
        return int(value)
    return re.sub(r"<[^>]+>", " ", str(value)).strip() if isinstance(value, str) else value


def figure_csv(fig: go.Figure) -> str:
    """The numbers drawn in `fig`, one row per point (per cell for heatmaps): trace,
    trace type, panel title, axis titles, x, y, z, error bars and the point's text.
    Bands appear as the traces that draw them (their edges as points)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in _rows(fig):
        writer.writerow({k: _cell(row.get(k)) for k in CSV_COLUMNS})
    return buf.getvalue()


def figure_image(fig: go.Figure, fmt: str, *, width: int | None = None) -> bytes:
    """`fig` rendered as SVG, PDF or PNG (PNG at twice the pixel density) by Kaleido."""
    if fmt not in IMAGE_FORMATS:
        raise ValueError(f"format must be one of {', '.join(IMAGE_FORMATS)}, got {fmt!r}")
    w = width or fig.layout.width or EXPORT_WIDTH
    h = fig.layout.height or 500
    try:
        data = fig.to_image(format=fmt, width=int(w), height=int(h), scale=2 if fmt == "png" else 1)
    except Exception as exc:  # Kaleido reports a missing browser in several ways
        raise ExportError(
            f"could not render the figure as {fmt.upper()}: {exc}. Pictures are drawn by "
            "the local Chromium (Debian package `chromium`)."
        ) from exc
    return bytes(data)


def figures_html(figures: Sequence[go.Figure]) -> list[str]:
    """Each figure as an HTML fragment; plotly.js is inlined once, in the first, so a page
    holding all of them is self-contained (it opens offline)."""
    return [
        f.to_html(
            full_html=False,
            include_plotlyjs=(i == 0),
            config={"displaylogo": False, "responsive": True},
        )
        for i, f in enumerate(figures)
    ]
