"""Problem explorer: one problem's answer clusters and how each strategy votes on them."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.info import (
    FILTER_KINDS,
    FILTER_LABELS,
    ProblemFilter,
    explorer_problems,
    explorer_strategies,
    problem_view,
)
from core.methods import get_strategy, short_name, strategy_names
from dashboard import state
from dashboard.figures import problem_figure
from dashboard.text import plain

DEFAULT = ["majority", "best_of_n", "vanilla_wv", "logit_wv", "kde_wv"]

st.title("Problem explorer")
st.caption(
    "Every response of one problem, grouped by answer, and what each strategy adds up. "
    "Weights come from the cross-fitting fold that held the problem out, so the problem's "
    "own labels were never used."
)
ctx = state.page_context()
state.voting_banner(ctx)


def _body() -> None:  # the page's controls and results: `state.page_body`
    c1, c2 = st.columns([1.6, 1.4])
    strategies = state.multiselect(
        "Strategies",
        list(explorer_strategies()),
        "p_strategies",
        default=DEFAULT,
        where=c1,
        format_func=lambda s: get_strategy(s).label,
    )
    kind = state.select(
        "List the problems",
        FILTER_KINDS,
        "p_filter",
        "disagree",
        where=c2,
        format_func=FILTER_LABELS.get,
    )
    a = b = n = None
    if kind in ("a_right_b_wrong", "a_wrong_b_right"):
        f1, f2, f3 = st.columns(3)
        every = strategy_names(simulated=ctx.info.has_truth)
        a = state.select(
            "Strategy A",
            every,
            "p_a",
            "logit_wv",
            where=f1,
            format_func=lambda s: get_strategy(s).label,
        )
        b = state.select(
            "Strategy B",
            every,
            "p_b",
            "majority",
            where=f2,
            format_func=lambda s: get_strategy(s).label,
        )
        budgets = state.approx_budgets(ctx.info, [ctx.llm])
        n = state.select("at budget N", budgets, "p_n", budgets[-1], where=f3)
    search = state.remembered(
        st.text_input,
        "Search the problems' text (or ids)",
        "p_search",
        "",
        valid=lambda v: isinstance(v, str),
        placeholder="a word or phrase from the problem statement, or part of an id",
    )
    if not strategies:
        st.info("Choose at least one strategy.")
        state.stop()

    listing = state.compute(
        f"Cross-fitting {len(strategies)} strategies on {ctx.llm} × {ctx.verifier} "
        "(once; cached afterwards)",
        lambda p: explorer_problems(
            ctx.store,
            ctx.info,
            ctx.llm,
            ctx.verifier,
            strategies,
            ctx.config,
            ProblemFilter(kind=kind, a=a, b=b, budget=n, search=search),
            progress=p,
        ),
    )
    dis = listing.disagreement
    ids = list(listing.problem_ids)
    st.caption(plain(listing.note) + ".")
    if listing.mean_difference is not None:
        st.caption(
            f"Over all problems, A's share of correct subsets minus B's averages "
            f"{100 * listing.mean_difference:+.1f} points: the gain Compare shows for this cell."
        )
    if not ids and kind == "disagree" and not search.strip():
        st.info("The strategies agree on every problem of this pair: showing all problems.")
        ids = list(dis.all_problem_ids)
    if not ids:
        st.info("No problem matches this filter.", icon=":material/filter_alt_off:")
        state.stop()

    def _problem_label(pid: str) -> str:
        if pid in listing.share_a:
            return f"{pid}  (A {listing.share_a[pid]:.0%}, B {listing.share_b[pid]:.0%} of subsets)"
        return str(pid)

    problem = state.select(
        f"Problem ({len(ids)} listed of {dis.n_problems})",
        ids,
        "p_problem",
        format_func=_problem_label,
    )
    view = state.compute(
        "Cross-fitting the strategies (once; cached afterwards)",
        lambda p: problem_view(
            ctx.store, ctx.info, ctx.llm, ctx.verifier, problem, strategies, ctx.config, progress=p
        ),
    )
    for name, why in view.skipped.items():
        st.warning(
            plain(f"{get_strategy(name).label} could not be fitted: {why}"),
            icon=":material/warning:",
        )
    state.chart(
        state.figure(problem_figure, view),
        "problem_chart",
        "problem",
        ctx.dataset,
        ctx.llm,
        ctx.verifier,
        problem,
    )

    picks = pd.DataFrame(
        {
            "strategy": list(view.labels),
            "picks": list(view.picks),
            "credit": view.credit,
            "q/m term per response": ["" if q != q else f"{q:+.3f}" for q in view.qm],
        }
    )
    st.dataframe(
        picks,
        hide_index=True,
        width="stretch",
        column_config={
            "credit": st.column_config.ProgressColumn(
                help="1 = the pick is correct; fractions: tied clusters share the credit",
                min_value=0.0,
                max_value=1.0,
                format="%.2f",
            ),
            "q/m term per response": st.column_config.TextColumn(
                help="log(q(m-1)/(1-q)) added to every response's weight (KDE WV, and Platt / "
                "isotonic with the q/m term); blank where the strategy has no such term",
            ),
        },
    )
    st.caption(
        f"Gold answer: **{view.gold if view.gold is not None else 'unknown'}** · "
        + (f"level {view.level} · " if view.level is not None else "")
        + (f"{view.subject} · " if view.subject else "")
        + f"{len(view.answers)} distinct answers from {int(view.count.sum())} responses · "
        f"weights from fold {view.fold + 1} of {view.k}, fitted on {view.n_calib} other problems"
    )
    if view.text:
        with st.expander("Problem text"):
            st.write(view.text)
    with st.expander("Answer clusters (table)"):
        st.dataframe(view.to_frame(), hide_index=True, width="stretch")
    with st.expander(f"Problems where the strategies disagree ({len(dis.problem_ids)})"):
        frame = dis.to_frame()
        st.caption(
            "Credit of each strategy (1 = correct pick) over all responses: "
            + ", ".join(short_name(s) for s in dis.strategies)
        )
        st.dataframe(frame, hide_index=True, width="stretch")


state.page_body(_body)
