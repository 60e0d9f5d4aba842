"""Tests of the strategy registry (core.methods): protocol conformance, vote inputs of
every registered strategy, oracle labelling, upper bounds, and the reduction of KDE WV to
majority vote under an uninformative verifier."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import special

from core.evaluation import EvalConfig, crossfit_strategies, evaluate, fit_strategy
from core.evaluation.engine import accuracy_curves, exact_best_of_n, make_subsets
from core.methods import (
    REGISTRY,
    CalibrationError,
    FittedWeights,
    Strategy,
    StrategyError,
    StrategyParams,
    get_strategy,
    list_strategies,
    register,
)
from core.types import PairData

FAST = StrategyParams(offset_grid_size=7, offset_n_subsets=5, offset_budget=8)


def synth_pair(
    seed: int,
    n_problems: int = 60,
    n_samples: int = 12,
    *,
    sep: float = 1.5,
    informative: bool = True,
    raw: str = "sigmoid",
    q_range: tuple[float, float] = (0.2, 0.8),
) -> PairData:
    """Per problem q ~ U(q_range); logit score ~ N(+-sep/2, 1) by correctness (or N(0, 1)
    for everyone when not informative); wrong answers over 3 alternatives."""
    rng = np.random.default_rng(seed)
    q = rng.uniform(*q_range, n_problems)
    n = n_problems * n_samples
    prob = np.repeat(np.arange(n_problems), n_samples)
    correct = rng.random(n) < q[prob]
    mu = np.where(correct, sep / 2, -sep / 2) if informative else np.zeros(n)
    x = rng.normal(mu, 1.0)
    raw_cluster = np.where(correct, 0, 1 + rng.integers(0, 3, n))
    cluster = np.empty(n, dtype=np.int64)
    for p in range(n_problems):
        sl = slice(p * n_samples, (p + 1) * n_samples)
        cluster[sl] = np.unique(raw_cluster[sl], return_inverse=True)[1]
    score = special.expit(x) if raw == "sigmoid" else 3.0 * x + 1.0
    return PairData(
        dataset_id="s",
        llm="L",
        verifier="V",
        problem_ids=tuple(f"p{i}" for i in range(n_problems)),
        offsets=np.arange(n_problems + 1, dtype=np.int64) * n_samples,
        cluster=cluster,
        score=np.asarray(score, dtype=np.float64),
        correct=correct,
        sample_idx=np.tile(np.arange(n_samples, dtype=np.int64), n_problems),
        n_tokens=np.full(n, np.nan),
    )


# --------------------------------------------------------------------------------------
# registry
# --------------------------------------------------------------------------------------

EXPECTED = {
    "majority",
    "best_of_n",
    "majority_of_bests",
    "top_filtered_vote",
    "vanilla_wv",
    "linear_wv",
    "logit_wv",
    "kde_wv",
    "kde_wv_mlq",
    "posterior_vote",
    "platt_wv",
    "isotonic_wv",
    "kde_wv_oracle",
    "bayes_optimal",
    "pass_at_n",
}


def test_registry_lists_every_method_once() -> None:
    names = [s.name for s in list_strategies()]
    assert set(names) == EXPECTED and len(names) == len(EXPECTED)
    assert {s.name for s in list_strategies(oracles=False)} == EXPECTED - {
        "kde_wv_oracle",
        "bayes_optimal",
        "pass_at_n",
    }
    assert {s.name for s in list_strategies(simulated=False)} == EXPECTED - {"bayes_optimal"}
    for name, s in REGISTRY.items():
        assert isinstance(s, Strategy)
        assert s.name == name and s.label
        assert get_strategy(name) is s


def test_oracles_are_marked() -> None:
    oracles = {s.name for s in list_strategies() if s.oracle}
    assert oracles == {"kde_wv_oracle", "bayes_optimal", "pass_at_n"}
    # only pass@N and the simulator's Bayes-optimal vote are ceilings, and say so; the
    # KDE oracle is not called a bound anywhere
    ceilings = {s.name for s in list_strategies() if s.upper_bound}
    assert ceilings == {"bayes_optimal", "pass_at_n"}
    for name in ceilings:
        assert "ceiling" in get_strategy(name).label.lower()
    kde_oracle = get_strategy("kde_wv_oracle")
    assert "oracle" in kde_oracle.label.lower()
    for text in (kde_oracle.label, kde_oracle.description, kde_oracle.short_name):
        assert "upper bound" not in text.lower() and "ceiling" not in text.lower()
    assert "not a bound" in kde_oracle.description


def test_needs_labels_flags() -> None:
    fitted = {s.name for s in list_strategies() if s.needs_labels}
    assert fitted == {
        "linear_wv",
        "logit_wv",
        "kde_wv",
        "kde_wv_mlq",
        "posterior_vote",
        "platt_wv",
        "isotonic_wv",
    }


def test_unknown_and_duplicate_strategies_raise() -> None:
    with pytest.raises(StrategyError):
        get_strategy("nope")
    with pytest.raises(StrategyError):
        register(get_strategy("majority"))


def test_a_fit_cannot_drive_another_strategy() -> None:
    pair = synth_pair(0)
    fw = fit_strategy(get_strategy("kde_wv"), pair, StrategyParams())
    with pytest.raises(StrategyError):
        get_strategy("majority").vote_inputs(fw, pair)


# --------------------------------------------------------------------------------------
# every strategy: fit -> vote inputs, serialisable
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("raw", ["sigmoid", "orm"])
def test_strategy_fit_and_vote_inputs(name: str, raw: str) -> None:
    calib = synth_pair(1, raw=raw)
    ev = synth_pair(2, n_problems=20, raw=raw)
    s = get_strategy(name)
    # fit_strategy = the registry entry's fit plus the offset tuning of linear / logit WV
    fw = fit_strategy(s, calib, FAST)
    if s.needs_truth:  # only simulated pairs carry the simulator's parameters
        with pytest.raises(CalibrationError, match="simulator"):
            s.vote_inputs(fw, ev)
        return
    assert fw.kind == name
    assert (fw.offset is not None) == (name in ("linear_wv", "logit_wv"))
    # strategies that read no transform record the identity; "auto" keeps [0, 1] scores
    # and reads wide-range ORM scores by their rank (a sigmoid would saturate them)
    if "transform" not in s.uses or raw == "sigmoid":
        assert fw.transform == "identity"
    else:
        assert fw.transform.startswith("rank:")
    vi = s.vote_inputs(fw, ev)
    assert vi.weight.shape == (ev.n_responses,)
    assert np.all(np.isfinite(vi.weight))
    if vi.g is not None:
        assert vi.g.shape == (ev.n_responses,)
        assert np.all((vi.g >= 0) & (vi.g <= 1))
    assert vi.best_of == (name in ("best_of_n", "pass_at_n"))
    assert vi.ml_q == (name == "kde_wv_mlq")
    assert (vi.size_tables is not None) == (name == "posterior_vote")
    # the fit survives JSON and drives the same vote
    back = FittedWeights.from_json(fw.to_json())
    vi2 = s.vote_inputs(back, ev)
    assert np.array_equal(vi.weight, vi2.weight)
    assert (vi.g is None) == (vi2.g is None)
    if vi.g is not None and vi2.g is not None:
        assert np.array_equal(vi.g, vi2.g)
    if vi.size_tables is not None:
        assert vi2.size_tables is not None
        assert np.array_equal(vi.size_tables, vi2.size_tables)


def test_qm_term_follows_use_qm_for_platt_and_isotonic() -> None:
    pair = synth_pair(3)
    for name in ("platt_wv", "isotonic_wv"):
        s = get_strategy(name)
        assert s.vote_inputs(s.fit(pair, StrategyParams()), pair).g is not None
        assert s.vote_inputs(s.fit(pair, StrategyParams(use_qm=False)), pair).g is None
    kde = get_strategy("kde_wv")
    assert kde.vote_inputs(kde.fit(pair, StrategyParams(use_qm=False)), pair).g is not None


def test_majority_and_vanilla_weights() -> None:
    pair = synth_pair(4)
    maj = get_strategy("majority")
    assert np.all(maj.vote_inputs(maj.fit(pair, FAST), pair).weight == 1.0)
    van = get_strategy("vanilla_wv")
    np.testing.assert_array_equal(van.vote_inputs(van.fit(pair, FAST), pair).weight, pair.score)


# --------------------------------------------------------------------------------------
# upper bounds and exact rows
# --------------------------------------------------------------------------------------


def test_upper_bounds_and_exact_rows_in_cross_fit() -> None:
    pair = synth_pair(5, n_problems=80, n_samples=16)
    budgets = (1, 2, 4, 8, 16)
    config = EvalConfig(params=FAST, folds=4, fold_seed=0, budgets=budgets, n_subsets=50)
    cf = crossfit_strategies(pair, sorted(EXPECTED), config)
    assert set(cf.skipped) == {"bayes_optimal"}  # not a simulated pair
    cs = evaluate(pair, cf.inputs, config)
    assert cs.order == "random"
    # pass@N = exact best-of over weight = correctness
    np.testing.assert_allclose(
        cs.per_problem[cs.index("pass_at_n")],
        exact_best_of_n(pair, pair.correct.astype(np.float64), budgets),
    )
    np.testing.assert_allclose(
        cs.per_problem[cs.index("best_of_n")], exact_best_of_n(pair, pair.score, budgets)
    )
    assert cs.exact[cs.index("pass_at_n")] and cs.exact[cs.index("best_of_n")]
    assert not cs.exact[cs.index("kde_wv")]
    pass_n = cs.curve("pass_at_n")
    for name in EXPECTED - {"pass_at_n", "bayes_optimal"}:
        assert np.all(cs.curve(name) <= pass_n + 0.02), name
    # at N = 1 every strategy is exactly the share of correct responses (no sampling noise)
    single = cs.mean()[:, 0]
    assert np.ptp(single) < 1e-12
    assert single[0] == pytest.approx(float(np.mean(pair.correct)), abs=1e-12)


# --------------------------------------------------------------------------------------
# uninformative verifier: KDE WV reduces to majority vote
# --------------------------------------------------------------------------------------


@st.composite
def constant_score_pairs(draw: st.DrawFn) -> PairData:
    """Problems whose responses all carry the same score; the correct answer is cluster 0
    and at least 60 % of responses are correct overall (so q > 1/2 >= 1/m), with at least
    two incorrect responses overall."""
    n_problems = draw(st.integers(1, 5))
    value = draw(st.floats(-5, 5, allow_nan=False))
    clusters: list[int] = []
    sizes: list[int] = []
    for _ in range(n_problems):
        k = draw(st.integers(1, 9))
        sizes.append(k)
        clusters.extend(draw(st.lists(st.integers(0, 3), min_size=k, max_size=k)))
    c = np.asarray(clusters)
    n = c.size
    # force the base rate up by marking extra responses correct (cluster 0)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    order = rng.permutation(n)
    need = int(np.ceil(0.6 * n))
    c[order[:need]] = 0
    c[order[need:]] = np.maximum(c[order[need:]], 1)
    if n - need < 2:  # two more wrong and three more correct keep >= 60 % correct
        c = np.concatenate([c, [1, 2, 0, 0, 0]])
        sizes[-1] += 5
        n += 5
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    cluster = np.empty(n, dtype=np.int64)
    for p in range(len(sizes)):
        sl = slice(offsets[p], offsets[p + 1])
        cluster[sl] = np.unique(c[sl], return_inverse=True)[1]
    correct = c == 0
    return PairData(
        dataset_id="u",
        llm="l",
        verifier="v",
        problem_ids=tuple(f"u{i}" for i in range(len(sizes))),
        offsets=offsets,
        cluster=cluster,
        score=np.full(n, value),
        correct=correct,
        sample_idx=np.concatenate([np.arange(k) for k in sizes]).astype(np.int64),
        n_tokens=np.zeros(n),
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pair=constant_score_pairs(),
    transform=st.sampled_from(["auto", "sigmoid", "rank"]),
    bandwidth=st.one_of(st.just("scott"), st.just("silverman"), st.floats(0.01, 3)),
)
def test_kde_wv_with_uninformative_verifier_is_majority_vote(
    pair: PairData, transform: str, bandwidth: str | float
) -> None:
    params = StrategyParams(transform=transform, bandwidth=bandwidth)
    kde = get_strategy("kde_wv")
    maj = get_strategy("majority")
    vi = kde.vote_inputs(kde.fit(pair, params), pair)
    assert np.all(vi.weight == 0.0)
    assert vi.g is not None and np.all(vi.g > 0.5)
    subsets = make_subsets(pair, None, n_subsets=6, seed=1)
    cs = accuracy_curves(
        pair,
        {"kde": vi, "maj": maj.vote_inputs(maj.fit(pair, params), pair)},
        subsets=subsets,
    )
    np.testing.assert_array_equal(cs.per_problem[0], cs.per_problem[1])


def test_kde_wv_with_independent_noise_scores_tracks_majority() -> None:
    # q > 1/2 >= 1/m, so the q/m term favours frequent answers (with q = 1/m Theorem 3.2
    # itself says counts carry no information)
    q_range = (0.55, 0.9)
    pair = synth_pair(6, n_problems=400, n_samples=16, informative=False, q_range=q_range)
    names = ["kde_wv", "majority", "vanilla_wv"]
    config = EvalConfig(params=StrategyParams(), folds=5, fold_seed=0, n_subsets=60)
    res = crossfit_strategies(pair, names, config)
    assert not res.skipped
    w = res.inputs["kde_wv"].weight
    central = (pair.score > np.quantile(pair.score, 0.05)) & (
        pair.score < np.quantile(pair.score, 0.95)
    )
    assert np.max(np.abs(w[central])) < 0.35
    curves = evaluate(pair, res.inputs, config)
    gap = np.abs(curves.curve("kde_wv") - curves.curve("majority"))
    assert gap.max() < 0.02, gap
    # and an informative verifier does move KDE WV away from majority (the test has power)
    inf = synth_pair(6, n_problems=400, n_samples=16, informative=True, q_range=q_range)
    res2 = crossfit_strategies(inf, names, config)
    assert not res2.skipped
    curves2 = evaluate(inf, res2.inputs, config)
    assert np.max(curves2.curve("kde_wv") - curves2.curve("majority")) > 0.05
