"""core.info: what each dashboard page shows, checked on a small simulated store."""

from __future__ import annotations

import io
import math
import re
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core import info as V
from core import reports as R
from core.cli import DEMO_NAME, build_demo
from core.evaluation import (
    EvalConfig,
    accuracy_curves,
    crossfit_strategies,
    evaluate,
    fit_strategy,
    kfold,
    load_pair,
    make_subsets,
    pair_curves,
    response_weights,
)
from core.evaluation.stats import curve_cis, efficiency_ratio, paired_difference_cis
from core.evaluation.weightfits import WEIGHT_GRID, weight_fit
from core.importers import import_path
from core.info.problems import _explorer_data, _full_set_picks
from core.methods import (
    CalibrationError,
    StrategyParams,
    default_strategies,
    get_strategy,
    short_name,
    weight_strategies,
)
from core.store import DatasetInfo, Store
from core.studies.transfer import transfer_inputs
from core.synth.examples import EXAMPLE_FILES, EXAMPLES_DIR
from core.types import PairData

LLM, VER = "sim-llm-C", "sim-qwen-orm"
STRATS = ("majority", "best_of_n", "vanilla_wv", "logit_wv", "kde_wv")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    path = tmp_path_factory.mktemp("views") / "v.duckdb"
    s = Store(path)
    build_demo(s, n_problems=40, n_samples=8)
    import_path(s, EXAMPLES_DIR / EXAMPLE_FILES["long-csv"], name="example")
    try:
        yield s
    finally:
        s.close()


@pytest.fixture(scope="module")
def info(demo: Store) -> DatasetInfo:
    return demo.get_dataset(DEMO_NAME)


SETTINGS = EvalConfig(n_subsets=20, n_boot=200)


def wcfg(n_boot: int, **changes: object) -> EvalConfig:
    """The weight pages' config: `n_boot` bootstrap refits of the weight band."""
    return EvalConfig(weight_boot=n_boot).with_(**changes)


# ---- helpers -------------------------------------------------------------------------


def test_negative_intervals_are_the_runs_below_zero() -> None:
    grid = np.linspace(0, 1, 11)
    w = np.array([-1, -1, 0, 1, 1, -2, -2, -2, 3, 3, -1], dtype=float)
    got = V.negative_intervals(grid, w)
    np.testing.assert_allclose(got, [(0.0, 0.1), (0.5, 0.7), (1.0, 1.0)])
    assert V.negative_intervals(grid, np.ones(11)) == ()


def test_dataset_label_marks_simulated_data_once() -> None:
    assert V.dataset_label("mine", True) == "mine (simulated)"
    assert V.dataset_label("demo (simulated)", True) == "demo (simulated)"
    assert V.dataset_label("real", False) == "real"


def test_curve_strategies_share_the_cli_default_set() -> None:
    defaults = default_strategies()
    assert V.curve_strategies(["logit_wv", "majority"]) == defaults
    full = V.curve_strategies(["platt_wv"])
    assert "platt_wv" in full and set(defaults) <= set(full)
    with pytest.raises(Exception, match="unknown strategy"):
        V.curve_strategies(["nope"])


# ---- weight functions ----------------------------------------------------------------


@pytest.mark.parametrize("kind", list(weight_strategies()))
def test_weight_view_band_holds_the_fitted_curve(demo: Store, info: DatasetInfo, kind: str) -> None:
    v = V.weight_view(demo, info, LLM, VER, kind, wcfg(12))
    assert v.simulated and v.kind == kind
    assert np.all(v.band_low <= v.w_fitted + 1e-12)
    assert np.all(v.w_fitted <= v.band_high + 1e-12)
    np.testing.assert_array_equal(v.w, v.w_fitted)
    # the curve is the fit on every problem of the pair
    pair = demo.load_pair(info, LLM, VER)
    strat = get_strategy(kind)
    fw = fit_strategy(strat, pair, StrategyParams())
    np.testing.assert_allclose(v.w_fitted, strat.weights(fw, v.grid))
    # negative intervals and share describe the shown curve
    assert v.has_negative == bool(v.negative)
    for lo, hi in v.negative:
        sel = (v.grid >= lo) & (v.grid <= hi)
        assert np.all(v.w[sel] < 0)
    assert v.share_negative == pytest.approx(np.mean(response_weights(fw, pair) < 0))
    # histogram: every response once, on both axes
    assert v.hist_correct.sum() + v.hist_incorrect.sum() == v.n_responses == pair.n_responses
    assert v.hist_correct_logit.sum() + v.hist_incorrect_logit.sum() == v.n_responses
    assert v.hist_correct.sum() == v.n_correct


def test_weight_view_densities_are_densities_of_the_score(demo: Store, info: DatasetInfo) -> None:
    v = V.weight_view(demo, info, LLM, VER, "kde_wv", wcfg(5))
    assert v.f1 is not None and v.f0 is not None
    assert np.all(v.f1 > 0) and np.all(v.f0 > 0)
    for f in (v.f1, v.f0):
        mass = float(np.sum((f[1:] + f[:-1]) / 2 * np.diff(v.grid)))
        assert 0.8 < mass < 1.1  # mass beyond [0.001, 0.999] is not on the grid
    # a larger bandwidth gives smoother densities (and other KDE weights)
    wide = V.weight_view(demo, info, LLM, VER, "kde_wv", wcfg(5, bandwidth=1.0))
    assert wide.bandwidth == pytest.approx(1.0)
    assert not np.allclose(wide.w, v.w)


def test_weight_view_comes_from_the_result_cache_the_second_time(
    demo: Store, info: DatasetInfo
) -> None:
    cfg = wcfg(6, boot_seed=3)
    a = V.weight_view(demo, info, LLM, "sim-grm-orm", "isotonic_wv", cfg)
    b = V.weight_view(demo, info, LLM, "sim-grm-orm", "isotonic_wv", cfg)
    assert not a.from_cache and b.from_cache
    np.testing.assert_array_equal(a.band_low, b.band_low)
    np.testing.assert_array_equal(a.w, b.w)


