"""Allocation by difficulty: the best strategy per predicted-difficulty bin and budget."""

from __future__ import annotations

import re

import streamlit as st

from core.info import allocation_view
from core.methods import get_strategy, strategy_names
from dashboard import state
from dashboard.figures import allocation_figure, issue_lines

DEFAULT = ["majority", "best_of_n", "vanilla_wv", "logit_wv", "kde_wv"]
BINS = [1, 2, 3, 4, 5, 6, 8]

st.title("Allocation by difficulty")
st.caption(
    "After Snell et al. (2024): problems are binned by a *predicted* difficulty, the mean "
    "verifier score over the problem's samples (no labels), and the best strategy is "
    "chosen per bin and budget. The choice applied to one half of the problems is made "
    "on the other half (two-fold cross-validation), so the per-bin curve is an honest "
    "estimate; every fixed strategy is scored on the same problems and subsets."
)
ctx = state.page_context()
state.simulated_banner(ctx)
state.voting_banner(ctx)


def _body() -> None:  # the page's controls and results: `state.page_body`
    c1, c2 = st.columns([2.6, 1])
    candidates = state.multiselect(
        "Candidate strategies",
        strategy_names(oracles=False),
        "a_candidates",
        default=DEFAULT,
        where=c1,
        format_func=lambda s: get_strategy(s).label,
    )
    n_bins = state.remembered(
        c2.select_slider,
        "Difficulty bins",
        "a_bins",
        4,
        valid=lambda v: v in BINS,
        options=BINS,
        help="Quantile bins of the mean verifier score; each bin needs problems in both folds.",
    )
    if not candidates:
        st.info("Choose at least one candidate strategy.")
        state.stop()

    view = state.compute(
        f"Cross-fitting and evaluating {ctx.llm} × {ctx.verifier} (once; cached afterwards)",
        lambda p: allocation_view(
            ctx.store,
            ctx.info,
            ctx.llm,
            ctx.verifier,
            candidates,
            ctx.config,
            n_bins=int(n_bins),
            progress=p,
        ),
    )
    state.chart(
        state.figure(allocation_figure, view),
        "allocation_chart",
        "allocation",
        ctx.dataset,
        ctx.llm,
        ctx.verifier,
    )
    for note in issue_lines(view.issues):
        st.warning(note, icon=":material/warning:")

    st.subheader("Per-bin table")
    t1, t2 = st.columns([1.4, 3])
    budget = state.remembered(
        t1.select_slider,
        "At budget N",
        "a_table_budget",
        view.budgets[-1],
        valid=lambda v: v in view.budgets,
        options=list(view.budgets),
    )
    b = view.budgets.index(budget)
    best = view.labels[int(view.best_fixed[b])]
    t2.caption(
        f"At N = {budget}: per-bin choice {100 * view.curve[b]:.1f}% "
        f"[{100 * view.curve_low[b]:.1f}, {100 * view.curve_high[b]:.1f}] vs the best fixed "
        f"strategy ({best}) {100 * view.fixed[view.best_fixed[b], b]:.1f}%: difference "
        f"{100 * view.gain[b]:+.1f} points [{100 * view.gain_low[b]:+.1f}, "
        f"{100 * view.gain_high[b]:+.1f}] (paired {view.level:.0%} interval over "
        f"{view.n_problems} problems; the best fixed strategy is picked in hindsight)."
    )
    table = view.bin_table(int(budget))
    pct = {c: st.column_config.NumberColumn(format="%.1f") for c in table.columns[4:]}
    st.dataframe(table, hide_index=True, width="stretch", column_config=pct)
    st.caption(
        f"Accuracy in % within each bin, over both folds; {view.bin_order}. Each fold's "
        "choice is made on the other fold's problems of the same bin."
    )
    with st.expander("Every budget, bin and fold (table)"):
        full = view.to_frame()
        st.dataframe(full, hide_index=True, width="stretch")
        stem = re.sub(
            r"[^A-Za-z0-9._-]+", "_", f"allocation_{view.dataset}_{view.llm}_{view.verifier}"
        )
        st.download_button(
            "Table CSV", view.to_csv(), f"{stem}.csv", "text/csv", icon=":material/download:"
        )


state.page_body(_body)
