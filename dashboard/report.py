"""A dataset's self-contained HTML report: what the data is and how it was graded, the
weight functions of every pair, budget curves per LLM, and the Compare table with its
paired intervals. Built from the same info-layer views and figure builders as the pages
(no Streamlit), by the dashboard's Datasets page and by `ttslab report DATASET -o F`.

The file inlines plotly.js once, so it opens offline and can be mailed or attached.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import pandas as pd
import plotly.graph_objects as go

from core.evaluation import EvalConfig
from core.info import (
    budget_view,
    common_budgets,
    compare_view,
    dataset_label,
    weight_grid_view,
)
from core.methods import default_strategies, get_strategy
from core.reports import calibration_text, issue_text
from core.store import DatasetInfo, Store
from core.types import TTSLabError
from dashboard.export import figures_html
from dashboard.figures import (
    budget_figure,
    compare_figure,
    dataset_overview_figure,
    weight_grid_figure,
)

ProgressFn = Callable[[str, int, int], None]

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto;
       max-width: 1200px; padding: 0 1rem; color: #1f2430; line-height: 1.45; }
h1 { font-size: 1.7rem; } h2 { margin-top: 2.2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.85rem; margin: 0.8rem 0; }
th, td { border-bottom: 1px solid #e4e4e4; padding: 0.25rem 0.6rem; text-align: right; }
th:first-child, td:first-child, th:nth-child(2), td:nth-child(2) { text-align: left; }
.note { color: #555; font-size: 0.9rem; } .warn { color: #8a4b00; }
dl { display: grid; grid-template-columns: max-content auto; gap: 0.2rem 1rem; }
dt { font-weight: 600; } dd { margin: 0; }
"""


def _e(text: object) -> str:
    return html.escape(str(text))


