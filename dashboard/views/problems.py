"""Problem explorer: one problem's answer clusters and how each strategy votes on them."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.info import disagreement_problems, explorer_strategies, problem_view
from core.methods import get_strategy, short_name
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

c1, c2 = st.columns([2, 1])
strategies = state.multiselect(
    "Strategies",
    list(explorer_strategies()),
    "p_strategies",
    default=DEFAULT,
    where=c1,
    format_func=lambda s: get_strategy(s).label,
)
only = state.remembered(
    c2.toggle, "Only problems where the strategies disagree", "p_only_disagree", True
)
if not strategies:
    st.info("Choose at least one strategy.")
    st.stop()

dis = state.compute(
    f"Cross-fitting {len(strategies)} strategies on {ctx.llm} × {ctx.verifier} "
    "(once; cached afterwards)",
    lambda p: disagreement_problems(
        ctx.store, ctx.info, ctx.llm, ctx.verifier, strategies, ctx.config, progress=p
    ),
)
ids = list(dis.problem_ids) if only else list(dis.all_problem_ids)
if not ids:
    st.info("The strategies agree on every problem of this pair: showing all problems.")
    ids = list(dis.all_problem_ids)
problem = state.select(
    f"Problem ({len(ids)} of {dis.n_problems}; strategies disagree on {len(dis.problem_ids)})",
    ids,
    "p_problem",
)
view = state.compute(
    "Cross-fitting the strategies (once; cached afterwards)",
    lambda p: problem_view(
        ctx.store, ctx.info, ctx.llm, ctx.verifier, problem, strategies, ctx.config, progress=p
    ),
)
for name, why in view.skipped.items():
    st.warning(
        plain(f"{get_strategy(name).label} could not be fitted: {why}"), icon=":material/warning:"
    )
state.chart(
    problem_figure(view), "problem_chart", "problem", ctx.dataset, ctx.llm, ctx.verifier, problem
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
