"""Combine signals: weights from several verifiers (or other signals) of one LLM at once."""

from __future__ import annotations

import streamlit as st

from core.info import combine_obstacle, combine_view
from dashboard import state
from dashboard.figures import combine_figure, issue_lines
from dashboard.text import plain

st.title("Combine signals")
st.caption(
    "Several per-response signals of the sidebar's LLM (verifiers, response length...) "
    "combined into one weight, against each signal alone and majority vote. Every labelled "
    "weight is fitted on other problems (K-fold cross-fitting); the two label-free "
    "combiners (a posterior vote fitted by EM over the latent correct answer, and "
    "Weaver-style weak supervision of thresholded votes) read no correctness label, so "
    "they are fitted on every problem. All curves use the same random subsets."
)
ctx = state.page_context()
state.simulated_banner(ctx)
state.voting_banner(ctx)


def _body() -> None:  # the page's controls and results: `state.page_body`
    state.reset_on_dataset_change("combine", ["m_verifiers"], ctx.info)
    others = [v for v in ctx.info.verifiers if v != ctx.verifier]
    verifiers = state.multiselect(
        f"Signals of {plain(ctx.llm)} (at least two)",
        ctx.info.verifiers,
        "m_verifiers",
        default=[ctx.verifier, *others[:1]],
        max_selections=7,
        help="Each verifier of the dataset is one signal; all must score the same responses.",
    )
    obstacle = combine_obstacle(ctx.store, ctx.info, ctx.llm, verifiers, ctx.config)
    if obstacle is not None:
        st.info(plain(obstacle), icon=":material/info:")
        state.stop()

    view = state.compute(
        f"Cross-fitting {len(verifiers)} signals and 4 combiners for {ctx.llm} "
        "(once; cached afterwards)",
        lambda p: combine_view(ctx.store, ctx.info, ctx.llm, verifiers, ctx.config, progress=p),
    )
    state.chart(state.figure(combine_figure, view), "combine_chart", "combine", ctx.dataset)
    for note in issue_lines(view.issues):
        st.warning(note, icon=":material/warning:")
    st.markdown(
        "- **Each signal alone**: KDE WV on that signal, log f₁(s)/f₀(s) plus the "
        "q/m term of Theorem 3.2.\n"
        "- **Sum of per-signal LLRs**: the per-signal log likelihood ratios added up. "
        "It is the exact joint log likelihood ratio when the signals are conditionally "
        "independent given correctness; correlated signals count the same evidence twice.\n"
        "- **Logistic over signals**: a logistic regression of correctness on the signals' "
        "logits; its log-odds minus the base rate's is the weight. It can learn that two "
        "signals say the same thing.\n"
        "- **Label-free posterior vote**: no correctness label read. EM infers which answer "
        "of each problem is correct from the answers and all signals at once (one density "
        "pair per signal), then votes with the posterior vote's weights and size term.\n"
        "- **Weak supervision (Weaver-style)**: no label read either. Each signal becomes a "
        "vote (above its median or not) and a latent-class model of the votes gives each "
        "response a log likelihood ratio; it ignores which answers agree.\n\n"
        "The two labelled combiners add the q/m term with q from their own P(correct | "
        "signals)."
    )
    st.dataframe(view.display_frame(), hide_index=True, width="stretch")
    st.caption(
        f"Accuracy in % [{view.level:.0%} bootstrap interval over {view.n_problems} problems]."
    )


state.page_body(_body)
