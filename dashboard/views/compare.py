"""Compare: accuracy and gain over a baseline for pairs x strategies at one budget."""

from __future__ import annotations

import re

import streamlit as st

from core.info import compare_view, default_baseline
from core.methods import default_strategies, get_strategy, strategy_names
from dashboard import state
from dashboard.figures import compare_figure, compare_latex, issue_lines
from dashboard.text import plain

st.title("Compare strategies")
st.caption(
    "Accuracy at one budget N for every chosen pair and strategy, and the gain over a "
    "baseline with a paired 95% bootstrap interval over problems (both strategies scored "
    "on the same problems and subsets)."
)
ctx = state.page_context()


def _body() -> None:  # the page's controls and results: `state.page_body`
    names = strategy_names(simulated=ctx.info.has_truth)

    c1, c2 = st.columns([1, 2])
    llms = state.multiselect("LLMs", ctx.info.llms, "c_llms", default=[ctx.llm], where=c1)
    verifiers = state.multiselect(
        "Verifiers", ctx.info.verifiers, "c_verifiers", default=list(ctx.info.verifiers), where=c2
    )
    strategies = state.multiselect(
        "Strategies",
        names,
        "c_strategies",
        default=list(default_strategies(simulated=ctx.info.has_truth)),
        format_func=lambda s: get_strategy(s).label,
    )
    c3, c4, c5 = st.columns([1.4, 1, 1])
    base_default, base_why = default_baseline(ctx.store, ctx.info)
    state.reset_on_dataset_change("compare", ["c_baseline"], ctx.info)
    budgets = state.approx_budgets(ctx.info, llms)
    budget = state.remembered(
        c3.select_slider,
        "Budget N (samples per problem)",
        "c_budget",
        32 if 32 in budgets else budgets[-1],
        valid=lambda v: v in budgets,
        options=list(budgets),
    )
    baseline = state.select(
        "Baseline",
        names,
        "c_baseline",
        base_default,
        where=c4,
        format_func=lambda s: get_strategy(s).label,
    )
    metric = state.remembered(
        c5.radio,
        "Colour by",
        "c_metric",
        "gain",
        valid=lambda v: v in ("gain", "accuracy"),
        options=["gain", "accuracy"],
        horizontal=True,
    )
    if base_why:
        if baseline == "majority":
            st.warning(
                plain(base_why.replace("the baseline is", "prefer")), icon=":material/warning:"
            )
        else:
            st.caption(plain(base_why))
    pairs = [(m, v) for m in llms for v in verifiers]
    if not pairs or not strategies:
        st.info("Choose at least one LLM, one verifier and one strategy.")
        state.stop()
    st.caption(
        f"{len(pairs)} pair{'s' if len(pairs) != 1 else ''}. New pairs take a few seconds each "
        "the first time (progress shown); "
        "`ttslab curves DATASET` precomputes them all."
    )

    state.confirm_big(
        "compare",
        f"{len(pairs)} pairs × {len(strategies)} strategies",
        len(pairs) * len(strategies),
        (ctx.dataset, pairs, strategies, budget, baseline),
    )
    view = state.compute(
        f"Cross-fitting and evaluating {len(pairs)} pairs (once; cached afterwards)",
        lambda p: compare_view(
            ctx.store, ctx.info, pairs, strategies, int(budget), baseline, ctx.config, progress=p
        ),
    )
    state.chart(
        state.figure(compare_figure, view, metric),
        "compare_chart",
        "compare",
        ctx.dataset,
        f"N{view.budget}",
        drill=state.Drill(
            ctx.info, view.pairs, view.strategies, view.baseline, budget=view.budget, what="cell"
        ),
    )
    for note in issue_lines(view.issues):
        st.warning(note, icon=":material/warning:")

    table = view.display_frame()
    if table["pair"].nunique() == 1:  # the chart's title names it: room for the interval
        table = table.drop(columns="pair")
    gain, interval = table.columns[table.columns.get_loc("accuracy (%)") + 1 :][:2]
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        column_config={
            # the row's names stay in view when the table scrolls sideways on a narrow screen
            "pair": st.column_config.TextColumn(pinned=True, width=170),
            "strategy": st.column_config.TextColumn(pinned=True, width=140),
            "accuracy (%)": st.column_config.NumberColumn(format="%.1f", width=95),
            # the gain and its interval next: on a laptop screen the rest scrolls
            gain: st.column_config.NumberColumn(format="%+.2f", width=110),
            interval: st.column_config.TextColumn(width=120),
        },
    )
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", f"compare_{view.dataset}_N{view.budget}")
    row = st.container(horizontal=True, gap="small")
    row.download_button(
        "Table CSV", view.to_csv(), f"{stem}.csv", "text/csv", icon=":material/download:"
    )
    row.download_button(
        "Table LaTeX", compare_latex(view), f"{stem}.tex", "text/x-tex", icon=":material/download:"
    )


state.page_body(_body)
