"""Checks added after review: they pin behaviours that earlier tests did not constrain
(each was shown to let a deliberate mutation through before)."""

from __future__ import annotations

import dataclasses
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import special

from core.evaluation import (
    EvalConfig,
    accuracy_curves,
    crossfit_strategies,
    evaluate,
    fit_strategy,
    kfold,
    pair_curves,
    response_weights,
    transfer_folds,
)
from core.evaluation import pipeline as pipeline_module
from core.evaluation.stats import bootstrap_mean_ci, bootstrap_means
from core.methods import (
    CalibrationError,
    FittedWeights,
    StrategyParams,
    default_strategies,
    get_strategy,
)
from core.methods.transforms import clipped_logit
from core.store import Store
from core.studies.transfer import transfer_inputs
from core.types import PairData, VoteInputs


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
    kde = get_strategy("kde_wv")
    fitted = kde.fit(calib, StrategyParams(transform="rank"))
    assert fitted.calibrator is not None
    w = response_weights(fitted, target)
    g = fitted.calibrator.predict(fitted.transformed(target))
    changed = target.score.copy()
    changed[3:8] = [0.99, 0.01, 0.5, 0.97, 0.02]  # responses a budget-3 prefix never sees
    t2 = replace(target, score=changed)
    np.testing.assert_array_equal(response_weights(fitted, t2)[:3], w[:3])
    np.testing.assert_array_equal(fitted.calibrator.predict(fitted.transformed(t2))[:3], g[:3])
    vi, vi2 = kde.vote_inputs(fitted, target), kde.vote_inputs(fitted, t2)
    assert vi.g is not None and vi2.g is not None
    np.testing.assert_array_equal(vi2.weight[:3], vi.weight[:3])
    np.testing.assert_array_equal(vi2.g[:3], vi.g[:3])


def test_auto_transform_is_one_kind_for_all_folds(monkeypatch: pytest.MonkeyPatch) -> None:
    pair = make_pair(seed=3)
    score = pair.score.copy()
    score[5] = 1.02  # a single score outside [0, 1]
    pair = replace(pair, score=score)
    fits: list[FittedWeights] = []
    real_fit = pipeline_module.fit_strategy

    def recording(*args: Any, **kwargs: Any) -> FittedWeights:
        fitted = real_fit(*args, **kwargs)
        fits.append(fitted)
        return fitted

    monkeypatch.setattr(pipeline_module, "fit_strategy", recording)
    config = EvalConfig(params=StrategyParams(offset_n_subsets=10), folds=5, n_subsets=10)
    cf = crossfit_strategies(pair, ["vanilla_wv", "logit_wv"], config)
    assert not cf.skipped and len(fits) == 2 * 5
    # one kind for every fold ("rank": a score outside [0, 1] that is no count), each fold's
    # ranks fitted on its own calibration problems
    assert {f.transform.split(":", 1)[0] for f in fits} == {"rank"}
    assert len({f.transform for f in fits}) == 5
    # what the folds' weights show: vanilla WV weighs the rank transform of the score,
    # which keeps the order of the scores within each fold (a sigmoid would have flattened
    # it); logit WV weighs logit(t) - logit(b) with one b per fold
    fold_of_row = cf.fold_of[pair.problem_index()]
    t = cf.inputs["vanilla_wv"].weight
    assert np.all((t > 0) & (t < 1))
    for f in cf.folds:
        rows = fold_of_row == f.index
        order = np.argsort(pair.score[rows], kind="stable")
        assert np.all(np.diff(t[rows][order]) >= 0)
    resid = cf.inputs["logit_wv"].weight - clipped_logit(t, config.params.clip_eps)
    for f in cf.folds:
        r = resid[fold_of_row == f.index]
        np.testing.assert_allclose(r, r[0], rtol=0, atol=1e-12)


def test_oracle_runs_with_parametric_transforms() -> None:
    pair = make_pair(seed=4)
    tokens = replace(pair, score=np.round(1000 + 4000 * (1 - pair.score)))
    config = EvalConfig(folds=3, n_subsets=10)
    cf = crossfit_strategies(tokens, ["kde_wv_oracle", "kde_wv"], config)
    assert not cf.skipped
    curves = evaluate(tokens, cf.inputs, config)
    assert curves.strategies == ("kde_wv_oracle", "kde_wv")
    assert np.isfinite(curves.per_problem).all()


@pytest.mark.parametrize("kind", ["linear_wv", "logit_wv"])
def test_offset_weights_follow_the_formula_and_the_chosen_b_is_best(kind: str) -> None:
    pair = make_pair(seed=5)
    params = StrategyParams(offset_n_subsets=20, offset_budget=4)
    fitted = fit_strategy(get_strategy(kind), pair, params)
    assert fitted.offset is not None
    b = fitted.offset.b
    t = pair.score
    eps = params.clip_eps
    if kind == "linear_wv":
        expected = t - b
    else:
        expected = special.logit(np.clip(t, eps, 1 - eps)) - special.logit(b)
    np.testing.assert_allclose(response_weights(fitted, pair), expected, rtol=1e-12, atol=1e-12)
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
    fitted = fit_strategy(get_strategy("linear_wv"), pair, params)
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
    fitted = get_strategy("kde_wv").fit(pair, StrategyParams(n_bins=10))
    assert fitted.calibrator is not None
    g = fitted.calibrator.predict(fitted.transformed(pair))
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