@pytest.mark.parametrize("kind", ["linear_wv", "logit_wv"])
def test_offset_by_hand_moves_the_curve_and_the_negative_share(
    demo: Store, info: DatasetInfo, kind: str
) -> None:
    cfg = wcfg(20)
    v = V.weight_view(demo, info, LLM, VER, kind, cfg)
    assert v.b is not None and v.b == v.b_fitted
    assert v.b_low is not None and v.b_high is not None
    assert v.b_low <= v.b_fitted <= v.b_high
    # the bootstrap's offset search on all problems == the fitted search
    fit, _ = weight_fit(demo, info, LLM, VER, kind, cfg)
    assert float(fit["fitted_b"]) == float(fit["b_fitted"]) == v.b_fitted
    space = get_strategy(kind).offset
    assert space is not None
    lo, hi = space.slider_range()
    low_b = v.with_offset(lo + 0.05)
    high_b = v.with_offset(hi - 0.05)
    assert low_b.manual_offset and low_b.b == pytest.approx(lo + 0.05)
    assert low_b.share_negative < high_b.share_negative
    assert np.all(low_b.w > high_b.w)
    # w(b) = 0 exactly at s = b
    assert float(np.interp(0.5, v.grid, v.with_offset(0.5).w)) == pytest.approx(0.0, abs=1e-2)
    # the band is that of the fitted curve; back to the fitted b restores the view
    np.testing.assert_array_equal(low_b.band_low, v.band_low)
    back = low_b.with_offset(None)
    np.testing.assert_array_equal(back.w, v.w)
    assert back.share_negative == pytest.approx(v.share_negative)
    same = V.weight_view(demo, info, LLM, VER, kind, cfg, offset=lo + 0.05)
    np.testing.assert_array_equal(same.w, low_b.w)
    with pytest.raises(V.ViewError, match="must lie in"):
        v.with_offset(hi + 1.0)


def test_offset_is_refused_where_there_is_none(demo: Store, info: DatasetInfo) -> None:
    with pytest.raises(V.ViewError, match="no offset"):
        V.weight_view(demo, info, LLM, VER, "kde_wv", wcfg(5), offset=0.3)
    with pytest.raises(V.ViewError, match="no weight function"):
        V.weight_view(demo, info, LLM, VER, "kde_wv_oracle", EvalConfig())
    with pytest.raises(V.ViewError, match="no pair"):
        V.weight_view(demo, info, "nobody", VER, "kde_wv", EvalConfig())


@pytest.mark.parametrize("kind", ["platt_wv", "isotonic_wv"])
def test_bootstrap_refits_give_the_band(demo: Store, info: DatasetInfo, kind: str) -> None:
    """The band refits the registry entry on problems resampled with replacement (the
    fit without offset tuning gives the same curve as the fitted one), widened to hold the
    curve fitted on all problems."""
    pair = demo.load_pair(info, LLM, VER)
    p = StrategyParams()
    strat = get_strategy(kind)
    full = strat.weights(fit_strategy(strat, pair, p), WEIGHT_GRID)
    np.testing.assert_allclose(strat.weights(strat.fit(pair, p), WEIGHT_GRID), full)
    cfg = wcfg(8, boot_seed=5)
    v = V.weight_view(demo, info, LLM, VER, kind, cfg)
    np.testing.assert_allclose(v.w_fitted, full)
    rng = np.random.default_rng(cfg.boot_seed)
    rows = []
    for _ in range(cfg.weight_boot):
        idx = rng.integers(0, pair.n_problems, size=pair.n_problems)
        try:
            rows.append(strat.weights(strat.fit(pair.select(idx), p), WEIGHT_GRID))
        except CalibrationError:
            continue
    alpha = (1 - cfg.level) / 2
    low, high = np.quantile(np.vstack(rows), [alpha, 1 - alpha], axis=0)
    np.testing.assert_allclose(v.band_low, np.minimum(low, full))
    np.testing.assert_allclose(v.band_high, np.maximum(high, full))
    assert v.n_failed == cfg.weight_boot - len(rows)


def test_step_reduction_changes_the_scores(demo: Store, info: DatasetInfo) -> None:
    a = V.weight_view(demo, info, LLM, "sim-shepherd-min", "kde_wv", wcfg(5))
    b = V.weight_view(demo, info, LLM, "sim-shepherd-min", "kde_wv", wcfg(5, reduction="max"))
    assert b.reduction == "max"
    assert not np.array_equal(a.hist_correct, b.hist_correct)


def test_weight_grid_has_one_panel_per_pair(demo: Store, info: DatasetInfo) -> None:
    progress: list[tuple[str, int, int]] = []
    cfg = EvalConfig()
    g = V.weight_grid_view(demo, info, "kde_wv", cfg, progress=lambda *a: progress.append(a))
    assert len(g.panels) == len(info.llms) * len(info.verifiers)
    assert progress[-1][1] == progress[-1][2] == len(g.panels)
    one = V.weight_view(demo, info, LLM, VER, "kde_wv", wcfg(5))
    np.testing.assert_allclose(g.panel(LLM, VER).w, one.w_fitted)
    again = V.weight_grid_view(demo, info, "kde_wv", cfg)
    assert again.n_cached == len(g.panels)
    lg = V.weight_grid_view(demo, info, "logit_wv", cfg, llms=[LLM], verifiers=[VER])
    assert lg.panels[0].b == pytest.approx(V.weight_view(demo, info, LLM, VER, "logit_wv", cfg).b)


# ---- budget curves and comparisons ---------------------------------------------------


