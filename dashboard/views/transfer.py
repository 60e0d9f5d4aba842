"""Calibration transfer: weights fitted on one (dataset, LLM, verifier) pair, used on another."""

from __future__ import annotations

import re

import streamlit as st

from core.info import PairRef, pair_ref_label, transfer_view
from core.methods import calibrated_strategies, get_strategy, strategy_names
from dashboard import state
from dashboard.figures import issue_lines, transfer_heatmap
from dashboard.text import plain

st.title("Calibration transfer")
st.caption(
    "Do weights calibrated on one pair still help on another: on a later benchmark "
    "(AIME 2024 → AIME 2025), or for another LLM? Each cell fits the strategy on the row's "
    "pair and evaluates it on the column's pair at one budget N, as the gain over a "
    "baseline on the same subsets, with a paired 95% bootstrap interval over the "
    "evaluated problems. Where the two pairs share problems, each problem is weighted by "
    "a fit that never saw it."
)
ctx = state.page_context()
state.voting_banner(ctx)


def _body() -> None:  # the page's controls and results: `state.page_body`
    store = ctx.store
    infos = store.list_datasets()
    refs: dict[str, PairRef] = {}
    for info in sorted(infos, key=lambda i: i.name != ctx.dataset):  # the sidebar's dataset first
        for m, v in info.pairs:
            ref = PairRef(info.name, m, v)
            refs[pair_ref_label(ref, info.simulated)] = ref

    def short(label: str) -> str:
        """Pairs of the sidebar's dataset without the dataset's name (chips stay short)."""
        ref = refs[label]
        return f"{ref.llm} / {ref.verifier}" if ref.dataset == ctx.dataset else label

    default = [
        pair_ref_label(PairRef(ctx.dataset, m, ctx.verifier), ctx.info.simulated)
        for m in ctx.info.llms
    ][:8]
    state.reset_on_dataset_change("transfer", ["t_sources", "t_targets"], ctx.info)

    sources = state.multiselect(
        "Calibrated on (rows)",
        list(refs),
        "t_sources",
        default=default,
        max_selections=12,
        format_func=short,
        help="Any (dataset / LLM / verifier) pair in the store; pairs of the sidebar's dataset "
        "are shown as LLM / verifier. Default: every LLM of the sidebar's dataset with the "
        "sidebar's verifier.",
    )
    targets = state.multiselect(
        "Evaluated on (columns)",
        list(refs),
        "t_targets",
        default=default,
        max_selections=12,
        format_func=short,
        help="Any (dataset / LLM / verifier) pair in the store.",
    )
    c3, c4, c5 = st.columns([1, 1, 1.4])
    strategy = state.select(
        "Strategy (calibrated)",
        list(calibrated_strategies()),
        "t_strategy",
        "logit_wv",
        where=c3,
        format_func=lambda s: get_strategy(s).label,
    )
    baseline = state.select(
        "Baseline",
        strategy_names(oracles=False),
        "t_baseline",
        "majority",
        where=c4,
        format_func=lambda s: get_strategy(s).label,
    )
    by_name = {i.name: i for i in infos}
    used = {refs[x].dataset for x in (*sources, *targets)} or {ctx.dataset}
    budgets = sorted({b for d in used for b in state.approx_budgets(by_name[d])}) or [1]
    budget = state.remembered(
        c5.select_slider,
        "Budget N (samples per problem)",
        "t_budget",
        16 if 16 in budgets else budgets[-1],
        valid=lambda v: v in budgets,
        options=budgets,
    )
    if not sources or not targets:
        st.info("Choose at least one pair to calibrate on and one to evaluate on.")
        state.stop()
    st.caption(
        f"{len(sources)} × {len(targets)} = {len(sources) * len(targets)} cells. A new cell "
        "takes up to a few seconds the first time (progress shown); `ttslab transfer` computes "
        "the same numbers."
    )

    state.confirm_big(
        "transfer",
        f"{len(sources)} × {len(targets)} transfer cells",
        len(sources) * len(targets),
        (sources, targets, strategy, baseline, budget),
    )
    view = state.compute(
        f"Calibrating and evaluating {len(sources) * len(targets)} cells (once; cached afterwards)",
        lambda p: transfer_view(
            ctx.store,
            [refs[x] for x in sources],
            [refs[x] for x in targets],
            strategy,
            baseline,
            int(budget),
            ctx.config,
            progress=p,
        ),
    )
    if view.simulated:
        st.warning(
            "Some of these pairs are **simulated** data (synthetic, with known likelihood "
            "ratios): their transfer says nothing about real LLMs.",
            icon=":material/science:",
        )
    state.chart(state.figure(transfer_heatmap, view), "transfer_chart", "transfer", ctx.dataset)
    for note in issue_lines(view.issues):
        st.warning(note, icon=":material/warning:")

    table = view.display_frame()
    if view.source_common and view.source_common == view.target_common:
        st.caption(plain(f"Shared by every row and column: {view.source_common}."))
    else:
        shared = [
            f"every row: {view.source_common}" if view.source_common else "",
            f"every column: {view.target_common}" if view.target_common else "",
        ]
        if any(shared):
            st.caption("Shared by " + "; ".join(x for x in shared if x) + ".")
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        column_config={
            table.columns[3]: st.column_config.NumberColumn(format="%.1f"),
            table.columns[4]: st.column_config.NumberColumn(format="%.1f"),
            "gain (points)": st.column_config.NumberColumn(format="%+.1f"),
        },
    )
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", f"transfer_{view.strategy}_N{view.budget}")
    st.download_button(
        "Table CSV", view.to_csv(), f"{stem}.csv", "text/csv", icon=":material/download:"
    )


state.page_body(_body)
