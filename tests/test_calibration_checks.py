"""Checks added after review: they pin behaviours that earlier tests did not constrain
(each was shown to let a deliberate mutation through before)."""

from __future__ import annotations

import dataclasses
from dataclasses import replace

import numpy as np
import pytest
from scipy import special

from core.analysis import CurveSpec
from core.budget import VoteInputs, accuracy_curves
from core.calibration import (
    CalibrationError,
    StrategyParams,
    calibrate_transfer,
    cross_fit_many,
    fit_weights,
)
from core.stats import bootstrap_mean_ci, bootstrap_means
from core.store import Store
from core.types import PairData


def make_pair(n_problems: int = 60, n: int = 8, seed: int = 0, levels: bool = False) -> PairData:
    rng = np.random.default_rng(seed)
    m = n_problems * n
    if levels:  # P(correct | score) = score, scores uniform
        score = rng.uniform(0.02, 0.98, size=m)
        correct = rng.random(m) < score
    else:
        correct = rng.random(m) < 0.5
        score = special.expit(np.where(correct, rng.normal(1, 1, m), rng.normal(-1, 1.3, m)))
    offsets = np.arange(0, m + 1, n, dtype=np.int64)
    cluster = np.zeros(m, dtype=np.int64)
    for p in range(n_problems):
        seen: dict[int, int] = {}
        raw = np.where(correct[p * n : (p + 1) * n], 0, 1 + rng.integers(0, 3, n))
        cluster[p * n : (p + 1) * n] = [seen.setdefault(int(r), len(seen)) for r in raw]
    return PairData(
        "d",
        "m",
        "v",
        tuple(f"p{i:03d}" for i in range(n_problems)),
        offsets,
        cluster,
        score,
        correct,
        np.tile(np.arange(n), n_problems),
        np.full(m, np.nan),
    )


def test_rank_weights_ignore_the_problems_other_responses() -> None:
    calib, target = make_pair(seed=1), make_pair(seed=2)
    fitted = fit_weights(calib, "kde_wv", StrategyParams(transform="rank"))
    w, g = fitted.response_weights(target), fitted.response_g(target)
    changed = target.score.copy()
    changed[3:8] = [0.99, 0.01, 0.5, 0.97, 0.02]  # responses a budget-3 prefix never sees
    t2 = replace(target, score=changed)
    np.testing.assert_array_equal(fitted.response_weights(t2)[:3], w[:3])
    np.testing.assert_array_equal(fitted.response_g(t2)[:3], g[:3])


def test_auto_transform_is_one_kind_for_all_folds() -> None:
    pair = make_pair(seed=3)
    score = pair.score.copy()
    score[5] = 1.02  # a single score outside [0, 1]
    pair = replace(pair, score=score)
    res = cross_fit_many(
        pair, ["vanilla_wv", "logit_wv"], StrategyParams(offset_n_subsets=10), k=5, n_subsets=10
    )
    kinds = {f.fitted[s].transform for f in res.folds for s in f.fitted}
    assert kinds == {"sigmoid"}


def test_oracle_runs_with_parametric_transforms() -> None:
    pair = make_pair(seed=4)
    tokens = replace(pair, score=np.round(1000 + 4000 * (1 - pair.score)))
    res = cross_fit_many(tokens, ["oracle_optimal", "kde_wv"], k=3, n_subsets=10)
    assert np.isfinite(res.curves.per_problem).all()


@pytest.mark.parametrize("kind", ["linear_wv", "logit_wv"])
def test_offset_weights_follow_the_formula_and_the_chosen_b_is_best(kind: str) -> None:
    pair = make_pair(seed=5)
    params = StrategyParams(offset_n_subsets=20, offset_budget=4)
    fitted = fit_weights(pair, kind, params)
    assert fitted.offset is not None
    b = fitted.offset.b
    t = pair.score
    eps = params.clip_eps
    if kind == "linear_wv":
        expected = t - b
    else:
        expected = special.logit(np.clip(t, eps, 1 - eps)) - special.logit(b)
    np.testing.assert_allclose(fitted.response_weights(pair), expected, rtol=1e-12, atol=1e-12)
    vals = fitted.offset.objective_values
    assert vals[list(fitted.offset.candidates).index(b)] == pytest.approx(vals.max())