def test_budget_view_curves_intervals_and_efficiency(demo: Store, info: DatasetInfo) -> None:
    pairs = [(LLM, VER), ("sim-llm-E", "sim-shepherd-min")]
    strategies = ["majority", "vanilla_wv", "logit_wv", "kde_wv_oracle"]
    v = V.budget_view(demo, info, pairs, strategies, SETTINGS)
    assert len(v.curves) == len(pairs) * len(strategies)
    assert v.budgets == (1, 2, 4, 8)
    assert v.issues == ()
    for c in v.curves:
        assert np.all(c.low <= c.accuracy + 1e-12) and np.all(c.accuracy <= c.high + 1e-12)
        assert c.oracle == (c.strategy == "kde_wv_oracle")
    for e, (m, ver) in zip(v.efficiencies, pairs, strict=True):
        res = pair_curves(demo, info, m, ver, V.curve_strategies(strategies), SETTINGS)
        acc = res.curves.mean()
        ref = max(res.curves.budgets)
        want = efficiency_ratio(
            res.curves.budgets,
            acc[res.curves.index("logit_wv")],
            float(acc[res.curves.index("vanilla_wv"), -1]),
            ref,
        )
        r = e.result
        assert not e.missing
        assert (r.ratio, r.budget, r.reached) == (want.ratio, want.budget, want.reached) or (
            np.isnan(r.ratio) and np.isnan(want.ratio)
        )
        # the ratio comes with its bootstrap interval, which holds the estimate
        assert r.has_interval and r.level == SETTINGS.level and 0 <= r.share_reached <= 1
        if r.reached:
            assert r.low <= r.ratio <= r.high
        assert re.fullmatch(
            r"logit WV (reaches vanilla WV@8 with [0-9.]+ samples?, \d+% of its budget"
            r"|does not reach .*)"
            r" \(95% CI(: not reached in most resamples| \d+% to (\d+%|∞: not reached in "
            r"some resamples))\)"
            r"(; in tokens, [0-9,]+ instead of [0-9,]+ per problem)?",
            R.efficiency_sentence(e),
        )
    again = V.budget_view(demo, info, pairs, strategies, SETTINGS)
    assert all(again.from_cache)


def test_efficiency_text_reads_like_the_paper() -> None:
    from core.evaluation.stats import EfficiencyResult

    r = EfficiencyResult(
        ratio=14.2 / 64, budget=14.2, target=0.6, ref_budget=64, reached=True, reason=""
    )
    assert R.efficiency_text("logit_wv", "vanilla_wv", r) == (
        "logit WV reaches vanilla WV@64 with 14 samples, 22% of its budget"
    )
    with_ci = replace(r, low=0.15, high=math.inf, level=0.95, share_reached=0.9)
    assert R.efficiency_text("logit_wv", "vanilla_wv", with_ci) == (
        "logit WV reaches vanilla WV@64 with 14 samples, 22% of its budget "
        "(95% CI 15% to ∞: not reached in some resamples)"
    )
    never = replace(with_ci, low=math.inf)
    assert R.efficiency_text("logit_wv", "vanilla_wv", never).endswith(
        "(95% CI: not reached in most resamples)"
    )


def test_compare_view_gains_are_paired_differences(demo: Store, info: DatasetInfo) -> None:
    pairs = [(LLM, VER), (LLM, "sim-grm-orm")]
    strategies = ["majority", "vanilla_wv", "logit_wv", "pass_at_n"]
    cfg = SETTINGS.with_(n_boot=500)
    v = V.compare_view(demo, info, pairs, strategies, 4, "majority", cfg)
    assert v.accuracy.shape == (2, 4) and v.budget == 4 and v.issues == ()
    j0 = strategies.index("majority")
    assert np.all(v.gain[:, j0] == 0) and np.all(v.gain_low[:, j0] == 0)
    np.testing.assert_allclose(v.gain, v.accuracy - v.accuracy[:, [j0]], atol=1e-12)
    assert np.all((v.gain_low <= v.gain + 1e-12) & (v.gain <= v.gain_high + 1e-12))
    assert v.oracle == (False, False, False, True)
    # the same per-problem values and resamples as core.evaluation.stats on the curves
    res = pair_curves(demo, info, LLM, VER, V.curve_strategies(strategies), cfg)
    b = res.curves.budgets.index(4)
    a = res.curves.per_problem[res.curves.index("logit_wv"), b]
    base = res.curves.per_problem[res.curves.index("majority"), b]
    ci = paired_difference_cis(a, base, n_boot=500, level=0.95, seed=0)
    j = strategies.index("logit_wv")
    assert v.gain_low[0, j] == pytest.approx(float(ci.low))
    assert v.gain_high[0, j] == pytest.approx(float(ci.high))
    # a budget between evaluated ones falls back to the one below, with an issue
    six = V.compare_view(demo, info, pairs, strategies, 6, "majority", SETTINGS)
    assert six.budget == 4
    (issue,) = six.issues
    assert issue == V.Issue("budget_not_evaluated", detail="6", value=4.0)
    assert "N = 6 is not among the evaluated budgets" in R.issue_text(issue)


def test_compare_exports(demo: Store, info: DatasetInfo) -> None:
    v = V.compare_view(demo, info, [(LLM, VER)], ["majority", "logit_wv"], 8, "majority", SETTINGS)
    df = pd.read_csv(io.StringIO(v.to_csv()))
    assert list(df["strategy"]) == ["majority", "logit_wv"]
    assert df["accuracy"].iloc[1] == pytest.approx(v.accuracy[0, 1], rel=1e-5)
    assert bool(df["simulated"].iloc[0])
    tex = R.compare_latex(v)
    assert r"\begin{tabular}{lrr}" in tex and r"\toprule" in tex and r"\bottomrule" in tex
    assert "sim-llm-C / sim-qwen-orm" in tex and "Simulated data" in tex
    assert f"{100 * v.accuracy[0, 1]:.1f} ({100 * v.gain[0, 1]:+.1f}" in tex
    shown = v.display_frame()
    assert shown.shape[0] == 2 and shown["accuracy (%)"].iloc[1] == pytest.approx(
        100 * v.accuracy[0, 1]
    )
    # the baseline's own row has no "samples to match" interval (itself at its budget)
    match = shown[next(c for c in shown.columns if c.startswith("samples to match"))]
    assert match.iloc[0] == "(the baseline)" and match.iloc[1] != "(the baseline)"


def test_latex_escapes_special_characters() -> None:
    assert R.latex_escape("a_b & 50% #1") == r"a\_b \& 50\% \#1"


# ---- problem explorer ------------------------------------------------------------------


