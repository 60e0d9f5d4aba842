"""Weight functions: w(score) of one pair with its band and the score densities, or the
weights of every pair as small multiples."""

from __future__ import annotations

import streamlit as st

from core.info import weight_grid_view, weight_view
from core.methods import get_strategy, weight_strategies
from dashboard import state
from dashboard.figures import (
    WEIGHT_AXES,
    issue_notes,
    offset_figure,
    weight_facts,
    weight_figure,
    weight_grid_figure,
)

BANDWIDTHS = ["scott", "silverman", 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0]

st.title("Weight functions")
st.caption(
    "How much each response's verifier score counts for its answer. Where w(s) < 0 a "
    "response counts *against* the answer it gives: the calibrated weights of Theorem 3.2 "
    "are negative wherever correct responses are rarer than incorrect ones."
)
ctx = state.page_context(score_controls_here=False)


def _body() -> None:  # the page's controls and results: `state.page_body`
    # no empty fourth column: the calibrator's name was cut ("KDE WV (Th") at 1000 px
    c1, c2, c3 = st.columns([1.1, 1.5, 1.6])
    mode = state.remembered(
        c1.radio,
        "Show",
        "weights_mode",
        "one pair",
        options=["one pair", "all pairs"],
        horizontal=True,
    )
    kind = state.select(
        "Calibrator",
        list(weight_strategies()),
        "weights_kind",
        "kde_wv",
        where=c2,
        format_func=lambda s: get_strategy(s).label,
    )
    strategy = get_strategy(kind)
    bandwidth = "scott"
    if "bandwidth" in strategy.uses:
        bandwidth = state.remembered(
            c3.select_slider,
            "KDE bandwidth (logit units)",
            "weights_bandwidth",
            "scott",
            valid=lambda v: v in BANDWIDTHS,
            options=BANDWIDTHS,
            help="Scott's or Silverman's rule, or a fixed bandwidth. It shapes the KDE weights "
            "and the class densities drawn under the weights.",
        )
    s1, s2, s3 = st.columns([1.6, 1.3, 1.4])
    transform, orientation = state.score_controls(s1, s2)
    axis = state.remembered(
        s3.radio,
        "Score axis",
        "weights_axis",
        "score",
        valid=lambda v: v in WEIGHT_AXES,
        options=list(WEIGHT_AXES),
        format_func={"score": "score s", "logit": "logit(s)", "raw": "raw score"}.get,
        horizontal=True,
        help="'raw score' shows the imported values (tokens, raw reward) under the weights.",
    )
    config = ctx.config.with_(bandwidth=bandwidth, transform=transform, orientation=orientation)
    other = "none" if config.calibration == "labels" else "labels"
    overlay = state.remembered(
        st.toggle,
        "Overlay the label-free fit" if other == "none" else "Overlay the labelled fit",
        "weights_overlay",
        False,
        help="The same calibrator fitted without any correctness label: EM infers which answer "
        "of each problem is correct from the answers and scores alone (fitted on every problem, "
        "since no label is read). Where the two curves part, labels still matter.",
    )

    if mode == "all pairs":
        n_panels = len(ctx.info.llms) * len(ctx.info.verifiers)
        state.confirm_big(
            "weight_grid", f"{n_panels} weight functions", n_panels, (ctx.dataset, kind, config)
        )
        grid = state.compute(
            f"Fitting {strategy.label} weights of every pair (once; cached afterwards)",
            lambda p: weight_grid_view(ctx.store, ctx.info, kind, config, progress=p),
        )
        state.chart(
            state.figure(weight_grid_figure, grid),
            "weight_grid_chart",
            "weights",
            ctx.dataset,
            kind,
        )
        failed = [p for p in grid.panels if p.error]
        if failed:
            st.caption(
                "Pairs that could not be fitted: "
                + "; ".join(f"{p.llm} × {p.verifier} ({p.error})" for p in failed)
            )
        state.stop()

    view = state.compute(
        f"Fitting {strategy.label} weights of {ctx.llm} × {ctx.verifier} with "
        f"{config.weight_boot} bootstrap refits (once; cached afterwards)",
        lambda p: weight_view(
            ctx.store,
            ctx.info,
            ctx.llm,
            ctx.verifier,
            kind,
            config,
            overlay=other if overlay else None,
            progress=p,
        ),
    )
    space = strategy.offset
    if space is not None:
        lo, hi = space.slider_range()
        o1, o2 = st.columns([1.2, 3])
        manual = state.remembered(
            o1.toggle,
            "Set b by hand",
            "weights_manual_b",
            False,
            help="The fitted b maximises calibration accuracy at N = "
            f"{config.params.offset_budget}. Move it to see how the negative region, and the "
            "share of responses counted against their answer, change.",
        )
        if manual:
            fitted_b = round(view.b_fitted if view.b_fitted is not None else (lo + hi) / 2, 2)
            b = state.remembered(
                o2.slider,
                f"offset b ({space.formula})",
                f"weights_b_{kind}",
                min(max(fitted_b, lo), hi),
                valid=lambda v: isinstance(v, float) and lo <= v <= hi,
                min_value=lo,
                max_value=hi,
                step=0.01,
            )
            view = view.with_offset(b)
            # what the search saw: calibration accuracy against b, the fitted b marked
            state.chart(
                state.figure(offset_figure, view),
                "offset_chart",
                "offset",
                ctx.dataset,
                ctx.llm,
                kind,
                where=o2,
            )

    state.chart(
        state.figure(weight_figure, view, axis),
        "weight_chart",
        "weights",
        ctx.dataset,
        ctx.llm,
        ctx.verifier,
        kind,
    )
    st.caption(" · ".join(weight_facts(view)))
    for warn, note in issue_notes(view.issues):
        if warn:
            st.warning(note, icon=":material/warning:")
        else:
            st.caption(note)


state.page_body(_body)
