"""Compute frontier: which LLM plus aggregation is best at a given compute budget."""

from __future__ import annotations

import streamlit as st

from core.info.frontier import DEFAULT_FRONTIER_STRATEGIES, frontier_view
from core.methods import get_strategy, strategy_names
from dashboard import state
from dashboard.figures import frontier_figure, issue_lines
from dashboard.text import plain

st.title("Compute frontier")
st.caption(
    "For a dataset where several LLMs answered the same problems: accuracy of every (LLM, "
    "strategy, N) against its expected cost per problem, and the Pareto frontier of the "
    "points no other beats (cheaper and at least as accurate). Measured on the problems "
    "every LLM answered, weights cross-fitted. FLOPs are 2 x parameters x tokens."
)
ctx = state.page_context(pair=False)
state.simulated_banner(ctx)


def _body() -> None:  # the page's controls and results: `state.page_body`
    if len(ctx.info.llms) < 2:
        st.info(
            f"{plain(ctx.label)} has one LLM: a compute frontier compares several.",
            icon=":material/info:",
        )
        state.stop()
    state.reset_on_dataset_change(
        "frontier",
        ["f_llms", "f_verifier", "f_budget_tokens", "f_budget_samples", "f_budget_flops"],
        ctx.info,
    )
    # the LLMs get a row of their own: long model names were cut in a third of the width
    llms = state.multiselect("LLMs", ctx.info.llms, "f_llms", default=list(ctx.info.llms))
    c2, c3, c4 = st.columns([1.6, 0.7, 1.1])
    names = [n for n in strategy_names(oracles=False, simulated=False)]
    strategies = state.multiselect(
        "Strategies",
        names,
        "f_strategies",
        default=list(DEFAULT_FRONTIER_STRATEGIES),
        where=c2,
        format_func=lambda s: get_strategy(s).label,
    )
    unit = state.select(
        "Cost",
        ["tokens", "samples", "flops"],
        "f_unit",
        "tokens",
        where=c3,
        format_func=lambda x: "FLOPs" if x == "flops" else x,
    )
    verifier = state.select(
        "Verifier", ctx.info.verifiers, "f_verifier", ctx.info.verifiers[0], where=c4
    )
    params = state.llm_params(llms) if unit == "flops" else {}
    if unit == "flops" and any(m not in params for m in llms):
        st.info(
            "FLOPs need a parameter count for every chosen LLM: "
            + ", ".join(plain(m) for m in llms if m not in params),
            icon=":material/info:",
        )
        state.stop()
    if len(llms) < 2 or not strategies:
        st.info("Choose at least two LLMs and one strategy.", icon=":material/info:")
        state.stop()
    view = state.compute(
        f"Budget curves of {len(llms)} LLMs (once per LLM; cached afterwards)",
        lambda p: frontier_view(
            ctx.store,
            ctx.info,
            verifier,
            ctx.config,
            strategies=strategies,
            unit=unit,
            params=params,
            llms=llms,
            progress=p,
        ),
    )
    state.chart(
        state.figure(frontier_figure, view), "frontier_chart", "frontier", ctx.dataset, verifier
    )
    for note in issue_lines(view.issues):
        st.warning(note, icon=":material/warning:")
    front = view.frontier()
    default_budget = float(front[len(front) // 2].cost) if front else 1.0
    budget = state.remembered(
        st.number_input,
        f"Best at a budget of ({unit} per problem)",
        f"f_budget_{unit}",
        default_budget,
        valid=lambda v: isinstance(v, float) and v >= 0,
        min_value=0.0,
        format="%.1f" if unit == "samples" else "%.4g" if unit == "flops" else "%.0f",
    )
    best = view.best_at(budget)
    if best is None:
        st.info("Nothing fits that budget: even the cheapest point costs more.")
    else:
        # 11,200 tokens, not 1.12e+04; FLOPs stay in scientific notation
        cost = (
            f"{best.cost:.3g} FLOPs"
            if unit == "flops"
            else f"{best.cost:,.1f} samples"
            if unit == "samples"
            else f"{best.cost:,.0f} {unit}"
        )
        st.success(
            f"**{plain(best.llm)}** with {plain(get_strategy(best.strategy).label)} at N = "
            f"{best.budget}: accuracy {best.accuracy:.1%} [{best.low:.1%}, {best.high:.1%}] for "
            f"{cost} per problem."
        )


state.page_body(_body)