def test_problem_view_uses_weights_fitted_without_the_problem(
    demo: Store, info: DatasetInfo
) -> None:
    pair = demo.load_pair(info, LLM, VER)
    pid = pair.problem_ids[7]
    v = V.problem_view(demo, info, LLM, VER, pid, STRATS, SETTINGS)
    folds = [f.test for f in kfold(pair.n_problems, SETTINGS.folds, SETTINGS.fold_seed)]
    assert 7 in folds[v.fold] and v.n_calib == pair.n_problems - len(folds[v.fold])
    # the weights equal those of core's cross-fitting (held-out fold)
    ref = crossfit_strategies(pair, list(STRATS), SETTINGS)
    assert 7 in ref.folds[v.fold].test and int(ref.fold_of[7]) == v.fold
    r0, r1 = int(pair.offsets[7]), int(pair.offsets[8])
    for j, s in enumerate(STRATS):
        np.testing.assert_allclose(v.response_weight[j], ref.inputs[s].weight[r0:r1])
    assert int(v.count.sum()) == r1 - r0
    assert list(v.count) == sorted(v.count, reverse=True)
    assert np.all(np.diff(v.count) <= 0)
    assert v.gold is not None and v.simulated
    frame = v.to_frame()
    assert len(frame) == len(v.answers) and "picked by" in frame


def test_problem_picks_give_the_engines_credit_at_full_budget(
    demo: Store, info: DatasetInfo
) -> None:
    """The explorer's vote over all responses credits each problem exactly as the budget
    engine does at N = n (same tie rule, same q/m term)."""
    pair = demo.load_pair(info, LLM, VER)
    n = int(pair.sizes().max())
    ref = crossfit_strategies(pair, list(STRATS), SETTINGS)
    engine = accuracy_curves(pair, ref.inputs, budgets=[n], n_subsets=1)
    data = _explorer_data(demo, info, LLM, VER, STRATS, SETTINGS, None)
    picks = _full_set_picks(data.pair, STRATS, data.inputs)
    for j, s in enumerate(STRATS):
        np.testing.assert_allclose(picks.credit[j], engine.per_problem[engine.index(s), 0])


def test_disagreements_are_the_problems_with_different_picks(
    demo: Store, info: DatasetInfo
) -> None:
    d = V.disagreement_problems(demo, info, LLM, VER, STRATS, SETTINGS)
    assert len(d.all_problem_ids) == d.n_problems == 40
    assert set(d.problem_ids) <= set(d.all_problem_ids)
    assert d.credit.shape == (len(STRATS), len(d.problem_ids))
    listed = set(d.problem_ids)
    for pid in d.all_problem_ids[:15]:
        v = V.problem_view(demo, info, LLM, VER, pid, STRATS, SETTINGS)
        differ = any(not np.array_equal(v.picked[0], v.picked[j]) for j in range(len(STRATS)))
        assert differ == (pid in listed)
    assert list(d.to_frame().columns) == ["problem", *(short_name(s) for s in STRATS)]


def test_problem_view_refuses_oracles_and_unknown_problems(demo: Store, info: DatasetInfo) -> None:
    with pytest.raises(V.ViewError, match="oracle"):
        V.problem_view(demo, info, LLM, VER, "sim-0001", ["kde_wv_oracle"], SETTINGS)
    with pytest.raises(V.ViewError, match="no problem"):
        V.problem_view(demo, info, LLM, VER, "nope", STRATS, SETTINGS)


# ---- several sessions at once --------------------------------------------------------


def test_one_store_serves_several_threads(tmp_path: Path) -> None:
    """Streamlit runs each session in its own thread over one shared Store."""
    s = Store(tmp_path / "c.duckdb")
    build_demo(s, n_problems=20, n_samples=4)
    info = s.get_dataset(DEMO_NAME)
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            ver = ("sim-qwen-orm", "sim-grm-orm")[i % 2]
            V.weight_view(s, info, LLM, ver, "kde_wv", wcfg(4))
            V.compare_view(
                s,
                info,
                [(LLM, ver)],
                ["majority", "kde_wv"],
                4,
                "majority",
                EvalConfig(n_subsets=5, n_boot=50),
            )
            V.problem_view(s, info, LLM, ver, "sim-0003", ["majority", "kde_wv"], EvalConfig())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    s.close()
    assert not errors, errors


def test_curve_config_matches_the_cli_default() -> None:
    """With default settings the dashboard asks for exactly the CLI's default curves, so
    `ttslab curves` fills the dashboard's cache."""
    from core import cli

    assert V.curve_strategies(["majority"]) == default_strategies()
    args = cli.build_parser().parse_args(["curves", "d"])
    assert args.strategy is None  # the CLI's default set: default_strategies()
    assert cli._config(args).key() == EvalConfig().key()


def test_strategies_that_cannot_be_fitted_are_left_out_with_the_reason(demo: Store) -> None:
    """sim-llm-A answers every problem of the example file correctly: no class densities."""
    ex = demo.get_dataset("example")
    pair = ("sim-llm-A", "sim-easy2hard-last")
    b = V.budget_view(
        demo, ex, [pair], ["majority", "kde_wv"], SETTINGS, efficiency=("kde_wv", "majority")
    )
    assert [c.strategy for c in b.curves] == ["majority"]
    issue = b.issues[0]
    assert issue.kind == "unfittable" and issue.strategy == "kde_wv"
    # the example file is tiny: the reader is told so
    assert {i.kind for i in b.issues[1:]} <= {"few_problems", "few_fold_problems"}
    assert "few_problems" in {i.kind for i in b.issues}
    assert issue.where == "sim-llm-A × sim-easy2hard-last" and issue.detail
    text = R.issue_text(issue)
    assert "KDE WV" in text and "could not be fitted" in text
    assert not b.efficiencies[0].result.reached and b.efficiencies[0].missing == "kde_wv"
    assert "could not be fitted" in R.efficiency_sentence(b.efficiencies[0])
    c = V.compare_view(demo, ex, [pair], ["majority", "kde_wv"], 4, "majority", SETTINGS)
    assert np.isnan(c.accuracy[0, 1]) and np.isnan(c.gain[0, 1])
    assert c.issues[0].kind == "unfittable" and "--" in R.compare_latex(c)
    p = V.problem_view(demo, ex, *pair, "sim-0003", ["majority", "kde_wv"], SETTINGS)
    assert p.strategies == ("majority",) and "kde_wv" in p.skipped
    d = V.disagreement_problems(demo, ex, *pair, ["majority", "kde_wv"], SETTINGS)
    assert d.strategies == ("majority",) and d.problem_ids == ()


