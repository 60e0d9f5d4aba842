"""Adaptive sampling: early-stopping rules replayed on the pair's own samples, drawn
against the fixed-N curves, in samples or tokens."""

from __future__ import annotations

import streamlit as st

from core.info.stopping import RULE_LABELS, stopping_view
from dashboard import state
from dashboard.figures import issue_lines, savings_display, stopping_figure

st.title("Adaptive sampling")
st.caption(
    "Responses arrive one by one in the same random orders the budget curves use; after "
    "each, a rule decides from what it has seen whether to stop (at the latest at the cap). "
    "Each rule traces accuracy against the mean samples (or tokens) it used as its "
    "threshold varies, beside the fixed-N curves of majority vote and of the best "
    "calibrated strategy on the same problems. Savings are read where a rule comes within "
    "half a point of a fixed-N reference, with paired bootstrap intervals over problems."
)
ctx = state.page_context()
state.simulated_banner(ctx)
state.voting_banner(ctx)


def _body() -> None:  # the page's controls and results: `state.page_body`
    c1, c2, c3 = st.columns([2.2, 1, 1])
    rules = state.multiselect(
        "Stopping rules",
        list(RULE_LABELS),
        "a_rules",
        default=list(RULE_LABELS),
        where=c1,
        format_func=lambda r: RULE_LABELS[r],
        help="Adaptive-Consistency and ESC read only the answers; the confidence stop reads "
        "the verifier's score; the calibrated posterior stop the cross-fitted posterior vote.",
    )
    budgets = state.approx_budgets(ctx.info, [ctx.llm])
    ref = state.select(
        "Reference budget N",
        budgets,
        "a_ref",
        32 if 32 in budgets else budgets[-1],
        where=c2,
        help="Savings are read at the accuracy of majority vote and of the best calibrated "
        "strategy at this N.",
    )
    axis = state.select(
        "x-axis",
        ["samples", "tokens"],
        "a_axis",
        "samples",
        where=c3,
        help="Mean cost per problem.",
    )
    if not rules:
        st.info("Choose at least one stopping rule.", icon=":material/info:")
        state.stop()
    view = state.compute(
        f"Replaying {len(rules)} stopping rules for {ctx.llm} × {ctx.verifier} (once; cached "
        "afterwards)",
        lambda p: stopping_view(
            ctx.store,
            ctx.info,
            ctx.llm,
            ctx.verifier,
            rules,
            ctx.config,
            reference_budget=int(ref),
            progress=p,
        ),
    )
    if axis == "tokens" and not view.has_tokens:
        st.info("This pair has no token counts: drawn against samples.", icon=":material/info:")
        axis = "samples"
    state.chart(
        state.figure(stopping_figure, view, axis),
        "adaptive_chart",
        "adaptive",
        ctx.dataset,
        ctx.llm,
        ctx.verifier,
    )
    for note in issue_lines(view.issues):
        st.warning(note, icon=":material/warning:")
    st.subheader(f"At the accuracy of fixed N = {view.reference_budget}")
    tabs = st.tabs(["Samples", "Tokens"] if view.has_tokens else ["Samples"])
    for tab, unit in zip(tabs, ("samples", "tokens"), strict=False):
        part = savings_display(view, unit)
        tab.dataframe(part, hide_index=True, width="stretch", height=36 * (len(part) + 1) + 4)
    st.caption(
        f"needs: mean samples (or tokens) per problem a rule uses where it comes within "
        f"{100 * view.tolerance:g} points of the reference's accuracy [{view.level:.0%} paired "
        "bootstrap interval over problems]; never: not within its cap (an interval's never "
        "end: not in more than 2.5 % of the resamples); saves: 1 - needs / what fixed N spends."
    )


state.page_body(_body)
