"""Weighting functions fitted on every problem of a pair, with their uncertainty, cached.

* `weight_fit`: a strategy's w(t) on `WEIGHT_GRID`, fitted on all the pair's problems, with
  a pointwise bootstrap band (problems resampled with replacement and refitted; for offset
  strategies the offset search is repeated on the resamples from one per-problem objective,
  which is exact and fast), and where the pair's responses fall.
* `score_densities`: histograms of the transformed scores of correct and incorrect
  responses and their class densities (the logit-space KDE times the Jacobian).
* `weight_curve`: just the fitted curve (the all-pairs grid).

Evaluation never uses these all-problem fits (it cross-fits); they are for plots and export.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Final

import numpy as np
from scipy import special

from core.evaluation.config import EvalConfig
from core.evaluation.offsets import OffsetTuner
from core.evaluation.pipeline import (
    fit_strategy,
    load_pair,
    oriented_params,
    whole_pair_calibration,
)
from core.evaluation.stats import bootstrap_means
from core.methods.fitted import FittedWeights
from core.methods.kde import fit_kde_params
from core.methods.params import KDE_FIELDS, TRANSFORM_FIELDS, CalibrationError, StrategyParams
from core.methods.registry import Strategy, get_strategy
from core.methods.transforms import (
    apply_transform,
    auto_once,
    clipped_logit,
    inverse_transform,
    oriented,
    resolve_transform,
)
from core.store import DatasetInfo, Store
from core.types import BoolArray, FloatArray, PairData

ProgressFn = Callable[[str, int, int], None]

#: Transformed-score grid of every weight curve (dense near the ends, where ORMs pile up).
WEIGHT_GRID: Final[FloatArray] = np.asarray(
    special.expit(np.linspace(special.logit(0.001), special.logit(0.999), 401)),
    dtype=np.float64,
)
_HIST_BINS_T: Final = 40
_HIST_LOGIT: Final = (-7.0, 7.0, 42)  # logit-axis histogram: lo, hi, number of bins


def _relevant(strategy: Strategy, config: EvalConfig) -> dict[str, Any]:
    """The settings a fit on all problems depends on (so unrelated settings share caches)."""
    return {
        "strategy": strategy.key(config.params),
        "reduction": config.reduction,
        "n_boot": config.weight_boot,
        "level": config.level,
        "seed": config.boot_seed,
        "grid": len(WEIGHT_GRID),
        "calibration": config.calibration,
        "fold_seed": config.fold_seed,
    }


def _band(
    pair: PairData,
    strategy: Strategy,
    fitted: FittedWeights,
    params: StrategyParams,
    config: EvalConfig,
    tuner: OffsetTuner,
) -> dict[str, Any]:
    alpha = (1.0 - config.level) / 2.0
    if strategy.offset is not None:
        obj = tuner.objective(strategy, fitted)
        b_full = float(strategy.offset.pick(obj.candidates, obj.values.mean(axis=1)[:, None])[0])
        boot = bootstrap_means(obj.values, n_boot=config.weight_boot, seed=config.boot_seed)
        b_boot = strategy.offset.pick(obj.candidates, boot)
        base = strategy.base_weights(fitted, WEIGHT_GRID)
        curves = np.vstack([base - strategy.offset.shift(float(b)) for b in b_boot])
        low, high = np.quantile(curves, [alpha, 1.0 - alpha], axis=0)
        b_lo, b_hi = np.quantile(b_boot, [alpha, 1.0 - alpha])
        # the objective itself: calibration accuracy of every candidate b, with a
        # pointwise band over the same resamples of problems
        acc_lo, acc_hi = np.quantile(np.asarray(boot), [alpha, 1.0 - alpha], axis=1)
        return {
            "band_low": low,
            "band_high": high,
            "n_failed": 0,
            "b_fitted": b_full,
            "b_low": float(b_lo),
            "b_high": float(b_hi),
            "b_candidates": np.asarray(obj.candidates, dtype=np.float64),
            "b_accuracy": np.asarray(obj.values.mean(axis=1), dtype=np.float64),
            "b_accuracy_low": np.asarray(acc_lo, dtype=np.float64),
            "b_accuracy_high": np.asarray(acc_hi, dtype=np.float64),
            "b_budgets": [int(b) for b in obj.budgets],
        }
    rng = np.random.default_rng(config.boot_seed)
    rows: list[FloatArray] = []
    failed = 0
    for _ in range(config.weight_boot):
        idx = rng.integers(0, pair.n_problems, size=pair.n_problems)
        try:
            fw = strategy.fit(pair.select(idx), params)
        except CalibrationError:
            failed += 1
            continue
        rows.append(strategy.weights(fw, WEIGHT_GRID))
    if not rows:
        raise CalibrationError("every bootstrap refit failed")
    low, high = np.quantile(np.vstack(rows), [alpha, 1.0 - alpha], axis=0)
    return {
        "band_low": low,
        "band_high": high,
        "n_failed": failed,
        "b_fitted": math.nan,
        "b_low": math.nan,
        "b_high": math.nan,
    }


def weight_fit(
    store: Store,
    info: DatasetInfo,
    llm: str,
    verifier: str,
    strategy: str,
    config: EvalConfig,
    *,
    progress: ProgressFn | None = None,
) -> tuple[dict[str, Any], bool]:
    """(payload, from_cache): the fitted w on `WEIGHT_GRID` with its bootstrap band (widened
    where a percentile band misses the full-data fit, counted in ``n_widened``), the
    offset and its interval (offset strategies), and the responses' transformed scores."""
    strat = get_strategy(strategy)
    if strat.oracle or not strat.show_weights:
        raise CalibrationError(f"{strat.label} has no weight function to draw")

    def compute() -> dict[str, Any]:
        if progress is not None:
            progress("fitting the weights and their bootstrap band", 0, 1)
        loaded = load_pair(store, info, llm, verifier, config.reduction)
        # labels as config.calibration says (inferred once; the band refits on resamples
        # of the inferred labels, so it omits EM's own uncertainty), and the direction
        # settled once here, so that no bootstrap refit flips it
        pair, params, latent = whole_pair_calibration(loaded, config)
        tuner = OffsetTuner(pair)
        fitted = fit_strategy(strat, pair, params, reduction=config.reduction, tuner=tuner)
        t = fitted.transformed(pair)
        w_resp = strat.weights(fitted, t)
        w_fit = strat.weights(fitted, WEIGHT_GRID)
        out: dict[str, Any] = {
            "transform": fitted.transform,
            "orientation": fitted.orientation,
            "raw_grid": raw_score_grid(fitted.transform, fitted.orientation),
            "w_fitted": w_fit,
            "t_sorted": np.sort(t),
            "share_negative": float(np.mean(w_resp < 0)) if w_resp.size else 0.0,
            "n_problems": pair.n_problems,
            "n_responses": pair.n_responses,
            "n_correct": int(np.sum(loaded.correct)),
            "fitted_b": fitted.offset.b if fitted.offset is not None else math.nan,
            "uses_q": strat.uses_q(fitted),
            "calibration_note": latent.report() if latent is not None else "",
        }
        out.update(_band(pair, strat, fitted, params, config, tuner))
        low = np.asarray(out["band_low"], dtype=np.float64)
        high = np.asarray(out["band_high"], dtype=np.float64)
        # a percentile band can miss the full-data fit where the fit is biased (isotonic
        # steps whose position is uncertain): widen it there so it always holds the curve
        out["n_widened"] = int(np.count_nonzero((w_fit < low) | (w_fit > high)))
        out["band_low"] = np.minimum(low, w_fit)
        out["band_high"] = np.maximum(high, w_fit)
        return out

    key = {"llm": llm, "verifier": verifier, **_relevant(strat, config)}
    return store.cached(info, "weight_fit", key, compute)