def _table(frame: pd.DataFrame, floats: str = "{:.3g}") -> str:
    def cell(v: object) -> str:
        if isinstance(v, float):
            return "" if v != v else _e(floats.format(v))
        return _e(v)

    head = "".join(f"<th>{_e(c)}</th>" for c in frame.columns)
    rows = "".join(
        "<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>"
        for row in frame.itertuples(index=False)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _issues(lines: Sequence[str]) -> str:
    return "".join(f'<p class="warn">{_e(line)}</p>' for line in lines)


def build_report(
    store: Store,
    info: DatasetInfo,
    config: EvalConfig,
    *,
    strategies: Sequence[str] | None = None,
    budget: int | None = None,
    baseline: str = "majority",
    weight_kind: str = "kde_wv",
    progress: ProgressFn | None = None,
) -> str:
    """The report of `info` as one HTML document (see the module doc)."""
    strats = tuple(strategies or default_strategies(simulated=info.has_truth))
    # default: the largest budget every LLM evaluates exactly (the pages' own choice)
    n = budget if budget is not None else common_budgets(store, info)[-1]
    steps = 2 + len(info.llms)
    done = 0

    def step(stage: str) -> ProgressFn | None:
        if progress is None:
            return None
        base = done

        def inner(sub: str, i: int, total: int) -> None:
            frac = i / total if total else 1.0
            progress(f"{stage}: {sub}", int(100 * (base + frac)), 100 * steps)

        return inner

    label = dataset_label(info.name, info.simulated)
    blocks: list[str | go.Figure] = []  # HTML and figures, in order

    # ---- data and grading ------------------------------------------------------------
    summary = store.pair_summary(info)
    facts = {
        "problems": f"{info.n_problems:,}",
        "responses": f"{info.n_responses:,} ({info.n_scores:,} scores)",
        "LLMs": ", ".join(info.llms),
        "verifiers": ", ".join(info.verifiers),
        "source": f"{info.source_format}" + (f" ({info.source_path})" if info.source_path else ""),
        "content SHA-256": info.content_sha256,
        "imported": info.imported,
        "samples": "independent (iid)" if info.iid else "ordered (not iid)",
        "correctness": info.grader or "-",
        "lower is better": ", ".join(info.lower_is_better) or "-",
        "evaluation": (
            f"{config.folds}-fold cross-fitting, {config.n_subsets} subsets per budget, "
            f"order {config.order}, ties {config.tie_break}, reduction {config.reduction}, "
            f"transform {config.params.transform}, direction {config.params.orientation}; "
            f"{calibration_text(config)}"
        ),
    }
    dl = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts.items())
    notes = f'<p class="note">Notes: {_e(info.notes)}</p>' if info.notes else ""
    sim = (
        '<p class="warn">Simulated benchmark: synthetic data with known likelihood ratios.</p>'
        if info.simulated
        else ""
    )
    pairs_table = summary.rename(columns={"separation": "separation (sd; higher: better)"})
    blocks += [
        f"<h2>Data and grading</h2>{sim}<dl>{dl}</dl>{notes}",
        dataset_overview_figure(summary, f"{label}: how well each verifier separates"),
        "<p class='note'>Per pair: responses, problems, share of correct responses, score "
        "range, and the separation of correct from incorrect responses in score standard "
        "deviations (negative: lower scores go with correct answers).</p>" + _table(pairs_table),
    ]

    # ---- weight functions --------------------------------------------------------------
    try:
        grid = weight_grid_view(store, info, weight_kind, config, progress=step("weights"))
        failed = [f"{p.llm} × {p.verifier}: {p.error}" for p in grid.panels if p.error]
        blocks += [
            f"<h2>Weight functions ({_e(get_strategy(weight_kind).label)})</h2>"
            "<p class='note'>How much a response's score counts for its answer, fitted per "
            "pair with 95% bootstrap bands. Where w(s) &lt; 0 a response counts against its "
            "answer.</p>",
            weight_grid_figure(grid),
            _issues(failed),
        ]
    except TTSLabError as exc:
        blocks.append(f"<h2>Weight functions</h2>{_issues([str(exc)])}")
    done += 1

    # ---- budget curves, one figure per LLM ---------------------------------------------
    blocks.append(
        "<h2>Budget curves</h2><p class='note'>Accuracy against the number of samples per "
        "problem N, cross-fitted, with 95% bootstrap bands over problems; the dotted line is "
        "majority over all samples.</p>"
    )
    for m in info.llms:
        pairs = [(m, v) for v in info.verifiers]
        try:
            view = budget_view(store, info, pairs, strats, config, progress=step(m))
        except TTSLabError as exc:
            blocks.append(f"<h3>{_e(m)}</h3>{_issues([str(exc)])}")
        else:
            blocks += [
                f"<h3>{_e(m)}</h3>",
                budget_figure(view),
                _issues([issue_text(i) for i in view.issues]),
            ]
        done += 1

    # ---- compare -------------------------------------------------------------------------
    try:
        cmp = compare_view(
            store, info, info.pairs, strats, n, baseline, config, progress=step("compare")
        )
    except TTSLabError as exc:
        blocks.append(f"<h2>Compare</h2>{_issues([str(exc)])}")
    else:
        blocks += [
            f"<h2>Compare at N = {cmp.budget}</h2><p class='note'>Accuracy and the gain over "
            f"{_e(get_strategy(baseline).label)} with paired 95% bootstrap intervals over "
            f"{cmp.n_problems} problems.</p>",
            compare_figure(cmp),
            _issues([issue_text(i) for i in cmp.issues]) + _table(cmp.display_frame(), "{:.2f}"),
        ]
    done += 1
    if progress is not None:
        progress("writing the report", 100 * steps, 100 * steps)

    frags = iter(figures_html([b for b in blocks if isinstance(b, go.Figure)]))
    body = "".join(b if isinstance(b, str) else next(frags) for b in blocks)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{_e(label)}: TTS Aggregation Lab report</title><style>{STYLE}</style></head>"
        f"<body><h1>{_e(label)}</h1><p class='note'>TTS Aggregation Lab report, "
        f"generated {stamp}. Every interval is a 95% bootstrap interval over problems.</p>"
        f"{body}</body></html>"
    )