# ---- transfer, allocation, combined signals ------------------------------------------

BEYOND = EvalConfig(n_subsets=20, n_boot=200, folds=3)


def _transfer_reference(
    store: Store,
    sources: list[V.PairRef],
    targets: list[V.PairRef],
    strategy: str,
    baseline: str,
    budget: int,
    config: EvalConfig,
) -> dict[str, np.ndarray]:
    """The transfer matrix computed directly from its building blocks (no result cache)."""

    def load(r: V.PairRef) -> PairData:
        return load_pair(store, store.get_dataset(r.dataset), r.llm, r.verifier)

    n_s, n_t = len(sources), len(targets)
    out = {k: np.zeros((n_s, n_t)) for k in ("accuracy", "gain", "low", "high")}
    out["baseline_accuracy"] = np.zeros(n_t)
    base = get_strategy(baseline)
    for j, t in enumerate(targets):
        target = load(t)
        b = min(budget, int(target.sizes().max()))
        subsets = make_subsets(target, [b], n_subsets=config.n_subsets, seed=config.subset_seed)
        assert not base.needs_labels
        base_vi = base.vote_inputs(base.fit(target, config.params), target)
        for i, s in enumerate(sources):
            vi = transfer_inputs(load(s), target, strategy, config)
            per = accuracy_curves(
                target, {"base": base_vi, "src": vi}, subsets=subsets
            ).per_problem[:, 0, :]
            d = paired_difference_cis(
                per[1], per[0], n_boot=config.n_boot, level=config.level, seed=config.boot_seed
            )
            out["accuracy"][i, j] = per[1].mean()
            out["baseline_accuracy"][j] = per[0].mean()
            out["gain"][i, j], out["low"][i, j], out["high"][i, j] = d.estimate, d.low, d.high
    return out


def test_transfer_view_cells_equal_the_transfer_matrix(demo: Store) -> None:
    src = [V.PairRef(DEMO_NAME, m, VER) for m in ("sim-llm-B", LLM)]
    tgt = [*src, V.PairRef("example", "sim-llm-B", "sim-grm-orm")]
    view = V.transfer_view(demo, src, tgt, "kde_wv", "majority", 4, BEYOND)
    mat = _transfer_reference(demo, src, tgt, "kde_wv", "majority", 4, BEYOND)
    for ours, theirs in (
        (view.accuracy, mat["accuracy"]),
        (view.gain, mat["gain"]),
        (view.low, mat["low"]),
        (view.high, mat["high"]),
        (view.baseline_accuracy, mat["baseline_accuracy"]),
    ):
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)
    assert view.issues == ()
    assert view.n_cached == 0
    again = V.transfer_view(demo, src, tgt, "kde_wv", "majority", 4, BEYOND)
    assert again.n_cached == 6
    np.testing.assert_array_equal(again.gain, view.gain)
    # labels keep what differs; the simulated demo is flagged, the example file is not
    assert view.source_labels == ("sim-llm-B", LLM)
    assert view.target_labels[-1] == "example / sim-llm-B / sim-grm-orm"
    assert view.target_labels[0] == "demo (simulated) / sim-llm-B / sim-qwen-orm"
    assert view.source_simulated == (True, True) and view.target_simulated[-1] is False
    assert view.diagonal.sum() == 2 and view.shared[:, :2].all()
    frame = view.to_frame()
    assert len(frame) == 6 and frame["gain"].tolist() == view.gain.reshape(-1).tolist()
    assert view.to_csv().splitlines()[0].startswith("calibrated on,evaluated on")
    assert list(view.display_frame()["calibrated on"][:3]) == ["sim-llm-B"] * 3
    with pytest.raises(V.ViewError, match="oracle"):
        V.transfer_view(demo, src, src, "kde_wv_oracle", "majority", 4, BEYOND)


def test_allocation_view_curve_is_the_allocations(demo: Store, info: DatasetInfo) -> None:
    from core.studies.allocation import pair_allocation

    cands = ("majority", "vanilla_wv", "logit_wv", "kde_wv", "pass_at_n")
    view = V.allocation_view(demo, info, LLM, VER, cands, SETTINGS, n_bins=3, seed=1)
    alloc = pair_allocation(
        demo,
        info,
        LLM,
        VER,
        cands[:-1],
        SETTINGS,
        n_bins=3,
        seed=1,
        curve_set=V.curve_strategies(cands),
    )
    np.testing.assert_allclose(view.curve, alloc.curve())
    np.testing.assert_allclose(view.fixed, alloc.fixed_curves())
    np.testing.assert_array_equal(view.choice, alloc.choice)
    assert view.candidates == cands[:-1]
    # pass@N is not a candidate (an oracle)
    # pass@N is not a candidate (an oracle); 3 bins of a 40-problem pair are small
    assert view.issues[0] == V.Issue("not_candidate", strategy="pass_at_n")
    assert "oracle" in R.issue_text(view.issues[0])
    assert [i.kind for i in view.issues[1:]] == ["small_bins"]
    assert "coin flip" in R.issue_text(view.issues[1])
    # every choice comes with its bootstrap support and margin interval
    sp = view.support
    assert sp.support.shape == view.choice.shape
    assert np.all((sp.support > 0) & (sp.support <= 1))
    assert np.all(sp.low <= sp.margin + 1e-12) and np.all(sp.margin <= sp.high + 1e-12)
    assert np.all(sp.margin >= 0)  # the chosen candidate is the best on its problems
    assert np.all(view.curve_low <= view.curve + 1e-12)
    assert np.all(view.curve <= view.curve_high + 1e-12)
    b = len(view.budgets) - 1
    best = view.fixed[view.best_fixed[b], b]
    assert view.fixed[:, b].max() == best
    assert view.gain[b] == pytest.approx(view.curve[b] - best)
    assert view.bin_size.sum() == view.n_problems == 40
    assert np.all(view.score_low[1:] >= view.score_high[:-1])  # bins ordered by score
    table = view.bin_table(view.budgets[-1])
    assert list(table["bin"]) == [1, 2, 3] and list(table["problems"]) == list(view.bin_size)
    weighted = np.average(table["per-bin choice"], weights=table["problems"])
    assert weighted == pytest.approx(100 * view.curve[-1])
    assert len(view.to_frame()) == len(view.budgets) * 3 * 2