def raw_score_grid(transform: str, orientation: str) -> FloatArray:
    """The raw score each point of `WEIGHT_GRID` stands for under a resolved transform
    and direction (for a raw-score axis: tokens, raw reward)."""
    return inverse_transform(oriented(WEIGHT_GRID, orientation), transform)


def _histograms(t: FloatArray, correct: BoolArray, eps: float) -> dict[str, Any]:
    edges = np.linspace(0.0, 1.0, _HIST_BINS_T + 1)
    lo, hi, nb = _HIST_LOGIT
    edges_x = np.linspace(lo, hi, nb + 1)
    x = np.clip(clipped_logit(t, eps), lo, hi)
    return {
        "hist_edges": edges,
        "hist_correct": np.histogram(t[correct], bins=edges)[0].astype(np.float64),
        "hist_incorrect": np.histogram(t[~correct], bins=edges)[0].astype(np.float64),
        "hist_edges_logit": edges_x,
        "hist_correct_logit": np.histogram(x[correct], bins=edges_x)[0].astype(np.float64),
        "hist_incorrect_logit": np.histogram(x[~correct], bins=edges_x)[0].astype(np.float64),
    }


def score_densities(
    store: Store, info: DatasetInfo, llm: str, verifier: str, config: EvalConfig
) -> tuple[dict[str, Any], bool]:
    """(payload, from_cache): histograms of the transformed scores of correct and incorrect
    responses and, when both classes have >= 2 responses, their KDE densities on
    `WEIGHT_GRID` (``has_density``)."""
    params = config.params

    def compute() -> dict[str, Any]:
        pair = load_pair(store, info, llm, verifier, config.reduction)
        p = oriented_params(auto_once(params, pair), pair)
        raw = apply_transform(pair.score, resolve_transform(p.transform, pair.score))
        t = oriented(raw, p.orientation)
        c = np.asarray(pair.correct, dtype=bool)
        out = _histograms(t, c, p.clip_eps)
        try:
            kde = fit_kde_params(clipped_logit(t, p.clip_eps), c, p)
        except CalibrationError:
            out.update(has_density=False, f1=np.zeros(0), f0=np.zeros(0), bandwidth=math.nan)
            return out
        tg = np.clip(WEIGHT_GRID, p.clip_eps, 1 - p.clip_eps)
        l1, l0 = kde.log_densities(special.logit(tg))
        jac = 1.0 / (tg * (1.0 - tg))
        out.update(
            has_density=True, f1=np.exp(l1) * jac, f0=np.exp(l0) * jac, bandwidth=kde.bandwidth1
        )
        return out

    key = {
        "llm": llm,
        "verifier": verifier,
        "reduction": config.reduction,
        "params": params.to_dict(TRANSFORM_FIELDS | KDE_FIELDS),
        "grid": len(WEIGHT_GRID),
    }
    return store.cached(info, "score_densities", key, compute)