def test_mean_offset_objective_is_the_mean_over_budgets() -> None:
    pair = make_pair(seed=6)
    params = StrategyParams(
        offset_objective="mean",
        offset_budgets=(1, 2, 4),
        offset_n_subsets=15,
        offset_seed=3,
        offset_grid_size=9,
    )
    fitted = fit_weights(pair, "linear_wv", params)
    assert fitted.offset is not None
    for cand, value in zip(fitted.offset.candidates, fitted.offset.objective_values, strict=True):
        curves = accuracy_curves(
            pair,
            {"x": VoteInputs(weight=pair.score - cand)},
            budgets=[1, 2, 4],
            n_subsets=15,
            seed=3,
        )
        assert value == pytest.approx(curves.mean()[0].mean(), abs=1e-12)


def test_calibrator_g_follows_the_true_rate() -> None:
    # deciles of s with P(correct | s) = s: g(s) is the decile's rate, within ~0.05 of s
    pair = make_pair(n_problems=2000, n=8, seed=7, levels=True)
    fitted = fit_weights(pair, "kde_wv", StrategyParams(n_bins=10))
    g = fitted.response_g(pair)
    assert np.abs(g - pair.score).max() < 0.08
    assert len(np.unique(g)) == 10


def test_bootstrap_interval_is_the_percentile_interval() -> None:
    x = np.random.default_rng(0).random((3, 50))
    est, low, high = bootstrap_mean_ci(x, n_boot=500, level=0.9, seed=4)
    means = bootstrap_means(x, n_boot=500, seed=4)
    np.testing.assert_allclose(low, np.quantile(means, 0.05, axis=-1))
    np.testing.assert_allclose(high, np.quantile(means, 0.95, axis=-1))
    np.testing.assert_allclose(est, x.mean(axis=-1))
    # and the bootstrap means are means of resampled problems: within the data's range
    assert (means >= x.min(axis=-1, keepdims=True)).all()


CHANGES = {
    "llm": "other",
    "verifier": "other",
    "strategies": ("majority",),
    "params": StrategyParams(bandwidth=0.3),
    "reduction": "min",
    "k": 3,
    "fold_seed": 9,
    "budgets": (1, 2),
    "n_subsets": 17,
    "subset_seed": 4,
    "n_boot": 11,
    "level": 0.9,
    "order": "sample",
}


def test_every_curve_parameter_is_in_the_cache_key() -> None:
    spec = CurveSpec("d", "m", "v")
    fields = {f.name for f in dataclasses.fields(CurveSpec)} - {"dataset"}
    assert fields == set(CHANGES), "a new CurveSpec field needs a cache-key test"
    key = Store.cache_key("sha", "pair_curves", spec.key_params())
    for name, value in CHANGES.items():
        other = replace(spec, **{name: value})
        assert Store.cache_key("sha", "pair_curves", other.key_params()) != key, name


def test_transfer_between_overlapping_problems_is_refused() -> None:
    pair = make_pair(seed=8)
    with pytest.raises(CalibrationError, match="share"):
        calibrate_transfer(pair, pair, ["kde_wv"])


def test_non_finite_calibration_scores_are_a_clear_error() -> None:
    pair = make_pair(seed=9)
    score = pair.score.copy()
    score[0] = np.nan
    with pytest.raises(CalibrationError, match="finite"):
        fit_weights(replace(pair, score=score), "kde_wv")


def test_unfittable_strategy_is_skipped_with_its_reason(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from core.analysis import pair_curves
    from core.importers import import_path
    from core.importers.writers import write_long_csv
    from tests.conftest import make_long_frame

    df = make_long_frame(n_problems=12, n_samples=6, llms=("m",), verifiers=("v",))
    df["is_correct"] = True
    df.loc[df.index[0], "is_correct"] = False  # one incorrect response in the whole pair
    df["answer"] = np.where(df["is_correct"], df["gold_answer"], "wrong")
    with Store(tmp_path / "s.duckdb") as s:
        import_path(s, write_long_csv(df, tmp_path / "s.csv"), name="s")
        res = pair_curves(s, CurveSpec("s", "m", "v", k=3, n_subsets=10, n_boot=50))
        again = pair_curves(s, CurveSpec("s", "m", "v", k=3, n_subsets=10, n_boot=50))
    assert "kde_wv" in res.skipped and "incorrect" in res.skipped["kde_wv"]
    assert "kde_wv" not in res.curves.strategies and "majority" in res.curves.strategies
    assert again.from_cache and again.skipped == res.skipped