def test_combine_view_strategies_and_intervals(demo: Store, info: DatasetInfo) -> None:
    from core.studies.combine import combined_curves, combined_inputs, load_multi

    vs = [VER, "sim-grm-orm"]
    view = V.combine_view(demo, info, LLM, vs, SETTINGS)
    assert view.strategies == (
        "majority",
        *(f"kde_wv[{v}]" for v in vs),
        "sum_llr",
        "logistic",
        "latent_pv",
        "weak_sup",
    )
    assert view.kinds == ("baseline", "single", "single", *["combined"] * 4)
    assert not view.from_cache
    # the same curves computed directly (no result cache)
    mp = load_multi(demo, info, LLM, vs)
    curves = evaluate(mp.base, combined_inputs(mp, SETTINGS), SETTINGS, info.iid)
    ci = curve_cis(curves, n_boot=200)
    np.testing.assert_allclose(view.accuracy, ci.estimate)
    np.testing.assert_allclose(view.low, ci.low)
    assert combined_curves(demo, info, LLM, vs, SETTINGS).from_cache
    again = V.combine_view(demo, info, LLM, vs, SETTINGS)
    assert again.from_cache
    np.testing.assert_array_equal(again.accuracy, view.accuracy)
    singles = view.accuracy[1:3]
    np.testing.assert_allclose(view.gain, view.accuracy - singles.max(axis=0), atol=1e-12)
    assert len(view.to_frame()) == 7 * len(view.budgets)
    with pytest.raises(V.ViewError, match="at least two"):
        V.combine_view(demo, info, LLM, [VER, VER], SETTINGS)


# ---- the explorer's problem lists (drill-down) ----------------------------------------


def test_contrast_lists_the_problems_a_gets_right_and_b_wrong(
    demo: Store, info: DatasetInfo
) -> None:
    """At N = every sample (8 here) each random subset is the whole set, so a problem's
    share of correct subsets is the full-set pick's credit, which the disagreement list
    computes on another path (`_full_set_picks`)."""
    a, b = "best_of_n", "majority"
    seen = {"a_right_b_wrong": 0, "a_wrong_b_right": 0}
    for m, v in info.pairs[:6]:
        dis = V.disagreement_problems(demo, info, m, v, [a, b], SETTINGS)
        ia, ib = dis.strategies.index(a), dis.strategies.index(b)
        for kind, want_a, want_b in (
            ("a_right_b_wrong", True, False),
            ("a_wrong_b_right", False, True),
        ):
            lst = V.explorer_problems(
                demo, info, m, v, [a, b], SETTINGS, V.ProblemFilter(kind, a, b, 8)
            )
            want = {
                p
                for k, p in enumerate(dis.problem_ids)
                if (dis.credit[ia, k] >= 0.5) == want_a and (dis.credit[ib, k] >= 0.5) == want_b
            }
            assert set(lst.problem_ids) == want
            seen[kind] += len(want)
            for p in lst.problem_ids:
                assert (lst.share_a[p] >= 0.5) == want_a and (lst.share_b[p] >= 0.5) == want_b
        # the mean difference over all problems is the Compare cell's gain
        cmp = V.compare_view(demo, info, [(m, v)], [a], 8, b, SETTINGS)
        assert lst.mean_difference == pytest.approx(float(cmp.gain[0, 0]), abs=1e-9)
    assert seen["a_right_b_wrong"] > 0 and seen["a_wrong_b_right"] > 0  # not vacuous


def test_contrast_orders_by_difference_and_refuses_unevaluated_budgets(
    demo: Store, info: DatasetInfo
) -> None:
    m, v = info.llms[1], info.verifiers[1]
    lst = V.explorer_problems(
        demo,
        info,
        m,
        v,
        ["majority"],
        SETTINGS,
        V.ProblemFilter("a_right_b_wrong", "logit_wv", "majority", 4),
    )
    diffs = [lst.share_a[p] - lst.share_b[p] for p in lst.problem_ids]
    assert diffs == sorted(diffs, reverse=True)
    with pytest.raises(V.ViewError, match=r"N = 3 is not an evaluated budget.*1, 2, 4, 8"):
        V.explorer_problems(
            demo,
            info,
            m,
            v,
            ["majority"],
            SETTINGS,
            V.ProblemFilter("a_right_b_wrong", "logit_wv", "majority", 3),
        )
    with pytest.raises(V.ViewError, match="needs strategies A and B"):
        V.ProblemFilter("a_right_b_wrong", "logit_wv")
    with pytest.raises(V.ViewError, match="unknown problem filter"):
        V.ProblemFilter("sideways")


def test_search_finds_problems_by_text(demo: Store, info: DatasetInfo) -> None:
    m, v = info.llms[0], info.verifiers[0]
    probs = demo.problems(info)
    target = probs.iloc[7]
    word = str(target["text"]).split("(")[1].split(",")[0]  # its subject, e.g. "Algebra"
    want = {
        str(p)
        for p, t in zip(probs["problem_id"], probs["text"], strict=True)
        if word.casefold() in str(t).casefold()
    }
    lst = V.explorer_problems(
        demo, info, m, v, ["majority"], SETTINGS, V.ProblemFilter("all", search=word.upper())
    )
    assert set(lst.problem_ids) == want and str(target["problem_id"]) in want
    assert f"contain “{word.upper()}”" in lst.note
    none = V.explorer_problems(
        demo, info, m, v, ["majority"], SETTINGS, V.ProblemFilter("all", search="zzz no such")
    )
    assert none.problem_ids == ()