def weight_curve(
    store: Store, info: DatasetInfo, llm: str, verifier: str, strategy: str, config: EvalConfig
) -> tuple[dict[str, Any], bool]:
    """(payload, from_cache): the fitted w on `WEIGHT_GRID` (``w``), its offset (``b``, NaN
    without one), the share of responses weighted negatively and the pair's accuracy."""
    strat = get_strategy(strategy)

    def compute() -> dict[str, Any]:
        loaded = load_pair(store, info, llm, verifier, config.reduction)
        pair, params, _ = whole_pair_calibration(loaded, config)
        fitted = fit_strategy(strat, pair, params, reduction=config.reduction)
        w_resp = strat.weights(fitted, fitted.transformed(pair))
        return {
            "w": strat.weights(fitted, WEIGHT_GRID),
            "b": fitted.offset.b if fitted.offset is not None else math.nan,
            "share_negative": float(np.mean(w_resp < 0)) if w_resp.size else 0.0,
            "accuracy": float(np.mean(loaded.correct)) if loaded.n_responses else math.nan,
        }

    key = {
        "llm": llm,
        "verifier": verifier,
        "strategy": strat.key(config.params),
        "reduction": config.reduction,
        "grid": len(WEIGHT_GRID),
        "calibration": config.calibration,
        "fold_seed": config.fold_seed,
    }
    return store.cached(info, "weight_curve", key, compute)


__all__ = ["WEIGHT_GRID", "raw_score_grid", "score_densities", "weight_curve", "weight_fit"]