CONFIG_CHANGES: dict[str, Any] = {
    "params": StrategyParams(bandwidth=0.3),
    "reduction": "min",
    "folds": 3,
    "fold_seed": 9,
    "budgets": (1, 2),
    "n_subsets": 17,
    "subset_seed": 4,
    "order": "sample",
    "tie_break": "first",
    "n_boot": 11,
    "level": 0.9,
    "boot_seed": 5,
    "weight_boot": 7,
    "calibration": "none",
}


def test_every_curve_parameter_is_in_the_cache_key(tmp_path: Path) -> None:
    from core.importers import import_path
    from core.importers.writers import write_long_csv
    from tests.conftest import make_long_frame

    fields = {f.name for f in dataclasses.fields(EvalConfig)}
    assert fields == set(CONFIG_CHANGES), "a new EvalConfig field needs a cache-key test"
    base = EvalConfig(n_subsets=8, n_boot=20)
    for name, value in CONFIG_CHANGES.items():
        other = replace(base, **{name: value})
        assert other.key() != base.key() and other.digest() != base.digest(), name

    df = make_long_frame(n_problems=10, n_samples=4, llms=("m", "other"), verifiers=("v", "other"))
    strategies = ("majority", "kde_wv")
    with Store(tmp_path / "k.duckdb") as s:
        info = import_path(s, write_long_csv(df, tmp_path / "k.csv"), name="k").info
        assert not pair_curves(s, info, "m", "v", strategies, base).from_cache
        assert pair_curves(s, info, "m", "v", strategies, base).from_cache
        calls: dict[str, tuple[str, str, tuple[str, ...], EvalConfig]] = {
            "llm": ("other", "v", strategies, base),
            "verifier": ("m", "other", strategies, base),
            "strategies": ("m", "v", ("majority",), base),
        }
        for name, value in CONFIG_CHANGES.items():
            calls[name] = ("m", "v", strategies, replace(base, **{name: value}))
        for name, (llm, verifier, strats, config) in calls.items():
            assert not pair_curves(s, info, llm, verifier, strats, config).from_cache, name


def test_transfer_between_overlapping_problems_is_cross_fitted() -> None:
    pair = make_pair(seed=8)
    config = EvalConfig(folds=4, fold_seed=1)
    folds = transfer_folds(pair, pair, 4, 1)
    for f, g in zip(folds, kfold(pair.n_problems, 4, 1), strict=True):
        assert not set(f.train.tolist()) & set(f.test.tolist())
        np.testing.assert_array_equal(f.train, g.train)
        np.testing.assert_array_equal(f.test, g.test)
    # a pair transferred onto itself is ordinary cross-fitting: no problem's labels reach
    # its own weights
    vi = transfer_inputs(pair, pair, "kde_wv", config)
    cf = crossfit_strategies(pair, ["kde_wv"], config)
    ref = cf.inputs["kde_wv"]
    np.testing.assert_array_equal(vi.weight, ref.weight)
    assert vi.g is not None and ref.g is not None
    np.testing.assert_array_equal(vi.g, ref.g)
    # a source whose problems all lie in one held-out fold has nothing left to fit on
    with pytest.raises(CalibrationError, match="no source problems"):
        transfer_inputs(pair.select([0]), pair, "kde_wv", config)


def test_non_finite_calibration_scores_are_a_clear_error() -> None:
    pair = make_pair(seed=9)
    score = pair.score.copy()
    score[0] = np.nan
    bad = replace(pair, score=score)
    with pytest.raises(CalibrationError, match="finite"):
        get_strategy("kde_wv").fit(bad, StrategyParams())
    with pytest.raises(CalibrationError, match="finite"):
        fit_strategy(get_strategy("logit_wv"), bad, StrategyParams())


def test_unfittable_strategy_is_skipped_with_its_reason(tmp_path: Path) -> None:
    from core.importers import import_path
    from core.importers.writers import write_long_csv
    from tests.conftest import make_long_frame

    df = make_long_frame(n_problems=12, n_samples=6, llms=("m",), verifiers=("v",))
    df["is_correct"] = True
    df.loc[df.index[0], "is_correct"] = False  # one incorrect response in the whole pair
    df["answer"] = np.where(df["is_correct"], df["gold_answer"], "wrong")
    config = EvalConfig(folds=3, n_subsets=10, n_boot=50)
    with Store(tmp_path / "s.duckdb") as s:
        import_path(s, write_long_csv(df, tmp_path / "s.csv"), name="s")
        info = s.get_dataset("s")
        res = pair_curves(s, info, "m", "v", default_strategies(), config)
        again = pair_curves(s, info, "m", "v", default_strategies(), config)
    assert "kde_wv" in res.skipped and "incorrect" in res.skipped["kde_wv"]
    assert "kde_wv" not in res.curves.strategies and "majority" in res.curves.strategies
    assert again.from_cache and again.skipped == res.skipped
