"""Budget curves: accuracy against the number of samples per problem."""

from __future__ import annotations

import streamlit as st

from core.info import MAX_OVERLAY, PairRef, budget_view, overlay_view, pair_ref_label
from core.methods import get_strategy, strategy_names
from dashboard import state
from dashboard.figures import budget_figure, efficiency_sentence, issue_lines, overlay_figure
from dashboard.text import plain

DEFAULT = [
    "majority",
    "best_of_n",
    "vanilla_wv",
    "logit_wv",
    "kde_wv",
    "posterior_vote",
    "bayes_optimal",
    "pass_at_n",
]

st.title("Budget curves")
st.caption(
    "Accuracy at N samples per problem: the expectation over random size-N subsets of each "
    "problem's responses, with weights fitted on other problems (K-fold cross-fitting; "
    "with label-free calibration, on every problem, since no label is read). The same "
    "subsets serve every strategy."
)
ctx = state.page_context()
state.voting_banner(ctx)


def _body() -> None:  # the page's controls and results: `state.page_body`
    names = strategy_names(simulated=ctx.info.has_truth)
    pair_names = {f"{m} × {v}": (m, v) for m, v in ctx.info.pairs}

    layout = state.remembered(
        st.radio,
        "Layout",
        "b_layout",
        "panels",
        valid=lambda v: v in ("panels", "overlay"),
        options=["panels", "overlay"],
        format_func={
            "panels": "one panel per pair",
            "overlay": "pairs of any dataset on one chart",
        }.get,
        horizontal=True,
    )
    if layout == "overlay":
        # pairs of every dataset in the store (e.g. AIME 2024 against AIME 2025)
        infos = ctx.store.list_datasets()
        refs = {
            pair_ref_label(PairRef(i.name, m, v), i.simulated): PairRef(i.name, m, v)
            for i in sorted(infos, key=lambda i: i.name != ctx.dataset)
            for m, v in i.pairs
        }
        own = pair_ref_label(PairRef(ctx.dataset, ctx.llm, ctx.verifier), ctx.info.simulated)
        picked = state.multiselect(
            f"Pairs (up to {MAX_OVERLAY}, any dataset)",
            list(refs),
            "b_overlay",
            default=[own],
            max_selections=MAX_OVERLAY,
        )
        over_strategies = state.multiselect(
            "Strategies",
            names,
            "b_overlay_strategies",
            default=["majority", "logit_wv"],
            format_func=lambda s: get_strategy(s).label,
        )
        if not picked or not over_strategies:
            st.info("Choose at least one pair and one strategy.")
            state.stop()
        over = state.compute(
            "Cross-fitting and evaluating (once; cached afterwards)",
            lambda p: overlay_view(
                ctx.store, [refs[x] for x in picked], over_strategies, ctx.config, progress=p
            ),
        )
        state.chart(
            state.figure(overlay_figure, over), "overlay_chart", "budget_overlay", *over.pair_labels
        )
        for note in issue_lines(over.issues):
            st.warning(note, icon=":material/warning:")
        state.stop()

    chosen = state.multiselect(
        "Pairs (LLM × verifier)",
        list(pair_names),
        "b_pairs",
        default=[f"{ctx.llm} × {ctx.verifier}"],
        max_selections=6,
    )
    strategies = state.multiselect(
        "Strategies",
        names,
        "b_strategies",
        default=[s for s in DEFAULT if s in names],
        format_func=lambda s: get_strategy(s).label,
    )
    c3, c4, c5, c6 = st.columns([1.2, 1.2, 0.7, 0.9])
    eff_a = state.select(
        "Efficiency of",
        names,
        "b_eff_a",
        "logit_wv",
        where=c3,
        format_func=lambda s: get_strategy(s).label,
    )
    eff_b = state.select(
        "against",
        names,
        "b_eff_b",
        "vanilla_wv",
        where=c4,
        format_func=lambda s: get_strategy(s).label,
    )
    budgets = state.approx_budgets(ctx.info, [pair_names[c][0] for c in chosen])
    ref = state.select("at budget N", budgets, "b_ref", budgets[-1], where=c5)
    x_axis = state.select(
        "x-axis",
        ["samples", "tokens", "flops"],
        "b_axis",
        "samples",
        where=c6,
        format_func=lambda x: "FLOPs" if x == "flops" else x,
        help="tokens: the expected generated tokens per problem of N responses; FLOPs: 2 x "
        "parameters x tokens (pairs without token counts or parameters stay in samples)",
    )
    m1, m2 = st.columns([1, 2])
    mode = state.remembered(
        m1.radio,
        "Show",
        "b_mode",
        "accuracy",
        valid=lambda v: v in ("accuracy", "gain"),
        options=["accuracy", "gain"],
        format_func={"accuracy": "accuracy", "gain": "gain over a baseline"}.get,
        horizontal=True,
    )
    baseline = None
    if mode == "gain":
        baseline = state.select(
            "Baseline",
            names,
            "b_baseline",
            "majority",
            where=m2,
            format_func=lambda s: get_strategy(s).label,
            help="Each strategy's accuracy minus the baseline's at every N, with a paired 95% "
            "bootstrap band over problems (the same problems and subsets for both).",
        )
    params: dict[str, float] = {}
    if x_axis == "flops":
        params = state.llm_params(ctx.info.llms)

    if not chosen or not strategies:
        st.info("Choose at least one pair and one strategy.")
        state.stop()

    view = state.compute(
        "Cross-fitting and evaluating (once; cached afterwards)",
        lambda p: budget_view(
            ctx.store,
            ctx.info,
            [pair_names[x] for x in chosen],
            strategies,
            ctx.config,
            efficiency=(eff_a, eff_b),
            ref_budget=int(ref),
            baseline=baseline,
            progress=p,
        ),
    )
    state.chart(
        state.figure(budget_figure, view, x_axis, params, mode=mode, highlight=(eff_a, eff_b)),
        "budget_chart",
        "budget",
        mode,
        ctx.dataset,
        drill=state.Drill(ctx.info, view.pairs, view.strategies, baseline or "majority"),
    )
    if x_axis != "samples" and any(t is None for t in view.tokens):
        st.info("Some pairs have no token counts: their panels stay in samples.")
    if x_axis == "flops" and any(m not in params for m, _ in view.pairs):
        st.info("LLMs without a parameter count stay in samples.")
    for note in issue_lines(view.issues):
        st.warning(note, icon=":material/warning:")
    for e in view.efficiencies:
        st.caption(plain(f"{e.llm} × {e.verifier}: {efficiency_sentence(e)} ({e.result.reason})."))
    if all(view.from_cache):
        st.caption("Curves from the result cache.")


state.page_body(_body)
