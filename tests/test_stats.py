"""Bootstrap intervals, paired differences and the efficiency ratio."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.evaluation.engine import CurveSet
from core.evaluation.stats import (
    Interval,
    StatsError,
    bootstrap_mean_ci,
    bootstrap_means,
    curve_cis,
    efficiency_from_curves,
    efficiency_ratio,
    paired_difference_ci,
    paired_difference_cis,
)


def test_bootstrap_ci_covers_true_mean_at_roughly_nominal_rate() -> None:
    rng = np.random.default_rng(123)
    true_mean = 0.3  # Beta(1.5, 3.5)
    reps, n_prob = 300, 80
    data = rng.beta(1.5, 3.5, size=(reps, n_prob))
    # one call: the replicate datasets sit on the leading axis
    _, low, high = bootstrap_mean_ci(data, n_boot=500, level=0.9, seed=1)
    coverage = float(np.mean((low <= true_mean) & (true_mean <= high)))
    assert 0.82 <= coverage <= 0.96
    _, low95, high95 = bootstrap_mean_ci(data, n_boot=500, level=0.95, seed=1)
    coverage95 = float(np.mean((low95 <= true_mean) & (true_mean <= high95)))
    assert 0.89 <= coverage95 <= 0.99
    assert np.all(high95 - low95 >= high - low - 1e-12)


def test_bootstrap_estimate_shape_and_width() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(3, 4, 200))
    est, low, high = bootstrap_mean_ci(x, n_boot=400)
    assert est.shape == low.shape == high.shape == (3, 4)
    np.testing.assert_allclose(est, x.mean(axis=-1))
    assert np.all(low < est) and np.all(est < high)
    # width ~ 2 * 1.96 * sd / sqrt(P) with sd of U(0,1) = 0.2887
    expected = 2 * 1.96 * 0.2887 / math.sqrt(200)
    assert np.all(np.abs((high - low) / expected - 1.0) < 0.3)


def test_bootstrap_resamples_depend_only_on_seed() -> None:
    rng = np.random.default_rng(5)
    a, b = rng.uniform(size=50), rng.uniform(size=50)
    ma, mb = bootstrap_means(a, 300, seed=4), bootstrap_means(b, 300, seed=4)
    np.testing.assert_allclose(bootstrap_means(a - b, 300, seed=4), ma - mb, atol=1e-12)
    assert not np.allclose(bootstrap_means(a, 300, seed=5), ma)
    # a constant vector has no bootstrap spread
    np.testing.assert_allclose(bootstrap_means(np.full(30, 0.7), 100), 0.7)


def test_paired_interval_is_narrower_than_unpaired() -> None:
    rng = np.random.default_rng(8)
    n_prob = 300
    difficulty = rng.uniform(size=n_prob)
    a = np.clip(difficulty + rng.normal(0, 0.05, n_prob), 0, 1)
    b = np.clip(difficulty + 0.03 + rng.normal(0, 0.05, n_prob), 0, 1)
    paired = paired_difference_ci(a, b, n_boot=1000, seed=0)
    assert isinstance(paired, Interval)
    assert paired.estimate == pytest.approx(float(np.mean(a - b)))
    assert paired.low < paired.estimate < paired.high
    assert paired.high < 0.0  # B is better by about 0.03, clearly resolved when paired
    # unpaired: independent resamples of the two strategies
    diff = bootstrap_means(a, 1000, seed=1) - bootstrap_means(b, 1000, seed=2)
    lo, hi = np.quantile(diff, [0.025, 0.975])
    assert (paired.high - paired.low) < 0.5 * (hi - lo)
    assert lo < 0.0 < hi  # too noisy to resolve without pairing


def test_paired_difference_arrays_and_errors() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.uniform(size=(4, 60)), rng.uniform(size=(4, 60))
    res = paired_difference_cis(a, b, n_boot=200)
    assert res.estimate.shape == (4,)
    for i in range(4):
        one = paired_difference_ci(a[i], b[i], n_boot=200)
        assert res.at(i).estimate == pytest.approx(one.estimate)
        # same seed, same P: identical resamples whatever the leading shape
        assert res.at(i).low == pytest.approx(one.low)
        assert res.at(i).high == pytest.approx(one.high)
    with pytest.raises(StatsError, match="paired_difference_cis"):
        paired_difference_ci(a, b)
    with pytest.raises(StatsError, match="equal shapes"):
        paired_difference_cis(a, b[:, :10])
    with pytest.raises(StatsError, match="level"):
        bootstrap_mean_ci(a, level=1.5)
    with pytest.raises(StatsError, match="at least one problem"):
        bootstrap_mean_ci(np.zeros((3, 0)))


def test_efficiency_ratio_interpolates_on_log2_n() -> None:
    budgets = [1, 2, 4, 8, 16]
    acc = [0.2, 0.4, 0.6, 0.8, 0.9]
    # target 0.5: halfway (in accuracy) between N=2 and N=4 -> log2 N = 1.5 -> N = 2.828427
    res = efficiency_ratio(budgets, acc, 0.5, 16)
    assert res.reached
    assert res.budget == pytest.approx(2.8284271247, rel=1e-9)
    assert res.ratio == pytest.approx(2.8284271247 / 16, rel=1e-9)
    # target 0.65: a quarter of the way from N=4 (0.6) to N=8 (0.8) -> 2 ** 2.25 = 4.7568
    assert efficiency_ratio(budgets, acc, 0.65, 8).budget == pytest.approx(4.75682846, rel=1e-8)
    # exactly on a grid point
    res = efficiency_ratio(budgets, acc, 0.8, 16)
    assert res.budget == pytest.approx(8.0) and res.ratio == pytest.approx(0.5)
    # already reached at N = 1 -> 1 / ref
    res = efficiency_ratio(budgets, acc, 0.1, 32)
    assert res.budget == 1.0 and res.ratio == pytest.approx(1 / 32)
    # never reached
    res = efficiency_ratio(budgets, acc, 0.95, 16)
    assert not res.reached and res.budget is None and math.isnan(res.ratio)
    assert "never" in res.reason


def test_efficiency_ratio_uses_first_crossing() -> None:
    # non-monotone: reaches 0.5 between N=1 and N=2, dips, then rises again
    res = efficiency_ratio([1, 2, 4, 8], [0.3, 0.7, 0.4, 0.9], 0.5, 4)
    # frac = (0.5 - 0.3) / 0.4 = 0.5 -> log2 N = 0.5 -> N = sqrt(2)
    assert res.budget == pytest.approx(math.sqrt(2))
    assert res.ratio == pytest.approx(math.sqrt(2) / 4)
    with pytest.raises(StatsError):
        efficiency_ratio([1, 4, 2], [0.1, 0.2, 0.3], 0.2, 2)


def test_curve_cis_and_efficiency_from_curves() -> None:
    rng = np.random.default_rng(3)
    n_prob = 120
    base = rng.uniform(size=n_prob)
    budgets = (1, 2, 4, 8)
    a = np.stack([np.clip(base * 0.5 + 0.1 * i, 0, 1) for i in range(4)])
    b = np.stack([np.clip(base * 0.5 + 0.05 * i, 0, 1) for i in range(4)])
    curves = CurveSet(
        budgets=budgets,
        strategies=("a", "b"),
        problem_ids=tuple(str(i) for i in range(n_prob)),
        per_problem=np.stack([a, b]),
        exact=(False, False),
        n_subsets=1,
        seed=0,
    )
    ci = curve_cis(curves, n_boot=300)
    assert ci.estimate.shape == (2, 4)
    np.testing.assert_allclose(ci.estimate, np.stack([a, b]).mean(axis=-1))
    assert np.all(ci.low <= ci.estimate) and np.all(ci.estimate <= ci.high)
    res = efficiency_from_curves(curves, "a", "b", 8)
    target = float(b[3].mean())
    acc_a = a.mean(axis=-1)
    assert res.target == pytest.approx(target)
    # by hand: A crosses B's N=8 accuracy between its grid points i-1 and i
    i = int(np.flatnonzero(acc_a >= target)[0])
    frac = (target - acc_a[i - 1]) / (acc_a[i] - acc_a[i - 1])
    assert res.budget == pytest.approx(2 ** (i - 1 + frac))
    # no clipping binds here: A gains 0.1 per doubling, B's target is +0.15 -> halfway
    # between N=2 (+0.1) and N=4 (+0.2)
    assert res.budget == pytest.approx(2**1.5)
    with pytest.raises(StatsError, match="ref_budget"):
        efficiency_from_curves(curves, "a", "b", 3)