def test_a_weight_function_from_few_responses_is_flagged(tmp_path: Path) -> None:
    with Store(tmp_path / "few.duckdb") as s:
        build_demo(s, n_problems=10, n_samples=4)  # 40 responses per pair
        small = s.get_dataset(DEMO_NAME)
        m, v = small.llms[0], small.verifiers[0]
        view = V.weight_view(s, small, m, v, "kde_wv", wcfg(20))
    few = [i for i in view.issues if i.kind == "few_responses"]
    assert len(few) == 1
    n_pos, n_neg = (int(x) for x in few[0].detail.split("/"))
    assert n_pos + n_neg == 40 and few[0].value == min(n_pos, n_neg)
    text = R.issue_text(few[0])
    assert f"only {n_pos} correct and {n_neg} incorrect responses" in text
    assert "hint, not a finding" in text


def test_a_weight_function_from_many_responses_is_not_flagged(
    demo: Store, info: DatasetInfo
) -> None:
    view = V.weight_view(demo, info, info.llms[0], info.verifiers[0], "kde_wv", wcfg(20))
    assert view.n_responses == 320
    # 40 problems x 8 samples: both classes well above 50 for this LLM
    if min(view.n_correct, view.n_responses - view.n_correct) >= 50:
        assert not [i for i in view.issues if i.kind == "few_responses"]
    else:
        assert [i for i in view.issues if i.kind == "few_responses"]


def test_common_budgets_are_those_every_chosen_llm_evaluates(store: Store, tmp_path: Path) -> None:
    from tests.conftest import make_long_frame

    a = make_long_frame(n_problems=5, n_samples=8, llms=("eight",), verifiers=("prm",))
    b = make_long_frame(n_problems=5, n_samples=6, llms=("six",), verifiers=("prm",), seed=1)
    path = tmp_path / "two.csv"
    pd.concat([a, b]).to_csv(path, index=False)
    import_path(store, path, name="two")
    info = store.get_dataset("two")
    # the mean, 7 samples, is neither LLM's budget
    assert V.common_budgets(store, info) == (1, 2, 4)
    assert V.common_budgets(store, info, ["eight"]) == (1, 2, 4, 8)
    assert V.common_budgets(store, info, ["six"]) == (1, 2, 4, 6)
    # and each is a budget the pair's curves hold
    curves = V.budget_view(store, info, [("six", "prm")], ["majority"], SETTINGS)
    assert set(V.common_budgets(store, info, ["six"])) <= set(int(b) for b in curves.budgets)


def test_budget_gains_are_paired_differences_at_every_budget(
    demo: Store, info: DatasetInfo
) -> None:
    pairs = [(info.llms[0], info.verifiers[0]), (info.llms[1], info.verifiers[2])]
    view = V.budget_view(
        demo, info, pairs, ["majority", "logit_wv", "best_of_n"], SETTINGS, baseline="majority"
    )
    assert view.baseline == "majority"
    for m, v in pairs:
        base = view.curve(m, v, "majority")
        for s in ("logit_wv", "best_of_n"):
            c = view.curve(m, v, s)
            assert c.gain is not None and c.gain_low is not None and c.gain_high is not None
            # the mean of the paired differences is the difference of the means
            np.testing.assert_allclose(c.gain, c.accuracy - base.accuracy, atol=1e-12)
            assert np.all(c.gain_low <= c.gain + 1e-12) and np.all(c.gain <= c.gain_high + 1e-12)
        np.testing.assert_allclose(base.gain, 0.0, atol=1e-12)
        # and the same number Compare shows at N = 4
        cmp = V.compare_view(demo, info, [(m, v)], ["logit_wv"], 4, "majority", SETTINGS)
        c = view.curve(m, v, "logit_wv")
        k = list(c.budgets).index(4)
        assert c.gain[k] == pytest.approx(float(cmp.gain[0, 0]), abs=1e-12)
        assert c.gain_low[k] == pytest.approx(float(cmp.gain_low[0, 0]), abs=1e-12)
    plain = V.budget_view(demo, info, pairs[:1], ["majority"], SETTINGS)
    assert plain.baseline is None and plain.curves[0].gain is None


def test_the_offset_search_is_shown_with_its_fitted_b(demo: Store, info: DatasetInfo) -> None:
    view = V.weight_view(demo, info, info.llms[0], info.verifiers[0], "logit_wv", wcfg(30))
    cands, acc = view.offset_candidates, view.offset_accuracy
    assert cands.size > 5 and acc.shape == cands.shape
    assert np.all(np.diff(cands) > 0)
    assert np.all(view.offset_low <= acc + 1e-12) and np.all(acc <= view.offset_high + 1e-12)
    # the fitted b is a candidate where the calibration accuracy is highest
    assert view.b_fitted is not None
    k = int(np.argmin(np.abs(cands - view.b_fitted)))
    assert cands[k] == pytest.approx(view.b_fitted, abs=1e-12)
    assert acc[k] == pytest.approx(float(acc.max()), abs=1e-12)
    assert view.offset_budgets == (8,)  # the offset budget, clipped to the 8 samples
    kde = V.weight_view(demo, info, info.llms[0], info.verifiers[0], "kde_wv", wcfg(20))
    assert kde.offset_candidates.size == 0


