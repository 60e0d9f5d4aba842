"""Tests of calibration (core.methods and core.evaluation): transforms, KDE, calibrators,
offset search, serialisation, cross-fitting (leak-freedom), transfer and bootstrap bands.

Ground truth comes from a small generator with Gaussian class densities of logit scores, so
the true log likelihood ratio and the Bayes-optimal vote are known in closed form, and from
independent implementations (scipy's gaussian_kde, isotonic_regression, minimize).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import optimize, special, stats

from core.evaluation import (
    EvalConfig,
    OffsetTuner,
    accuracy_curves,
    crossfit_strategies,
    evaluate,
    fit_strategy,
    kfold,
    make_subsets,
    response_weights,
)
from core.evaluation import pipeline as pipeline_module
from core.evaluation.weightfits import WEIGHT_GRID, score_densities, weight_fit
from core.methods import (
    CalibrationError,
    FittedWeights,
    Strategy,
    StrategyError,
    StrategyParams,
    get_strategy,
    register,
    unregister,
)
from core.methods.builtin import KDEWV
from core.methods.calibrators import fit_binned_calibrator, fit_isotonic, fit_platt, pava
from core.methods.fitted import SCHEMA_VERSION
from core.methods.kde import fit_kde, grid_kde_density, kde_bandwidth
from core.methods.transforms import (
    COUNT_SIGNAL_MIN_MAX,
    apply_transform,
    clipped_logit,
    resolve_transform,
)
from core.store import CanonicalData, DatasetInfo, Store
from core.studies.transfer import TransferError, transfer_inputs
from core.types import PairData, VoteInputs

# --------------------------------------------------------------------------------------
# synthetic generator with known class densities
# --------------------------------------------------------------------------------------


def gaussian_pair(
    seed: int = 0,
    n_problems: int = 200,
    n_samples: int = 16,
    *,
    mu1: float = 1.0,
    mu0: float = -1.0,
    sd1: float = 1.0,
    sd0: float = 1.2,
    q_lo: float = 0.15,
    q_hi: float = 0.85,
    n_wrong: int = 3,
    raw: str = "sigmoid",
    dataset_id: str = "synth",
    prefix: str = "p",
) -> tuple[PairData, Callable[[np.ndarray], np.ndarray], np.ndarray]:
    """Per problem q ~ U(q_lo, q_hi); c ~ Bernoulli(q); logit score ~ N(mu_c, sd_c); wrong
    answers uniform over `n_wrong` alternatives. Returns (pair, true_llr(x), q)."""
    rng = np.random.default_rng(seed)
    q = rng.uniform(q_lo, q_hi, n_problems)
    n = n_problems * n_samples
    prob = np.repeat(np.arange(n_problems), n_samples)
    correct = rng.random(n) < q[prob]
    x = np.where(correct, rng.normal(mu1, sd1, n), rng.normal(mu0, sd0, n))
    raw_cluster = np.where(correct, 0, 1 + rng.integers(0, n_wrong, n))
    cluster = np.empty(n, dtype=np.int64)
    for p in range(n_problems):
        sl = slice(p * n_samples, (p + 1) * n_samples)
        _, inv = np.unique(raw_cluster[sl], return_inverse=True)
        cluster[sl] = inv
    score = special.expit(x) if raw == "sigmoid" else x
    pair = PairData(
        dataset_id=dataset_id,
        llm="L",
        verifier="V",
        problem_ids=tuple(f"{prefix}{i}" for i in range(n_problems)),
        offsets=np.arange(n_problems + 1, dtype=np.int64) * n_samples,
        cluster=cluster,
        score=np.asarray(score, dtype=np.float64),
        correct=correct,
        sample_idx=np.tile(np.arange(n_samples, dtype=np.int64), n_problems),
        n_tokens=np.full(n, np.nan),
    )

    def true_llr(xx: np.ndarray) -> np.ndarray:
        return np.asarray(stats.norm.logpdf(xx, mu1, sd1) - stats.norm.logpdf(xx, mu0, sd0))

    return pair, true_llr, q


def with_labels(pair: PairData, correct: np.ndarray) -> PairData:
    return PairData(
        dataset_id=pair.dataset_id,
        llm=pair.llm,
        verifier=pair.verifier,
        problem_ids=pair.problem_ids,
        offsets=pair.offsets,
        cluster=pair.cluster,
        score=pair.score,
        correct=np.asarray(correct, dtype=bool),
        sample_idx=pair.sample_idx,
        n_tokens=pair.n_tokens,
    )


FAST = StrategyParams(offset_grid_size=9, offset_n_subsets=10, offset_budget=8)


def fit(pair: PairData, kind: str, params: StrategyParams | None = None) -> FittedWeights:
    """`kind` fitted on every problem of `pair`, its offset tuned where it has one."""
    return fit_strategy(get_strategy(kind), pair, params or StrategyParams())


def weight_curve(fw: FittedWeights, grid: np.ndarray, *, raw: bool = False) -> np.ndarray:
    """w on a grid of transformed scores (raw scores if `raw`), from the registry entry."""
    t = apply_transform(grid, fw.transform) if raw else np.asarray(grid, dtype=np.float64)
    return get_strategy(fw.kind).weights(fw, t)


def store_pair(store: Store, pair: PairData, name: str) -> DatasetInfo:
    """Write `pair` into `store` as a dataset of its own (answers keyed by cluster)."""
    prob = np.repeat(np.asarray(pair.problem_ids), pair.sizes())
    answers = [f"a{c}" for c in pair.cluster]
    gold = {p: "none" for p in pair.problem_ids}
    for p, a, c in zip(prob, answers, pair.correct, strict=True):
        if c:
            gold[str(p)] = a
    problems = pd.DataFrame({"problem_id": list(gold), "gold_answer": list(gold.values())})
    responses = pd.DataFrame(
        {
            "llm": pair.llm,
            "problem_id": prob,
            "sample_idx": pair.sample_idx,
            "answer_raw": answers,
            "answer_key": answers,
            "is_correct": pair.correct,
        }
    )
    scores = pd.DataFrame(
        {
            "llm": pair.llm,
            "verifier": pair.verifier,
            "problem_id": prob,
            "sample_idx": pair.sample_idx,
            "score": pair.score,
        }
    )
    return store.ingest(
        CanonicalData(problems, responses, scores),
        name=name,
        source_format="test",
        content_sha256=name,
    )


# --------------------------------------------------------------------------------------
# transforms and data helpers
# --------------------------------------------------------------------------------------

finite = st.floats(-30, 30, allow_nan=False)


@given(st.lists(finite, min_size=1, max_size=30))
def test_auto_transform_is_identity_iff_scores_in_unit_interval(xs: list[float]) -> None:
    s = np.asarray(xs)
    inside = bool(np.all((s >= 0) & (s <= 1)))
    counts = bool(s.min() >= 0 and s.max() > COUNT_SIGNAL_MIN_MAX)
    resolved = resolve_transform("auto", s)
    if inside:
        assert resolved == "identity"
    elif counts:
        assert resolved.startswith("log-zscore:")
    else:  # any other range: the rank, which cannot saturate
        assert resolved.startswith("rank:")
        t = apply_transform(s, resolved)
        order = np.argsort(s, kind="stable")
        assert np.all(np.diff(t[order]) >= 0) and np.all((t > 0) & (t < 1))
    for tr in ("identity", "sigmoid"):
        t = apply_transform(s, tr)
        assert np.all((t >= 0) & (t <= 1))


@given(st.lists(st.integers(1, 5), min_size=1, max_size=6), st.data())
def test_select_problems_and_response_rows(sizes: list[int], data: st.DataObject) -> None:
    pair, _, _ = gaussian_pair(0, n_problems=1, n_samples=1)
    n = sum(sizes)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    pair = PairData(
        dataset_id="d",
        llm="l",
        verifier="v",
        problem_ids=tuple(f"q{i}" for i in range(len(sizes))),
        offsets=offsets,
        cluster=np.zeros(n, dtype=np.int64),
        score=np.arange(n, dtype=np.float64),
        correct=np.arange(n) % 2 == 0,
        sample_idx=np.zeros(n, dtype=np.int64),
        n_tokens=np.zeros(n),
    )
    idx = data.draw(st.lists(st.integers(0, len(sizes) - 1), max_size=8))
    expect_rows = [r for i in idx for r in range(offsets[i], offsets[i + 1])]
    assert pair.rows(idx).tolist() == expect_rows
    sub = pair.select(idx)
    assert sub.problem_ids == tuple(f"q{i}" for i in idx)
    assert sub.score.tolist() == [float(r) for r in expect_rows]
    assert sub.sizes().tolist() == [sizes[i] for i in idx]


# --------------------------------------------------------------------------------------
# KDE
# --------------------------------------------------------------------------------------


def test_bandwidth_rules_match_scipy() -> None:
    x = np.random.default_rng(1).normal(0.3, 1.7, 500)
    sd = x.std(ddof=1)
    for rule in ("scott", "silverman"):
        ref = stats.gaussian_kde(x, bw_method=rule).factor * sd
        assert kde_bandwidth(x, rule) == pytest.approx(ref, rel=1e-12)
    assert kde_bandwidth(x, 0.25) == 0.25


def test_grid_kde_matches_scipy_gaussian_kde() -> None:
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.normal(-1, 0.7, 3000), rng.normal(2, 1.0, 2000)])
    h = kde_bandwidth(x, "scott")
    grid = np.linspace(x.min() - 5 * h, x.max() + 5 * h, 2048)
    ours = grid_kde_density(x, grid, h)
    ref = stats.gaussian_kde(x, bw_method=h / x.std(ddof=1))(grid)
    dense = ref > 0.01 * ref.max()
    np.testing.assert_allclose(ours[dense], ref[dense], rtol=5e-3)
    assert abs(ours.sum() * (grid[1] - grid[0]) - 1.0) < 1e-3


def test_kde_llr_close_to_truth_where_dense_and_bounded_everywhere() -> None:
    pair, true_llr, _ = gaussian_pair(3, n_problems=1500, n_samples=16)
    params = StrategyParams()
    fw = fit(pair, "kde_wv", params)
    assert fw.transform == "identity"
    x = np.linspace(-1.5, 1.5, 61)  # both class densities > 0.1 here
    assert fw.kde is not None
    err = np.abs(fw.kde.log_lr(x) - true_llr(x))
    assert err.max() < 0.2, err.max()
    # the floor keeps weights finite and bounded where there is no data at all
    far = weight_curve(fw, np.array([0.0, 1e-300, 1e-12, 0.5, 1 - 1e-12, 1.0]))
    assert np.all(np.isfinite(far))
    # each class density is shrunk towards the pooled one by c pseudo-responses, which
    # bounds the log ratio: log((n + c)/(n1 + c)) + log((n0 + c)/c) above, symmetric below
    wide = fw.kde.log_lr(np.linspace(-60, 60, 2001))
    n1, n0, c = fw.kde.n1, fw.kde.n0, params.density_prior
    n = n1 + n0
    assert wide.max() <= math.log((n + c) / (n1 + c)) + math.log((n0 + c) / c) + 1e-9
    assert wide.min() >= -(math.log((n + c) / (n0 + c)) + math.log((n1 + c) / c)) - 1e-9
    # beyond the data the ratio is held at its value at the edge, never snapped to 0
    assert wide[0] == fw.kde.log_lr(np.array([fw.kde.x_lo]))[0] != 0.0
    assert wide[-1] == fw.kde.log_lr(np.array([fw.kde.x_hi]))[0] != 0.0


def test_kde_per_class_bandwidth_mode_and_errors() -> None:
    pair, _, _ = gaussian_pair(4, n_problems=100, n_samples=8)
    shared = fit(pair, "kde_wv", StrategyParams())
    per = fit(pair, "kde_wv", StrategyParams(bandwidth_mode="per_class"))
    assert shared.kde is not None and per.kde is not None
    assert shared.kde.bandwidth1 == shared.kde.bandwidth0
    assert per.kde.bandwidth1 != per.kde.bandwidth0
    assert max(per.kde.bandwidth1, per.kde.bandwidth0) == pytest.approx(shared.kde.bandwidth1)
    with pytest.raises(CalibrationError):
        fit_kde(np.array([0.0, 1.0, 2.0]), np.array([True, False, False]))
    with pytest.raises(CalibrationError):
        StrategyParams(bandwidth="wide")
    with pytest.raises(CalibrationError):
        StrategyParams(bandwidth=-1.0)


@pytest.mark.parametrize("value", [0.3, float(clipped_logit(0.0, 1e-6)[()]), 13.8])
@pytest.mark.parametrize("bandwidth", ["scott", "silverman", 1e-12, 2.0])
def test_constant_scores_give_exactly_zero_llr(value: float, bandwidth: str | float) -> None:
    # 7 copies of logit(1e-6) have a rounding-level std (~1e-15) that once became the
    # bandwidth and collapsed the grid (found by Hypothesis)
    x = np.full(18, value)
    c = np.arange(18) < 7
    kde = fit_kde(x, c, bandwidth=bandwidth)
    assert np.all(np.isfinite(kde.grid)) and np.all(np.diff(kde.grid) > 0)
    assert np.all(kde.log_lr(np.linspace(-20, 20, 101)) == 0.0)


# --------------------------------------------------------------------------------------
# calibrator g, Platt, isotonic
# --------------------------------------------------------------------------------------


@given(
    st.lists(st.floats(0, 1), min_size=1, max_size=60),
    st.lists(st.booleans(), min_size=60, max_size=60),
    st.integers(1, 12),
)
def test_binned_calibrator_stays_strictly_inside_unit_interval(
    t: list[float], c: list[bool], n_bins: int
) -> None:
    cal = fit_binned_calibrator(np.asarray(t), np.asarray(c[: len(t)]), n_bins=n_bins)
    g = cal.predict(np.linspace(-0.5, 1.5, 41))
    assert np.all((g > 0) & (g < 1))
    assert cal.probs.size == cal.edges.size + 1 <= n_bins


def test_binned_calibrator_matches_true_posterior() -> None:
    pair, true_llr, _ = gaussian_pair(5, 2000, 16, q_lo=0.4, q_hi=0.4)
    t = pair.score
    cal = fit_binned_calibrator(t, pair.correct, n_bins=10)
    truth = special.expit(true_llr(special.logit(t)) + special.logit(0.4))
    bins = np.searchsorted(cal.edges, t, side="right")
    for j in range(cal.probs.size):
        assert abs(cal.probs[j] - truth[bins == j].mean()) < 0.03
    counts = np.bincount(bins)
    assert counts.min() > 0.8 * counts.max()  # equal mass


def test_platt_recovers_logistic_model_and_matches_scipy() -> None:
    rng = np.random.default_rng(6)
    x = rng.normal(0.0, 2.0, 40000)
    c = rng.random(x.size) < special.expit(1.5 * x - 0.5)
    fit = fit_platt(x, c)
    assert fit.slope == pytest.approx(1.5, abs=0.06)
    assert fit.intercept == pytest.approx(-0.5, abs=0.06)
    n1, n0 = c.sum(), (~c).sum()
    tgt = np.where(c, (n1 + 1) / (n1 + 2), 1 / (n0 + 2))

    def nll(b: np.ndarray) -> float:
        eta = b[0] * x + b[1]
        return float(np.sum(np.logaddexp(0, eta) - tgt * eta))

    ref = optimize.minimize(nll, [1.0, 0.0], method="Nelder-Mead", options={"xatol": 1e-9})
    assert fit.slope == pytest.approx(ref.x[0], abs=1e-4)
    assert fit.intercept == pytest.approx(ref.x[1], abs=1e-4)
    # log LR = logit P(c|x) - logit(base rate)
    p = special.expit(fit.slope * 0.7 + fit.intercept)
    assert fit.log_lr(0.7) == pytest.approx(special.logit(p) - special.logit(fit.base_rate))


def test_platt_stays_finite_on_separable_data() -> None:
    x = np.array([-3.0, -2.0, -1.0, 1.0, 2.0, 3.0])
    c = x > 0
    fit = fit_platt(x, c)
    assert math.isfinite(fit.slope) and fit.slope > 0
    assert np.all(np.isfinite(fit.log_lr(np.array([-100.0, 100.0]))))


@given(
    st.lists(
        st.tuples(st.floats(-5, 5, allow_nan=False), st.floats(0.1, 10)), min_size=1, max_size=40
    )
)
def test_pava_matches_scipy_isotonic_regression(yw: list[tuple[float, float]]) -> None:
    y = np.array([a for a, _ in yw])
    w = np.array([b for _, b in yw])
    ref = optimize.isotonic_regression(y, weights=w).x
    np.testing.assert_allclose(pava(y, w), ref, rtol=1e-9, atol=1e-9)


@given(
    st.lists(st.tuples(st.integers(-6, 6), st.booleans()), min_size=1, max_size=50),
    st.floats(0.1, 5),
)
def test_isotonic_fit_is_monotone_and_strictly_inside(
    xc: list[tuple[int, bool]], smoothing: float
) -> None:
    x = np.array([float(a) for a, _ in xc])
    c = np.array([b for _, b in xc])
    fit = fit_isotonic(x, c, smoothing=smoothing)
    grid = np.linspace(-8, 8, 161)
    p = fit.prob(grid)
    assert np.all(np.diff(p) >= -1e-15)
    assert np.all((p > 0) & (p < 1))
    assert np.all(np.isfinite(fit.log_lr(grid)))


def test_isotonic_llr_tracks_truth_where_dense() -> None:
    pair, true_llr, _ = gaussian_pair(7, 1500, 16)
    fw = fit(pair, "isotonic_wv")
    x = np.linspace(-1.0, 1.0, 21)
    err = np.abs(weight_curve(fw, special.expit(x)) - true_llr(x))
    # a step function: small on average, larger next to a step
    assert err.mean() < 0.2 and err.max() < 0.7, err


# --------------------------------------------------------------------------------------
# offset search
# --------------------------------------------------------------------------------------


def _offset_pair(n_problems: int = 20) -> PairData:
    """Every problem: 4 correct responses scored 0.6, 8 wrong ones (one shared wrong answer)
    scored 0.4. On the full set, linear WV picks the correct answer iff
    4 (0.6 - b) > 8 (0.4 - b), i.e. b > 0.2; logit WV iff logit b > -3 logit 0.6."""
    per = [(0, True, 0.6)] * 4 + [(1, False, 0.4)] * 8
    n = n_problems * len(per)
    return PairData(
        dataset_id="off",
        llm="l",
        verifier="v",
        problem_ids=tuple(f"o{i}" for i in range(n_problems)),
        offsets=np.arange(n_problems + 1, dtype=np.int64) * len(per),
        cluster=np.tile([a for a, _, _ in per], n_problems).astype(np.int64),
        score=np.tile([s for _, _, s in per], n_problems).astype(np.float64),
        correct=np.tile([c for _, c, _ in per], n_problems),
        sample_idx=np.tile(np.arange(len(per)), n_problems).astype(np.int64),
        n_tokens=np.zeros(n),
    )


@pytest.mark.parametrize(
    ("kind", "threshold"),
    [("linear_wv", 0.2), ("logit_wv", float(special.expit(-3 * special.logit(0.6))))],
)
def test_offset_search_objective_and_choice(kind: str, threshold: float) -> None:
    pair = _offset_pair()
    params = StrategyParams(offset_budget=12, offset_grid_size=21, offset_n_subsets=4)
    strategy = get_strategy(kind)
    assert strategy.fit(pair, params).offset is None  # the fit alone leaves b to be tuned
    fw = fit(pair, kind, params)
    off = fw.offset
    assert off is not None
    assert off.objective == "budget" and off.budgets == (12,)
    assert off.candidates.size == off.objective_values.size == 21
    clear = np.abs(off.candidates - threshold) > 1e-9
    expect = (off.candidates > threshold).astype(float)
    np.testing.assert_allclose(off.objective_values[clear], expect[clear], atol=1e-12)
    # the best candidates all tie at accuracy 1: the one nearest the neutral offset wins
    neutral = 0.0 if kind == "linear_wv" else 0.5
    best = off.candidates[clear & (off.candidates > threshold)]
    assert off.b == best[np.argmin(np.abs(best - neutral))]
    # the tuner's per-problem objective: its mean over problems is the recorded objective,
    # and the strategy's offset space picks the same b from it
    obj = OffsetTuner(pair).objective(strategy, strategy.fit(pair, params))
    assert obj.values.shape == (21, pair.n_problems) and obj.budgets == (12,)
    np.testing.assert_array_equal(obj.candidates, off.candidates)
    np.testing.assert_allclose(obj.values.mean(axis=1), off.objective_values, rtol=0, atol=1e-15)
    assert strategy.offset is not None
    np.testing.assert_array_equal(strategy.offset.candidates(21), off.candidates)
    picked = strategy.offset.pick(obj.candidates, obj.values.mean(axis=1)[:, None])
    assert picked.tolist() == [off.b]
    # the weight is base(t) - shift(b)
    t = fw.transformed(pair)
    np.testing.assert_array_equal(
        response_weights(fw, pair), strategy.base_weights(fw, t) - strategy.offset.shift(off.b)
    )


def test_offset_objective_mean_records_budgets() -> None:
    pair = _offset_pair(6)
    params = StrategyParams(
        offset_objective="mean", offset_budgets=(1, 4, 12, 50), offset_grid_size=5
    )
    fw = fit(pair, "linear_wv", params)
    assert fw.offset is not None and fw.offset.budgets == (1, 4, 12)
    assert json.loads(fw.to_json())["params"]["offset_objective"] == "mean"


# --------------------------------------------------------------------------------------
# serialisation
# --------------------------------------------------------------------------------------

KINDS_FOR_JSON = ["majority", "vanilla_wv", "best_of_n", "kde_wv", "platt_wv", "isotonic_wv"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    kind=st.sampled_from([*KINDS_FOR_JSON, "logit_wv"]),
    raw=st.sampled_from(["sigmoid", "logit"]),
    transform=st.sampled_from(["auto", "identity", "sigmoid", "rank"]),
    bandwidth=st.one_of(st.sampled_from(["scott", "silverman"]), st.floats(0.05, 2.0)),
    mode=st.sampled_from(["shared", "per_class"]),
    n_bins=st.integers(1, 15),
    floor=st.floats(1e-6, 0.5),
    reduction=st.sampled_from(["last", "min", "prod", "stored"]),
)
def test_json_round_trip_gives_identical_weights(
    seed: int,
    kind: str,
    raw: str,
    transform: str,
    bandwidth: str | float,
    mode: str,
    n_bins: int,
    floor: float,
    reduction: str,
) -> None:
    pair, _, _ = gaussian_pair(seed, n_problems=12, n_samples=6, raw=raw)
    params = StrategyParams(
        transform=transform,
        bandwidth=bandwidth,
        bandwidth_mode=mode,
        n_bins=n_bins,
        density_floor=floor,
        offset_grid_size=3,
        offset_n_subsets=2,
        offset_budget=4,
    )
    strategy = get_strategy(kind)
    fw = fit_strategy(strategy, pair, params, reduction=reduction)
    text = fw.to_json()
    d = json.loads(text)
    assert d["schema_version"] == SCHEMA_VERSION
    assert d["kind"] == kind and d["step_reduction"] == reduction
    # strategies that do not read the transform (majority, best-of-N) record the identity
    expect = "identity"
    if "transform" in strategy.uses:
        expect = resolve_transform(transform, pair.score)
    assert d["transform"] == expect
    if kind == "kde_wv":
        assert len(d["kde"]["grid"]) == len(d["kde"]["log_f1"]) == len(d["kde"]["log_f0"])
    back = FittedWeights.from_json(text)
    assert back.to_json() == text
    assert back.params == params and back.step_reduction == reduction
    other, _, _ = gaussian_pair(seed + 1, n_problems=5, n_samples=7, raw=raw)
    for p in (pair, other):
        assert np.array_equal(response_weights(back, p), response_weights(fw, p))
        assert (back.calibrator is None) == (fw.calibrator is None)
        if fw.calibrator is not None and back.calibrator is not None:
            g_fw = fw.calibrator.predict(fw.transformed(p))
            assert np.array_equal(back.calibrator.predict(back.transformed(p)), g_fw)
        a, b = strategy.vote_inputs(back, p), strategy.vote_inputs(fw, p)
        assert np.array_equal(a.weight, b.weight) and a.best_of == b.best_of
        assert (a.g is None and b.g is None) or np.array_equal(a.g, b.g)
    grid = np.linspace(0, 1, 33)
    assert np.array_equal(weight_curve(back, grid), weight_curve(fw, grid))


def test_from_json_rejects_bad_input() -> None:
    pair, _, _ = gaussian_pair(0, 20, 8)
    d = json.loads(fit(pair, "kde_wv").to_json())
    for bad in (
        {**d, "schema_version": 99},
        {**d, "transform": "auto"},
        {**d, "params": {**d["params"], "bogus": 1}},
        {**d, "kde": {**d["kde"], "log_f1": [0.0]}},
        {**d, "params": {**d["params"], "step_reduction": "min"}},  # disagrees with "stored"
    ):
        with pytest.raises(CalibrationError):
            FittedWeights.from_json(json.dumps(bad))
    with pytest.raises(CalibrationError):
        FittedWeights.from_json("[1, 2]")
    with pytest.raises(CalibrationError):
        FittedWeights.from_json("{not json")
    # kinds are open (registered strategies, plugins): a fit of an unknown kind loads, and
    # is refused as soon as its strategy is looked up
    unknown = FittedWeights.from_json(json.dumps({**d, "kind": "nope"}))
    with pytest.raises(StrategyError, match="unknown strategy"):
        get_strategy(unknown.kind)
    with pytest.raises(StrategyError):
        get_strategy("kde_wv").vote_inputs(unknown, pair)


def test_weight_curve_and_densities_for_plotting(store: Store) -> None:
    pair, true_llr, _ = gaussian_pair(8, 600, 16)
    info = store_pair(store, pair, "dens")
    stored = store.load_pair(info, pair.llm, pair.verifier)
    fw = fit(stored, "kde_wv")
    grid = WEIGHT_GRID
    w = weight_curve(fw, grid)
    assert (w < 0).any() and (w > 0).any()  # low scores count against their answer
    dens, hit = score_densities(store, info, pair.llm, pair.verifier, EvalConfig())
    assert not hit and dens["has_density"]
    f1, f0 = np.asarray(dens["f1"]), np.asarray(dens["f0"])
    assert f1.shape == f0.shape == grid.shape
    assert np.all(f1 > 0) and np.all(f0 > 0)
    # densities in score space integrate to about 1 over (0, 1)
    for d in (f1, f0):
        assert abs(float(np.trapezoid(d, grid)) - 1.0) < 0.02
    # they are the weight fit's KDE densities (logit space) times the Jacobian
    assert fw.kde is not None
    fine = np.linspace(1e-4, 1 - 1e-4, 20001)
    for log_d in fw.kde.log_densities(special.logit(fine)):
        d = np.exp(log_d) / (fine * (1.0 - fine))
        assert abs(float(np.trapezoid(d, fine)) - 1.0) < 0.02
    l1, l0 = fw.kde.log_densities(special.logit(grid))
    jac = 1.0 / (grid * (1.0 - grid))
    np.testing.assert_allclose(f1, np.exp(l1) * jac, rtol=1e-12)
    np.testing.assert_allclose(f0, np.exp(l0) * jac, rtol=1e-12)
    # within the data the log ratio of the plotted densities is the weight curve (beyond,
    # the weight is held at its edge value while the densities go on falling)
    x = special.logit(grid)
    inside = (x >= fw.kde.x_lo) & (x <= fw.kde.x_hi)
    assert inside.sum() > 250
    np.testing.assert_allclose(np.log(f1 / f0)[inside], w[inside], atol=1e-9)
    # the histograms count every response of its class
    assert dens["hist_correct"].sum() == stored.correct.sum()
    assert dens["hist_incorrect"].sum() == (~stored.correct).sum()
    m1, m0 = fw.kde.log_densities(np.array([0.0]))
    assert (m1 - m0)[0] == pytest.approx(float(true_llr(np.array([0.0]))[0]), abs=0.2)


def test_orm_scores_use_recorded_sigmoid_and_rank_transforms() -> None:
    pair, _, _ = gaussian_pair(9, 100, 8, raw="logit")
    assert fit(pair, "kde_wv").transform.startswith("rank:")  # "auto" for wide scores
    fw = fit(pair, "kde_wv", StrategyParams(transform="sigmoid"))
    assert fw.transform == "sigmoid"
    np.testing.assert_allclose(
        weight_curve(fw, np.array([-1.0, 2.0]), raw=True),
        weight_curve(fw, special.expit([-1.0, 2.0])),
    )
    fr = fit(pair, "vanilla_wv", StrategyParams(transform="rank"))
    assert fr.transform.startswith("rank:")  # quantiles of the calibration scores
    w = response_weights(fr, pair)
    assert np.all((w > 0) & (w < 1))
    # the rank is the calibration ECDF: the median calibration score maps to ~0.5,
    # whatever the other responses of its problem are
    med = float(np.median(pair.score))
    assert weight_curve(fr, np.array([med]), raw=True)[0] == pytest.approx(0.5, abs=0.01)
    lo, hi = float(pair.score.min()), float(pair.score.max())
    np.testing.assert_allclose(
        weight_curve(fr, np.array([lo - 1.0, hi + 1.0]), raw=True),
        weight_curve(fr, np.array([lo, hi]), raw=True),
    )


# --------------------------------------------------------------------------------------
# cross-fitting: no problem's labels reach its own weights
# --------------------------------------------------------------------------------------

LEAK_STRATS = ["kde_wv", "platt_wv", "isotonic_wv", "logit_wv", "majority"]
LEAK_PARAMS = StrategyParams(offset_grid_size=5, offset_n_subsets=3, offset_budget=4)
LEAK_CONFIG = EvalConfig(params=LEAK_PARAMS, folds=4, fold_seed=11, budgets=(1,), n_subsets=2)

#: stands in for `fit_strategy` inside `crossfit_strategies` (None: the real one)
FitHook = Callable[..., FittedWeights]


def _cross_fit(
    pair: PairData, hook: FitHook | None, monkeypatch: pytest.MonkeyPatch
) -> dict[str, VoteInputs]:
    with monkeypatch.context() as m:
        if hook is not None:
            m.setattr(pipeline_module, "fit_strategy", hook)
        cf = crossfit_strategies(pair, LEAK_STRATS, LEAK_CONFIG)
    assert not cf.skipped, cf.skipped
    return dict(cf.inputs)


def _own_label_leaks(
    pair: PairData,
    make_hook: Callable[[PairData], FitHook | None],
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[int, int]:
    """(rows whose weights or g changed when only their own fold's labels were flipped,
    rows of other folds that changed). The first must be 0 for leak-free cross-fitting; the
    second > 0 shows the perturbation has power."""
    base = _cross_fit(pair, make_hook(pair), monkeypatch)
    own = other = 0
    for fold in kfold(pair.n_problems, LEAK_CONFIG.folds, LEAK_CONFIG.fold_seed):
        rows = pair.rows(fold.test)
        flipped = pair.correct.copy()
        flipped[rows] = ~flipped[rows]
        pert = with_labels(pair, flipped)
        new = _cross_fit(pert, make_hook(pert), monkeypatch)
        mask = np.zeros(pair.n_responses, dtype=bool)
        mask[rows] = True
        for name in LEAK_STRATS:
            a, b = base[name], new[name]
            diff = a.weight != b.weight
            if a.g is not None and b.g is not None:
                diff |= a.g != b.g
            own += int(diff[mask].sum())
            other += int(diff[~mask].sum())
    return own, other


def test_cross_fitting_never_uses_a_problems_own_labels(monkeypatch: pytest.MonkeyPatch) -> None:
    pair, _, _ = gaussian_pair(12, 40, 8)
    own, other = _own_label_leaks(pair, lambda p: None, monkeypatch)
    assert own == 0
    assert other > 0


def test_leak_detector_catches_an_injected_leak(monkeypatch: pytest.MonkeyPatch) -> None:
    pair, _, _ = gaussian_pair(12, 40, 8)

    def leaky(full: PairData) -> FitHook:
        # fits (and tunes offsets) on every problem, including the held-out ones: a leak
        def fit_all(
            strategy: Strategy,
            calib: PairData,
            params: StrategyParams,
            *,
            reduction: str = "stored",
            tuner: OffsetTuner | None = None,
            problems: np.ndarray | None = None,
        ) -> FittedWeights:
            return fit_strategy(strategy, full, params, reduction=reduction)

        return fit_all

    own, _ = _own_label_leaks(pair, leaky, monkeypatch)
    assert own > 0


@dataclass(frozen=True, kw_only=True)
class RecordingKDE(KDEWV):
    """KDE WV that records the problems of every calibration pair it is fitted on."""

    seen: list[tuple[str, ...]] = field(default_factory=list)

    def fit(self, calib: PairData, params: StrategyParams) -> FittedWeights:
        self.seen.append(calib.problem_ids)
        return super().fit(calib, params)


def test_cross_fit_calibrates_on_disjoint_problems_only() -> None:
    pair, _, _ = gaussian_pair(13, 30, 6)
    seen: list[tuple[str, ...]] = []
    register(
        RecordingKDE(
            name="recording_kde", label="recording", description="test", color="#000", seen=seen
        )
    )
    config = EvalConfig(params=FAST, folds=5, fold_seed=2, budgets=(1, 4), n_subsets=4)
    try:
        cf = crossfit_strategies(pair, ["recording_kde", "kde_wv"], config)
    finally:
        unregister("recording_kde")
    assert not cf.skipped
    tests = [set(np.asarray(pair.problem_ids)[f.test]) for f in cf.folds]
    assert sorted(i for t in tests for i in t) == sorted(pair.problem_ids)
    assert len(seen) == 5
    for ids, fold, test in zip(seen, cf.folds, tests, strict=True):
        assert not set(ids) & test
        assert len(ids) + len(test) == pair.n_problems
        assert ids == tuple(pair.problem_ids[int(i)] for i in fold.train)
        assert (cf.fold_of[fold.test] == fold.index).all()
    # the recorded fits are KDE WV's own
    np.testing.assert_array_equal(cf.inputs["recording_kde"].weight, cf.inputs["kde_wv"].weight)
    curves = evaluate(pair, {"kde_wv": cf.inputs["kde_wv"]}, config)
    assert curves.problem_ids == pair.problem_ids
    assert curves.per_problem.shape == (1, 2, 30)


# --------------------------------------------------------------------------------------
# simulated benchmark: calibrated strategies approach the Bayes-optimal vote
# --------------------------------------------------------------------------------------


def test_calibrated_strategies_come_close_to_bayes_optimal() -> None:
    # one q for the LLM (as in the paper's model): the Bayes vote knows it, calibrated ones
    # estimate it from g per subset and use the subset's m instead of the true K + 1
    n_wrong = 3
    pair, true_llr, q = gaussian_pair(
        21, 400, 16, mu1=0.6, mu0=-0.6, sd1=1.0, sd0=1.3, n_wrong=n_wrong, q_lo=0.45, q_hi=0.45
    )
    budgets = (4, 8, 16)
    subsets = make_subsets(pair, budgets, n_subsets=100, seed=5)
    names = ["majority", "kde_wv", "platt_wv", "isotonic_wv", "logit_wv", "kde_wv_oracle"]
    config = EvalConfig(
        params=FAST, folds=5, fold_seed=0, budgets=budgets, n_subsets=100, subset_seed=5
    )
    cf = crossfit_strategies(pair, names, config)
    assert not cf.skipped
    curves = evaluate(pair, cf.inputs, config)
    assert curves.budgets == budgets and curves.n_subsets == 100 and curves.seed == 5
    # the generator's posterior: sum over the cluster of llr + log(q K / (1 - q))
    prob = np.repeat(np.arange(pair.n_problems), pair.sizes())
    bayes_w = true_llr(special.logit(pair.score)) + np.log(q * n_wrong / (1 - q))[prob]
    bayes = accuracy_curves(pair, {"bayes": VoteInputs(weight=bayes_w)}, subsets=subsets)
    b = bayes.curve("bayes")
    maj = curves.curve("majority")
    assert np.all(b > maj + 0.03)  # the verifier carries information
    for name, tol in [("kde_wv", 0.03), ("isotonic_wv", 0.03), ("platt_wv", 0.05)]:
        acc = curves.curve(name)
        assert np.all(acc > b - tol), (name, acc, b)
        assert np.all(acc < b + 0.01), (name, acc, b)
    assert np.all(curves.curve("logit_wv") > b - 0.05)
    assert np.all(np.abs(curves.curve("kde_wv_oracle") - b) < 0.02)


# --------------------------------------------------------------------------------------
# transfer and bootstrap bands
# --------------------------------------------------------------------------------------


def test_calibrate_on_one_pair_evaluate_on_another() -> None:
    calib, _, _ = gaussian_pair(30, 80, 8, dataset_id="A", prefix="a")
    ev, _, _ = gaussian_pair(31, 50, 8, dataset_id="B", prefix="b")
    config = EvalConfig(params=FAST, budgets=(1, 8), n_subsets=10)

    def inputs_on(target: PairData) -> dict[str, VoteInputs]:
        # disjoint problems: every calibrated strategy is fitted on all of `calib`
        out = {n: transfer_inputs(calib, target, n, config) for n in ("kde_wv", "majority")}
        # oracles use the evaluated problems' own labels by design: they are not transferred
        for n in ("kde_wv_oracle", "pass_at_n"):
            with pytest.raises(TransferError, match="oracle"):
                transfer_inputs(calib, target, n, config)
            s = get_strategy(n)
            out[n] = s.vote_inputs(s.fit(target, config.params), target)
        return out

    res = inputs_on(ev)
    curves = evaluate(ev, res, config)
    assert curves.problem_ids == ev.problem_ids
    assert curves.strategies == ("kde_wv", "majority", "kde_wv_oracle", "pass_at_n")
    kde = get_strategy("kde_wv")
    fitted = fit_strategy(kde, calib, FAST)
    assert fitted.calibration["dataset_id"] == "A"
    direct = kde.vote_inputs(fitted, ev)
    assert direct.g is not None and res["kde_wv"].g is not None
    np.testing.assert_array_equal(res["kde_wv"].weight, direct.weight)
    np.testing.assert_array_equal(res["kde_wv"].g, direct.g)
    flipped = with_labels(ev, ~ev.correct)
    res2 = inputs_on(flipped)
    assert np.array_equal(res["kde_wv"].weight, res2["kde_wv"].weight)
    assert not np.array_equal(res["kde_wv_oracle"].weight, res2["kde_wv_oracle"].weight)


def test_bootstrap_bands_cover_truth_and_shrink_with_data(store: Store) -> None:
    wgrid = np.asarray(WEIGHT_GRID)
    dense = np.abs(special.logit(wgrid)) <= 0.8  # both classes dense here
    grid = wgrid[dense]
    config = EvalConfig(level=0.9, weight_boot=40, boot_seed=1)
    widths = []
    for n_problems in (60, 240):
        pair, true_llr, _ = gaussian_pair(40, n_problems, 16)
        info = store_pair(store, pair, f"boot{n_problems}")
        wf, hit = weight_fit(store, info, pair.llm, pair.verifier, "kde_wv", config)
        assert not hit and wf["n_failed"] == 0
        # the centre is the fit on every problem of the pair
        full = fit(store.load_pair(info, pair.llm, pair.verifier), "kde_wv")
        np.testing.assert_array_equal(wf["w_fitted"], weight_curve(full, WEIGHT_GRID))
        center = np.asarray(wf["w_fitted"])[dense]
        lower = np.asarray(wf["band_low"])[dense]
        upper = np.asarray(wf["band_high"])[dense]
        assert np.all(lower <= upper)
        # the band is widened to hold the centre where the percentile band misses it; there
        # the centre is an end of the band, so count only strictly inside
        inside = (lower < center) & (center < upper)
        assert inside.mean() >= 0.8
        widths.append(float(np.mean(upper - lower)))
    truth = true_llr(special.logit(grid))
    covered = (lower - 0.05 <= truth) & (truth <= upper + 0.05)
    assert covered.mean() >= 0.75
    assert widths[1] < 0.7 * widths[0]


# --------------------------------------------------------------------------------------
# the project's simulator (core.simulate): exact log LR and true q are known
# --------------------------------------------------------------------------------------

SIM_PAIRS = [
    ("sim-llm-C", "sim-shepherd-last"),
    ("sim-llm-D", "sim-internlm2-orm"),
    ("sim-llm-E", "sim-easy2hard-last"),
]


@pytest.mark.parametrize(("llm", "verifier"), SIM_PAIRS)
def test_on_simulator_llr_is_close_and_calibrated_votes_near_true_model(
    llm: str, verifier: str
) -> None:
    import core.synth.simulate as sm
    from core.store import pair_from_frame

    prm = sm.load_params()  # data/sim_params.json is committed: failing to load is a bug
    assert llm in prm.llm_names and verifier in prm.verifier_names, (llm, verifier)
    sim = sm.simulate(seed=3, n_problems=300, n_samples=16, llms=[llm], verifiers=[verifier])
    df = sim.to_long_frame().sort_values(["problem_id", "sample_idx"], kind="stable")
    pair = pair_from_frame(df, "sim", llm, verifier)

    # fitted log LR vs the exact one, where both classes are dense
    fw = fit(pair, "kde_wv")
    x = clipped_logit(pair.score, 1e-6)
    x1, x0 = x[pair.correct], x[~pair.correct]
    lo = max(np.quantile(x1, 0.1), np.quantile(x0, 0.1))
    hi = min(np.quantile(x1, 0.9), np.quantile(x0, 0.9))
    grid = special.expit(np.linspace(lo, hi, 25))
    err = np.abs(weight_curve(fw, grid) - sim.true_log_lr(llm, verifier, grid))
    assert np.median(err) < 0.1 and err.max() < 0.35, err

    # Theorem 3.2 with the simulator's true ingredients (exact LR, true per-problem q)
    budgets = (4, 8, 16)
    subsets = make_subsets(pair, budgets, n_subsets=100, seed=1)
    q = sim.true_q(llm).reindex(list(pair.problem_ids)).to_numpy()
    prob = np.repeat(np.arange(pair.n_problems), pair.sizes())
    w_true = sim.true_log_lr(llm, verifier, np.clip(pair.score, 1e-12, 1 - 1e-12))
    truth = accuracy_curves(
        pair, {"true": VoteInputs(weight=w_true, g=q[prob])}, subsets=subsets
    ).curve("true")
    names = ["majority", "kde_wv", "logit_wv", "isotonic_wv", "kde_wv_oracle"]
    config = EvalConfig(
        params=FAST, folds=5, fold_seed=0, budgets=budgets, n_subsets=100, subset_seed=1
    )
    cf = crossfit_strategies(pair, names, config)
    assert not cf.skipped
    curves = evaluate(pair, cf.inputs, config)
    assert curves.budgets == budgets and curves.n_subsets == 100 and curves.seed == 1
    best = np.max([curves.curve(n) for n in ("kde_wv", "logit_wv", "isotonic_wv")], axis=0)
    assert np.all(best > truth - 0.035), (best, truth)
    assert truth[-1] > curves.curve("majority")[-1]
    assert np.all(np.abs(curves.curve("kde_wv_oracle") - truth) < 0.03)