def test_overlay_puts_pairs_of_two_datasets_on_one_chart(tmp_path: Path) -> None:
    with Store(tmp_path / "two.duckdb") as s:
        build_demo(s, n_problems=20, n_samples=8, name="aime 2024")
        build_demo(s, n_problems=25, n_samples=8, seed=3, name="aime 2025")
        a, b = s.get_dataset("aime 2024"), s.get_dataset("aime 2025")
        m, v = a.llms[0], a.verifiers[0]
        refs = [V.PairRef("aime 2024", m, v), V.PairRef("aime 2025", m, v)]
        view = V.overlay_view(s, refs, ["majority", "logit_wv"], SETTINGS)
        # same LLM and verifier: the labels are the datasets, the rest is shared
        assert [lb.split(" (")[0] for lb in view.pair_labels] == ["aime 2024", "aime 2025"]
        assert m in view.common and v in view.common
        assert [(c.ref.dataset, c.strategy) for c in view.curves] == [
            ("aime 2024", "majority"),
            ("aime 2024", "logit_wv"),
            ("aime 2025", "majority"),
            ("aime 2025", "logit_wv"),
        ]
        assert [c.n_problems for c in view.curves] == [20, 20, 25, 25]
        # each pair's numbers are its own dataset's budget curves
        for info, first in ((a, 0), (b, 2)):
            own = V.budget_view(s, info, [(m, v)], ["majority", "logit_wv"], SETTINGS)
            for k, strat in enumerate(("majority", "logit_wv")):
                np.testing.assert_allclose(
                    view.curves[first + k].accuracy, own.curve(m, v, strat).accuracy
                )
        frame = view.to_frame()
        assert set(frame["dataset"]) == {"aime 2024", "aime 2025"}
        with pytest.raises(V.ViewError, match="at most 4 pairs"):
            V.overlay_view(
                s, [V.PairRef("aime 2024", m, x) for x in a.verifiers[:5]], ["majority"], SETTINGS
            )


def test_where_every_answer_differs_the_baseline_is_best_of_n(store: Store, tmp_path: Path) -> None:
    from tests.conftest import make_long_frame

    df = make_long_frame(n_problems=6, n_samples=4, llms=("m",), verifiers=("prm",))
    path = tmp_path / "repeats.csv"
    df.to_csv(path, index=False)
    import_path(store, path, name="repeats")
    distinct = df.assign(
        answer=[f"{p}-{i}" for p, i in zip(df["problem_id"], df["sample_idx"], strict=True)]
    )
    distinct["is_correct"] = distinct["sample_idx"] == 0  # one correct solution each
    path2 = tmp_path / "distinct.csv"
    distinct.to_csv(path2, index=False)
    import_path(store, path2, name="distinct")
    rep = store.get_dataset("repeats")
    dis = store.get_dataset("distinct")
    share_rep = store.all_distinct_share(rep)
    assert store.all_distinct_share(dis) == pytest.approx(1.0)
    assert share_rep < 0.9
    assert V.default_baseline(store, rep) == ("majority", "")
    base, why = V.default_baseline(store, dis)
    assert base == "best_of_n" and "majority vote is a random pick" in why


def test_combining_a_dataset_of_one_signal_says_there_is_nothing_to_combine(
    store: Store, tmp_path: Path
) -> None:
    from core.importers.writers import WRITERS
    from tests.conftest import make_long_frame

    one = make_long_frame(n_problems=6, verifiers=("prm",))
    import_path(store, WRITERS["long-csv"][0](one, tmp_path / "one.csv"), name="one signal")
    info = store.get_dataset("one signal")
    why = V.combine_obstacle(store, info, "m1", ["prm"], SETTINGS)
    assert why is not None and "one signal per response (prm)" in why
    assert "Choose" not in why  # there is nothing more to choose
    two = make_long_frame(n_problems=6)
    import_path(store, WRITERS["long-csv"][0](two, tmp_path / "two.csv"), name="two signals")
    info2 = store.get_dataset("two signals")
    assert V.combine_obstacle(store, info2, "m1", ["prm"], SETTINGS) == (
        "Choose at least two signals to combine."
    )


@pytest.mark.parametrize(
    ("lo", "hi", "text"),
    [
        (0.123, 0.456, "0.12–0.46"),  # scores in [0, 1]: two decimals
        (22251.138, 27209.062, "22,251–27,209"),  # token counts: none, with separators
        (50.26, 80.5, "50.3–80.5"),
        (-3.217, 1.5, "-3.22–1.50"),
        (0.5012, 0.5034, "0.501–0.503"),  # more decimals where the ends would read alike
        (0.5, 0.5, "0.50–0.50"),
        (float("nan"), float("nan"), "empty"),
    ],
)
def test_score_ranges_read_at_the_precision_of_their_size(lo: float, hi: float, text: str) -> None:
    from core.info.common import range_text

    assert range_text(lo, hi) == text
    assert range_text(lo, hi, " – ") == text.replace("–", " – ")


def test_a_picked_empty_answer_is_named_no_answer(store: Store, tmp_path: Path) -> None:
    """Responses without a final answer form one cluster; when a strategy picks it, the
    explorer's picks say "(no answer)", as the chart's row does (it was a blank cell)."""
    from tests.conftest import make_long_frame

    frame = make_long_frame(
        n_problems=6, n_samples=6, llms=("m1",), verifiers=("prm",), steps=False
    )
    empty = (frame["problem_id"] == "q00") & (frame["sample_idx"] < 4)
    frame.loc[empty, "answer"] = ""
    frame.loc[empty, "is_correct"] = False
    path = tmp_path / "e.csv"
    frame.drop(columns="step_scores").to_csv(path, index=False)
    import_path(store, path, name="e")
    info = store.get_dataset("e")
    v = V.problem_view(store, info, "m1", "prm", "q00", ["majority"], EvalConfig(folds=2))
    assert v.picks == (V.NO_ANSWER,) and V.NO_ANSWER == "(no answer)"
    assert "" in v.answers  # the cluster itself keeps its empty answer


def test_the_widened_band_note_counts_its_grid_points() -> None:
    one = R.issue_text(V.Issue("band_widened", value=1.0))
    assert one.startswith("At 1 grid point the bootstrap") and "points" not in one
    assert R.issue_text(V.Issue("band_widened", value=3.0)).startswith("At 3 grid points the")


@pytest.mark.parametrize(
    ("budget", "said"),
    [(9.99997, "10 samples"), (4.0, "4 samples"), (1.0, "1 sample"), (5.46, "5.5 samples")],
)
def test_efficiency_text_gives_whole_budgets_without_a_decimal(budget: float, said: str) -> None:
    from core.evaluation.stats import EfficiencyResult

    res = EfficiencyResult(
        ratio=budget / 10, budget=budget, target=0.37, ref_budget=10, reached=True, reason=""
    )
    text = R.efficiency_text("logit_wv", "vanilla_wv", res)
    assert f"reaches vanilla WV@10 with {said}, " in text, text
