"""What each dashboard page shows, computed without Streamlit.

One pure function per page (in the manner of optuna's visualization ``_get_*_info()``):
it takes the store and the page's parameters and returns a frozen result object of plain
arrays, which `dashboard.figures` draws and the tests check directly.

* `weight_view`: one pair's weighting function w(score), fitted on every problem of the
  pair, with a pointwise bootstrap band, the class densities of correct and incorrect
  responses on the same score grid, a histogram of the scores and the negative intervals.
* `weight_grid_view`: the fitted weight curves of every (LLM, verifier) pair (small
  multiples).
* `budget_view`: cross-fitted accuracy-vs-budget curves with bootstrap intervals for
  several pairs and strategies, and efficiency ratios written out as sentences.
* `compare_view`: accuracy and gain over a baseline at one budget for pairs x strategies,
  with paired bootstrap intervals over the same per-problem values; CSV and LaTeX export.
* `problem_view`: one problem's answer clusters with counts, scores, weights and cluster
  totals per strategy, using weights fitted on the cross-fitting folds that do *not*
  contain the problem; `disagreement_problems` lists the problems where strategies pick
  different answers.

Expensive intermediate results are cached in the store's result table (keyed by the
dataset's content hash and every parameter), so every Streamlit session and every restart
of the server reuses them; accuracy curves come from `core.analysis.pair_curves`, which
caches the same way (and shares its cache with ``ttslab curves``).
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final

import numpy as np
import pandas as pd
from scipy import special

from core.analysis import (
    DEFAULT_STRATEGIES,
    ENGINE_VERSION,
    AnalysisError,
    CurveSpec,
    PairCurves,
    load_pair_reduced,
    pair_curves,
)
from core.budget import Q_EPS, TIE_RTOL
from core.calibration import (
    CalibrationError,
    FittedWeights,
    StrategyParams,
    apply_transform,
    auto_once,
    bootstrap_weight_bands,
    clipped_logit,
    fit_isotonic,
    fit_kde,
    fit_platt,
    fit_weights,
    kfold_problems,
    offset_objective,
    offset_weights,
    pick_offset,
    problem_index,
    resolve_transform,
    response_rows,
    select_problems,
)
from core.stats import EfficiencyResult, bootstrap_means, efficiency_ratio, paired_difference_cis
from core.store import DatasetInfo, Store
from core.strategies import Strategy, get_strategy, list_strategies
from core.types import BoolArray, FloatArray, IntArray, PairData, TTSLabError

__all__ = [
    "CALIBRATORS",
    "EXPLORER_STRATEGIES",
    "OFFSET_KINDS",
    "SHORT_NAMES",
    "WEIGHT_GRID",
    "AnalysisSettings",
    "BudgetCurve",
    "BudgetView",
    "CompareView",
    "DisagreementView",
    "Efficiency",
    "ProblemView",
    "ViewError",
    "WeightGridView",
    "WeightPanel",
    "WeightView",
    "budget_view",
    "compare_view",
    "curve_strategies",
    "dataset_label",
    "disagreement_problems",
    "efficiency_text",
    "negative_intervals",
    "offset_range",
    "problem_view",
    "short_name",
    "weight_grid_view",
    "weight_view",
]

#: Bump when a change here would alter cached view payloads.
VIEWS_VERSION: Final = 1

ProgressFn = Callable[[str, int, int], None]

#: Weighting functions the weight pages can show: registry name -> control label.
CALIBRATORS: Final[dict[str, str]] = {
    "kde_wv": "KDE (Theorem 3.2)",
    "platt_wv": "Platt",
    "isotonic_wv": "isotonic",
    "logit_wv": "logit",
    "linear_wv": "linear",
}
#: Kinds whose weight is the score minus an offset b chosen on calibration problems.
OFFSET_KINDS: Final = ("linear_wv", "logit_wv")
#: Short names for sentences ("logit WV reaches vanilla WV@64 with 14 samples = 22%").
SHORT_NAMES: Final[dict[str, str]] = {
    "majority": "majority vote",
    "best_of_n": "best-of-N",
    "vanilla_wv": "vanilla WV",
    "linear_wv": "linear WV",
    "logit_wv": "logit WV",
    "kde_wv": "KDE WV",
    "platt_wv": "Platt WV",
    "isotonic_wv": "isotonic WV",
    "oracle_optimal": "oracle",
    "pass_at_n": "pass@N",
}
#: Transformed-score grid of every weight curve (dense near the ends, where ORMs pile up).
WEIGHT_GRID: Final[FloatArray] = np.asarray(
    special.expit(np.linspace(special.logit(0.001), special.logit(0.999), 401)),
    dtype=np.float64,
)
_HIST_BINS_T: Final = 40
_HIST_LOGIT: Final = (-7.0, 7.0, 42)  # logit-axis histogram: lo, hi, number of bins
_DENSITY_KEYS: Final = ("transform", "clip_eps", "bandwidth", "bandwidth_mode", "n_grid")


class ViewError(TTSLabError):
    """A page cannot be computed for these choices (unknown pair, unusable data...)."""


def dataset_label(name: str, simulated: bool) -> str:
    """The dataset's name, marked as simulated when it is (and its name does not say so)."""
    if simulated and "simulated" not in name.lower():
        return f"{name} (simulated)"
    return name


def short_name(strategy: str) -> str:
    return SHORT_NAMES.get(strategy, strategy)


def offset_range(kind: str) -> tuple[float, float]:
    """Range of the offset b of an offset kind (logit: the open interval, kept inside)."""
    if kind == "linear_wv":
        return (-1.0, 1.0)
    if kind == "logit_wv":
        return (0.01, 0.99)
    raise ViewError(f"{kind!r} has no offset b")


def negative_intervals(grid: FloatArray, w: FloatArray) -> tuple[tuple[float, float], ...]:
    """Maximal runs of the grid where w < 0, as (first, last) grid values."""
    neg = np.asarray(w) < 0
    out: list[tuple[float, float]] = []
    start: int | None = None
    for i, is_neg in enumerate(neg):
        if is_neg and start is None:
            start = i
        if not is_neg and start is not None:
            out.append((float(grid[start]), float(grid[i - 1])))
            start = None
    if start is not None:
        out.append((float(grid[start]), float(grid[-1])))
    return tuple(out)


# --------------------------------------------------------------------------------------
# settings and the result cache
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AnalysisSettings:
    """Parameters shared by the curve pages (they decide the cache key of each pair)."""

    params: StrategyParams = field(default_factory=StrategyParams)
    reduction: str = "stored"
    k: int = 5
    fold_seed: int = 0
    n_subsets: int = 200
    subset_seed: int = 0
    n_boot: int = 1000
    level: float = 0.95

    def spec(self, dataset: str, llm: str, verifier: str, strategies: Sequence[str]) -> CurveSpec:
        return CurveSpec(
            dataset=dataset,
            llm=llm,
            verifier=verifier,
            strategies=tuple(strategies),
            params=self.params,
            reduction=self.reduction,
            k=self.k,
            fold_seed=self.fold_seed,
            n_subsets=self.n_subsets,
            subset_seed=self.subset_seed,
            n_boot=self.n_boot,
            level=self.level,
        )


def _cached_arrays(
    store: Store,
    info: DatasetInfo,
    kind: str,
    key_params: Mapping[str, Any],
    compute: Callable[[], dict[str, Any]],
) -> tuple[dict[str, Any], bool]:
    """Arrays from the store's result cache, else computed and stored (npz payload)."""
    params = {"views": VIEWS_VERSION, "engine": ENGINE_VERSION, **key_params}
    key = Store.cache_key(info.content_sha256, kind, params)
    raw = store.cache_get(key)
    if raw is not None:
        with np.load(io.BytesIO(raw), allow_pickle=False) as z:
            return {name: z[name] for name in z.files}, True
    arrays = compute()
    buf = io.BytesIO()
    np.savez_compressed(buf, allow_pickle=False, **{k: np.asarray(v) for k, v in arrays.items()})
    store.cache_put(key, info.content_sha256, kind, params, buf.getvalue())
    return arrays, False


def _pair_key(llm: str, verifier: str, reduction: str) -> dict[str, Any]:
    return {"llm": llm, "verifier": verifier, "reduction": reduction}


def _check_pair(info: DatasetInfo, llm: str, verifier: str) -> None:
    if llm not in info.llms or verifier not in info.verifiers:
        raise ViewError(
            f"dataset {info.name!r} has no pair ({llm!r}, {verifier!r}); "
            f"LLMs: {', '.join(info.llms)}; verifiers: {', '.join(info.verifiers)}"
        )


def _check_kind(kind: str) -> None:
    if kind not in CALIBRATORS:
        raise ViewError(f"unknown weighting function {kind!r}; choose one of {list(CALIBRATORS)}")


class _LazyPair:
    """Loads the pair at most once, and only if some cache missed."""

    def __init__(self, store: Store, dataset: str, llm: str, verifier: str, reduction: str):
        self._args = (store, dataset, llm, verifier, reduction)
        self._pair: PairData | None = None

    def get(self) -> PairData:
        if self._pair is None:
            store, dataset, llm, verifier, reduction = self._args
            try:
                self._pair = load_pair_reduced(store, dataset, llm, verifier, reduction)
            except AnalysisError as exc:
                raise ViewError(str(exc)) from exc
            except TypeError as exc:
                # core.store cannot read an all-null step_scores column (pd.NA): the
                # dataset has no step scores to reduce
                if reduction == "stored":
                    raise
                raise ViewError(
                    f"pair ({llm}, {verifier}) of {dataset!r} has no step scores; only the "
                    f"stored score can be used (reading them failed: {exc})"
                ) from exc
        return self._pair


def _notify(progress: ProgressFn | None, stage: str, done: int, total: int) -> None:
    if progress is not None:
        progress(stage, done, total)


# --------------------------------------------------------------------------------------
# weight functions
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class WeightView:
    """One pair's weighting function on the transformed-score grid, with what explains it.

    Attributes:
        grid: transformed scores t in (0, 1) (`WEIGHT_GRID`).
        w: the curve shown (the fitted one, or with the offset b chosen by hand).
        w_fitted: the curve fitted on every problem of the pair.
        band_low, band_high: pointwise bootstrap percentile band of the fitted curve
            (problems resampled with replacement and the weights refitted).
        f1, f0: densities of t for correct / incorrect responses (the logit-space KDE
            times the Jacobian); None when a class has fewer than 2 responses.
        hist_edges, hist_correct, hist_incorrect: where the scores lie (counts per bin of t).
        hist_edges_logit, hist_correct_logit, hist_incorrect_logit: the same on logit(t).
        b, b_fitted, b_low, b_high: offset shown, fitted offset and its bootstrap interval
            (offset kinds only, else None).
        negative: intervals of t where the shown weight is negative.
        share_negative: fraction of the pair's responses whose shown weight is negative.
    """

    dataset: str
    simulated: bool
    llm: str
    verifier: str
    kind: str
    label: str
    transform: str
    reduction: str
    grid: FloatArray
    w: FloatArray
    w_fitted: FloatArray
    band_low: FloatArray
    band_high: FloatArray
    level: float
    n_boot: int
    n_failed: int
    f1: FloatArray | None
    f0: FloatArray | None
    hist_edges: FloatArray
    hist_correct: FloatArray
    hist_incorrect: FloatArray
    hist_edges_logit: FloatArray
    hist_correct_logit: FloatArray
    hist_incorrect_logit: FloatArray
    b: float | None
    b_fitted: float | None
    b_low: float | None
    b_high: float | None
    manual_offset: bool
    negative: tuple[tuple[float, float], ...]
    share_negative: float
    n_problems: int
    n_responses: int
    n_correct: int
    clip_eps: float
    bandwidth: float | None
    from_cache: bool
    notes: tuple[str, ...] = ()
    t_sorted: FloatArray = field(default_factory=lambda: np.zeros(0), repr=False)

    @property
    def has_negative(self) -> bool:
        return bool(np.any(self.w < 0))

    def with_offset(self, b: float | None) -> WeightView:
        """The same view with the offset b of linear / logit WV set by hand (None: the
        fitted b). Only the curve shown, its negative region and share change; the band
        stays that of the fitted curve."""
        if b is None:
            if not self.manual_offset:
                return self
            w = self.w_fitted
            share = self._share_negative_at(self.b_fitted)
            return replace(
                self,
                w=w,
                b=self.b_fitted,
                manual_offset=False,
                share_negative=share,
                negative=negative_intervals(self.grid, w),
            )
        if self.kind not in OFFSET_KINDS:
            raise ViewError(f"{self.kind} has no offset b (only {', '.join(OFFSET_KINDS)})")
        lo, hi = offset_range(self.kind)
        b = float(b)
        if not lo <= b <= hi:
            raise ViewError(f"offset b of {self.kind} must lie in [{lo}, {hi}], got {b}")
        w = offset_weights(self.kind, self.grid, b, self.clip_eps)
        return replace(
            self,
            w=w,
            b=b,
            manual_offset=True,
            share_negative=self._share_negative_at(b),
            negative=negative_intervals(self.grid, w),
        )

    def _share_negative_at(self, b: float | None) -> float:
        if b is None or self.t_sorted.size == 0:
            return self.share_negative
        return float(np.mean(offset_weights(self.kind, self.t_sorted, b, self.clip_eps) < 0))

    @property
    def weight_unit(self) -> str:
        return "score units" if self.kind == "linear_wv" else "log-odds"


def _kind_params(kind: str, params: StrategyParams) -> StrategyParams:
    """Parameters that matter for `kind` (others reset, so caches are shared)."""
    base = StrategyParams()
    p = params
    if kind != "kde_wv":
        p = replace(p, bandwidth=base.bandwidth, bandwidth_mode=base.bandwidth_mode)
    if kind not in OFFSET_KINDS:
        p = replace(
            p,
            offset_objective=base.offset_objective,
            offset_budget=base.offset_budget,
            offset_budgets=base.offset_budgets,
            offset_grid_size=base.offset_grid_size,
            offset_n_subsets=base.offset_n_subsets,
            offset_seed=base.offset_seed,
        )
    return p


def _weight_fit_arrays(
    lazy: _LazyPair, kind: str, params: StrategyParams, n_boot: int, level: float, seed: int
) -> dict[str, Any]:
    pair = lazy.get()
    params = auto_once(params, pair)
    fitted = fit_weights(pair, kind, params)
    t = fitted.transformed(pair)
    w_resp = fitted.weights_from_transformed(t)
    out: dict[str, Any] = {
        "transform": fitted.transform,
        "w_fitted": fitted.weight_curve(WEIGHT_GRID),
        "t_sorted": np.sort(t),
        "share_negative": float(np.mean(w_resp < 0)) if w_resp.size else 0.0,
        "n_problems": pair.n_problems,
        "n_responses": pair.n_responses,
        "n_correct": int(np.sum(pair.correct)),
    }
    alpha = (1.0 - level) / 2.0
    if kind in OFFSET_KINDS:
        # the offset search on resampled problems, from one per-problem objective matrix
        cands, _, obj = offset_objective(pair, t, kind, params)
        b_full = float(pick_offset(cands, obj.mean(axis=1)[:, None], kind)[0])
        boot = bootstrap_means(obj, n_boot=n_boot, seed=seed)  # (C, n_boot)
        b_boot = pick_offset(cands, boot, kind)
        curves = np.vstack(
            [offset_weights(kind, WEIGHT_GRID, float(b), params.clip_eps) for b in b_boot]
        )
        low, high = np.quantile(curves, [alpha, 1.0 - alpha], axis=0)
        b_lo, b_hi = np.quantile(b_boot, [alpha, 1.0 - alpha])
        out.update(
            band_low=low,
            band_high=high,
            n_failed=0,
            b_fitted=b_full,
            b_low=float(b_lo),
            b_high=float(b_hi),
            fitted_b_matches=bool(fitted.offset is not None and fitted.offset.b == b_full),
        )
    else:
        bands = bootstrap_weight_bands(
            pair,
            kind,
            params,
            WEIGHT_GRID,
            n_boot=n_boot,
            seed=seed,
            level=level,
            fit_fn=_lean_fit,
        )
        out.update(
            band_low=bands.lower,
            band_high=bands.upper,
            n_failed=bands.n_failed,
            b_fitted=math.nan,
            b_low=math.nan,
            b_high=math.nan,
            fitted_b_matches=True,
        )
    # A percentile band can miss the full-data fit where the fit is biased (isotonic steps
    # whose position is uncertain): widen it there so the band always holds the curve.
    w_fit = np.asarray(out["w_fitted"], dtype=np.float64)
    low = np.asarray(out["band_low"], dtype=np.float64)
    high = np.asarray(out["band_high"], dtype=np.float64)
    out["n_widened"] = int(np.count_nonzero((w_fit < low) | (w_fit > high)))
    out["band_low"] = np.minimum(low, w_fit)
    out["band_high"] = np.maximum(high, w_fit)
    return out


def _lean_fit(strategy: Strategy, calib: PairData, params: StrategyParams) -> FittedWeights:
    """`fit_weights` without the parts the weight curve does not use (the descriptive KDE
    and the calibrator g) for Platt and isotonic weights; the curve is identical."""
    kind = strategy.name
    if kind not in ("platt_wv", "isotonic_wv"):
        return strategy.fit(calib, params)
    transform = resolve_transform(params.transform, calib.score)
    t = apply_transform(calib.score, transform, calib.offsets)
    x = clipped_logit(t, params.clip_eps)
    c = np.asarray(calib.correct, dtype=bool)
    if kind == "platt_wv":
        return FittedWeights(kind, transform, params, platt=fit_platt(x, c))
    iso = fit_isotonic(x, c, smoothing=params.bin_smoothing)
    return FittedWeights(kind, transform, params, isotonic=iso)


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


def _density_arrays(lazy: _LazyPair, params: StrategyParams) -> dict[str, Any]:
    pair = lazy.get()
    params = auto_once(params, pair)
    fitted = fit_weights(pair, "vanilla_wv", params)  # resolves the transform only
    t = fitted.transformed(pair)
    c = np.asarray(pair.correct, dtype=bool)
    out = _histograms(t, c, params.clip_eps)
    x = clipped_logit(t, params.clip_eps)
    try:
        kde = fit_kde(
            x,
            c,
            bandwidth=params.bandwidth,
            bandwidth_mode=params.bandwidth_mode,
            n_grid=params.n_grid,
            density_floor=params.density_floor,
        )
    except CalibrationError:
        out.update(has_density=False, f1=np.zeros(0), f0=np.zeros(0), bandwidth=math.nan)
        return out
    tg = np.clip(WEIGHT_GRID, params.clip_eps, 1 - params.clip_eps)
    l1, l0 = kde.log_densities(special.logit(tg))
    jac = 1.0 / (tg * (1.0 - tg))
    out.update(has_density=True, f1=np.exp(l1) * jac, f0=np.exp(l0) * jac, bandwidth=kde.bandwidth1)
    return out


def weight_view(
    store: Store,
    dataset: str,
    llm: str,
    verifier: str,
    kind: str = "kde_wv",
    params: StrategyParams | None = None,
    reduction: str = "stored",
    n_boot: int = 50,
    *,
    offset: float | None = None,
    level: float = 0.9,
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> WeightView:
    """The weighting function of `kind` for one pair, fitted on all its problems.

    `offset` (linear and logit WV only) replaces the fitted b in the curve shown; the band
    stays that of the fitted curve. The band refits the weights on `n_boot` bootstrap
    resamples of problems (for offset kinds: repeats the offset search on them, from the
    per-problem objective values, which is exact and fast). The q/m term of Theorem 3.2
    depends on each subset and is not part of w(s).
    """
    _check_kind(kind)
    if offset is not None and kind not in OFFSET_KINDS:
        raise ViewError(f"{kind} has no offset b (only {', '.join(OFFSET_KINDS)})")
    info = store.get_dataset(dataset)
    _check_pair(info, llm, verifier)
    params = params or StrategyParams()
    params = replace(params, step_reduction=reduction)
    lazy = _LazyPair(store, dataset, llm, verifier, reduction)
    kp = _kind_params(kind, params)
    _notify(progress, "fitting the weights and their bootstrap band", 0, 2)
    try:
        fit, hit1 = _cached_arrays(
            store,
            info,
            "view_weight_fit",
            {
                **_pair_key(llm, verifier, reduction),
                "kind": kind,
                "params": kp.to_dict(),
                "n_boot": n_boot,
                "level": level,
                "seed": seed,
                "grid": len(WEIGHT_GRID),
            },
            lambda: _weight_fit_arrays(lazy, kind, kp, n_boot, level, seed),
        )
        _notify(progress, "class densities", 1, 2)
        dens_params = {k: v for k, v in params.to_dict().items() if k in _DENSITY_KEYS}
        dens, hit2 = _cached_arrays(
            store,
            info,
            "view_score_densities",
            {**_pair_key(llm, verifier, reduction), "params": dens_params},
            lambda: _density_arrays(lazy, params),
        )
    except CalibrationError as exc:
        raise ViewError(
            f"cannot fit {CALIBRATORS[kind]} weights for ({llm}, {verifier}): {exc}"
        ) from exc
    _notify(progress, "done", 2, 2)
    w_fitted = np.asarray(fit["w_fitted"], dtype=np.float64)
    b_fitted = float(fit["b_fitted"]) if kind in OFFSET_KINDS else None
    notes: list[str] = []
    if kind == "kde_wv":
        notes.append(
            "The vote adds log(q(m-1)/(1-q)) per response on top of w(s): q and m depend on "
            "the subset, so that term is not drawn."
        )
    n_wide = int(fit["n_widened"])
    if n_wide:
        notes.append(
            f"At {n_wide} of {len(WEIGHT_GRID)} grid points the bootstrap percentile band "
            "missed the fitted curve (a biased step) and was widened to include it."
        )
    if kind in OFFSET_KINDS and not bool(fit["fitted_b_matches"]):
        notes.append("the bootstrap's offset search disagrees with the fit (report this)")
    has_d = bool(dens["has_density"])
    view = WeightView(
        dataset=info.name,
        simulated=info.simulated,
        llm=llm,
        verifier=verifier,
        kind=kind,
        label=get_strategy(kind).label,
        transform=str(fit["transform"]),
        reduction=reduction,
        grid=WEIGHT_GRID,
        w=w_fitted,
        w_fitted=w_fitted,
        band_low=np.asarray(fit["band_low"], dtype=np.float64),
        band_high=np.asarray(fit["band_high"], dtype=np.float64),
        level=level,
        n_boot=n_boot,
        n_failed=int(fit["n_failed"]),
        f1=np.asarray(dens["f1"], dtype=np.float64) if has_d else None,
        f0=np.asarray(dens["f0"], dtype=np.float64) if has_d else None,
        hist_edges=np.asarray(dens["hist_edges"], dtype=np.float64),
        hist_correct=np.asarray(dens["hist_correct"], dtype=np.float64),
        hist_incorrect=np.asarray(dens["hist_incorrect"], dtype=np.float64),
        hist_edges_logit=np.asarray(dens["hist_edges_logit"], dtype=np.float64),
        hist_correct_logit=np.asarray(dens["hist_correct_logit"], dtype=np.float64),
        hist_incorrect_logit=np.asarray(dens["hist_incorrect_logit"], dtype=np.float64),
        b=b_fitted,
        b_fitted=b_fitted,
        b_low=float(fit["b_low"]) if kind in OFFSET_KINDS else None,
        b_high=float(fit["b_high"]) if kind in OFFSET_KINDS else None,
        manual_offset=False,
        negative=negative_intervals(WEIGHT_GRID, w_fitted),
        share_negative=float(fit["share_negative"]),
        n_problems=int(fit["n_problems"]),
        n_responses=int(fit["n_responses"]),
        n_correct=int(fit["n_correct"]),
        clip_eps=params.clip_eps,
        bandwidth=float(dens["bandwidth"]) if has_d else None,
        from_cache=hit1 and hit2,
        notes=tuple(notes),
        t_sorted=np.asarray(fit["t_sorted"], dtype=np.float64),
    )
    return view.with_offset(offset)


@dataclass(frozen=True, eq=False)
class WeightPanel:
    """One pair's fitted weight curve (a cell of the small-multiples grid)."""

    llm: str
    verifier: str
    w: FloatArray
    b: float | None
    negative: tuple[tuple[float, float], ...]
    share_negative: float
    accuracy: float  # fraction of the pair's responses that are correct
    error: str | None = None


@dataclass(frozen=True, eq=False)
class WeightGridView:
    """Fitted weight curves of every (LLM, verifier) pair, panels in row-major order."""

    dataset: str
    simulated: bool
    kind: str
    label: str
    reduction: str
    grid: FloatArray
    llms: tuple[str, ...]
    verifiers: tuple[str, ...]
    panels: tuple[WeightPanel, ...]
    n_cached: int

    def panel(self, llm: str, verifier: str) -> WeightPanel:
        i = self.llms.index(llm) * len(self.verifiers) + self.verifiers.index(verifier)
        return self.panels[i]


def _curve_arrays(lazy: _LazyPair, kind: str, params: StrategyParams) -> dict[str, Any]:
    pair = lazy.get()
    fitted = fit_weights(pair, kind, auto_once(params, pair))
    w_resp = fitted.response_weights(pair)
    return {
        "w": fitted.weight_curve(WEIGHT_GRID),
        "b": fitted.offset.b if fitted.offset is not None else math.nan,
        "share_negative": float(np.mean(w_resp < 0)) if w_resp.size else 0.0,
        "accuracy": float(np.mean(pair.correct)) if pair.n_responses else math.nan,
    }


def weight_grid_view(
    store: Store,
    dataset: str,
    kind: str = "kde_wv",
    params: StrategyParams | None = None,
    reduction: str = "stored",
    *,
    llms: Sequence[str] | None = None,
    verifiers: Sequence[str] | None = None,
    progress: ProgressFn | None = None,
) -> WeightGridView:
    """Weight curves of `kind` for every pair (LLMs x verifiers), each fitted on all the
    pair's problems. A pair that cannot be fitted gets a panel with `error` set."""
    _check_kind(kind)
    info = store.get_dataset(dataset)
    ms = tuple(llms) if llms is not None else info.llms
    vs = tuple(verifiers) if verifiers is not None else info.verifiers
    params = replace(params or StrategyParams(), step_reduction=reduction)
    kp = _kind_params(kind, params)
    panels: list[WeightPanel] = []
    n_cached = 0
    total = len(ms) * len(vs)
    for i, (m, v) in enumerate((m, v) for m in ms for v in vs):
        _notify(progress, f"{m} × {v}", i, total)
        _check_pair(info, m, v)
        lazy = _LazyPair(store, dataset, m, v, reduction)
        try:
            arr, hit = _cached_arrays(
                store,
                info,
                "view_weight_curve",
                {
                    **_pair_key(m, v, reduction),
                    "kind": kind,
                    "params": kp.to_dict(),
                    "grid": len(WEIGHT_GRID),
                },
                lambda lazy=lazy: _curve_arrays(lazy, kind, kp),  # type: ignore[misc]
            )
        except (CalibrationError, ViewError) as exc:
            nan = np.full(WEIGHT_GRID.shape, np.nan)
            panels.append(WeightPanel(m, v, nan, None, (), math.nan, math.nan, error=str(exc)))
            continue
        n_cached += int(hit)
        w = np.asarray(arr["w"], dtype=np.float64)
        b = float(arr["b"])
        panels.append(
            WeightPanel(
                llm=m,
                verifier=v,
                w=w,
                b=None if math.isnan(b) else b,
                negative=negative_intervals(WEIGHT_GRID, w),
                share_negative=float(arr["share_negative"]),
                accuracy=float(arr["accuracy"]),
            )
        )
    _notify(progress, "done", total, total)
    return WeightGridView(
        dataset=info.name,
        simulated=info.simulated,
        kind=kind,
        label=get_strategy(kind).label,
        reduction=reduction,
        grid=WEIGHT_GRID,
        llms=ms,
        verifiers=vs,
        panels=tuple(panels),
        n_cached=n_cached,
    )


# --------------------------------------------------------------------------------------
# accuracy vs budget
# --------------------------------------------------------------------------------------


def curve_strategies(selected: Sequence[str]) -> tuple[str, ...]:
    """The strategy set to compute curves for: the default set when it covers the
    selection (so the dashboard shares cached curves with ``ttslab curves``), else every
    registered strategy."""
    for s in selected:
        get_strategy(s)  # raises on unknown names
    if set(selected) <= set(DEFAULT_STRATEGIES):
        return DEFAULT_STRATEGIES
    return tuple(s.name for s in list_strategies())


def _many_curves(
    store: Store,
    dataset: str,
    pairs: Sequence[tuple[str, str]],
    strategies: Sequence[str],
    settings: AnalysisSettings,
    progress: ProgressFn | None,
) -> list[PairCurves]:
    info = store.get_dataset(dataset)
    if not pairs:
        raise ViewError("choose at least one (LLM, verifier) pair")
    full = curve_strategies(strategies)
    out: list[PairCurves] = []
    total = len(pairs)
    for i, (m, v) in enumerate(pairs):
        _check_pair(info, m, v)
        _notify(progress, f"curves of {m} × {v}", i, total)

        def inner(stage: str, done: int, n: int, i: int = i, m: str = m, v: str = v) -> None:
            _notify(progress, f"{m} × {v}: {stage}", i * n + done, total * n)

        try:
            out.append(pair_curves(store, settings.spec(dataset, m, v, full), progress=inner))
        except (AnalysisError, CalibrationError) as exc:
            raise ViewError(f"({m}, {v}): {exc}") from exc
    _notify(progress, "done", total, total)
    return out


@dataclass(frozen=True, eq=False)
class BudgetCurve:
    """Mean accuracy of one strategy on one pair at each budget, with its interval."""

    llm: str
    verifier: str
    strategy: str
    label: str
    oracle: bool
    exact: bool
    budgets: IntArray
    accuracy: FloatArray
    low: FloatArray
    high: FloatArray


@dataclass(frozen=True)
class Efficiency:
    """How many samples strategy `a` needs to match `b` at `ref_budget` on one pair."""

    llm: str
    verifier: str
    a: str
    b: str
    ref_budget: int
    result: EfficiencyResult
    text: str


def efficiency_text(a: str, b: str, res: EfficiencyResult) -> str:
    """E.g. "logit WV reaches vanilla WV@64 with 14 samples = 22%"."""
    sa, sb = short_name(a), short_name(b)
    if not res.reached or res.budget is None:
        return f"{sa} does not reach {sb}@{res.ref_budget} within the evaluated budgets"
    n = res.budget
    samples = f"{n:.0f}" if n >= 10 else f"{n:.1f}"
    unit = "sample" if samples in ("1", "1.0") else "samples"
    return f"{sa} reaches {sb}@{res.ref_budget} with {samples} {unit} = {100 * res.ratio:.0f}%"


@dataclass(frozen=True, eq=False)
class BudgetView:
    dataset: str
    simulated: bool
    pairs: tuple[tuple[str, str], ...]
    strategies: tuple[str, ...]
    budgets: tuple[int, ...]
    curves: tuple[BudgetCurve, ...]
    efficiencies: tuple[Efficiency, ...]
    level: float
    n_subsets: int
    k: int
    reduction: str
    n_problems: int
    from_cache: tuple[bool, ...]
    notes: tuple[str, ...] = ()

    def curves_of(self, llm: str, verifier: str) -> tuple[BudgetCurve, ...]:
        """The pair's curves, in the order of `strategies` (unfittable ones missing)."""
        return tuple(c for c in self.curves if (c.llm, c.verifier) == (llm, verifier))

    def curve(self, llm: str, verifier: str, strategy: str) -> BudgetCurve:
        for c in self.curves:
            if (c.llm, c.verifier, c.strategy) == (llm, verifier, strategy):
                return c
        raise KeyError((llm, verifier, strategy))


def budget_view(
    store: Store,
    dataset: str,
    pairs: Sequence[tuple[str, str]],
    strategies: Sequence[str],
    settings: AnalysisSettings | None = None,
    *,
    efficiency: tuple[str, str] | None = ("logit_wv", "vanilla_wv"),
    ref_budget: int | None = None,
    progress: ProgressFn | None = None,
) -> BudgetView:
    """Cross-fitted accuracy-vs-budget curves with bootstrap intervals (from the cache
    when present), and for each pair the budget at which ``efficiency[0]`` reaches
    ``efficiency[1]``'s accuracy at `ref_budget` (default: the largest budget)."""
    settings = settings or AnalysisSettings()
    if not strategies:
        raise ViewError("choose at least one strategy")
    strategies = tuple(strategies)
    eff_names = tuple(efficiency) if efficiency is not None else ()
    results = _many_curves(store, dataset, pairs, (*strategies, *eff_names), settings, progress)
    info = store.get_dataset(dataset)
    curves: list[BudgetCurve] = []
    effs: list[Efficiency] = []
    budgets = results[0].curves.budgets
    notes: list[str] = []
    for (m, v), res in zip(pairs, results, strict=True):
        iv = res.intervals
        b_arr = np.asarray(res.curves.budgets, dtype=np.int64)
        for name, why in res.skipped.items():
            if name in strategies or name in eff_names:
                notes.append(f"{m} × {v}: {get_strategy(name).label} could not be fitted ({why})")
        for s in strategies:
            if s not in res.curves.strategies:
                continue
            j = res.curves.index(s)
            strat = get_strategy(s)
            curves.append(
                BudgetCurve(
                    llm=m,
                    verifier=v,
                    strategy=s,
                    label=strat.label,
                    oracle=strat.is_oracle,
                    exact=res.curves.exact[j],
                    budgets=b_arr,
                    accuracy=np.asarray(iv.estimate[j], dtype=np.float64),
                    low=np.asarray(iv.low[j], dtype=np.float64),
                    high=np.asarray(iv.high[j], dtype=np.float64),
                )
            )
        if efficiency is not None:
            a, b = efficiency
            ref = ref_budget if ref_budget in res.curves.budgets else max(res.curves.budgets)
            missing = [x for x in (a, b) if x not in res.curves.strategies]
            if missing:
                why = f"{short_name(missing[0])} could not be fitted on this pair"
                r = EfficiencyResult(math.nan, None, math.nan, ref, False, why)
                text = f"{short_name(a)} vs {short_name(b)}@{ref}: {why}"
                effs.append(Efficiency(m, v, a, b, ref, r, text))
                continue
            acc = res.curves.mean()
            r = efficiency_ratio(
                res.curves.budgets,
                acc[res.curves.index(a)],
                float(acc[res.curves.index(b), res.curves.budgets.index(ref)]),
                ref,
            )
            effs.append(Efficiency(m, v, a, b, ref, r, efficiency_text(a, b, r)))
    return BudgetView(
        dataset=info.name,
        simulated=info.simulated,
        pairs=tuple((m, v) for m, v in pairs),
        strategies=strategies,
        budgets=tuple(budgets),
        curves=tuple(curves),
        efficiencies=tuple(effs),
        level=settings.level,
        n_subsets=settings.n_subsets,
        k=settings.k,
        reduction=settings.reduction,
        n_problems=len(results[0].curves.problem_ids),
        from_cache=tuple(r.from_cache for r in results),
        notes=tuple(notes),
    )


# --------------------------------------------------------------------------------------
# compare pairs x strategies at one budget
# --------------------------------------------------------------------------------------


def _latex_escape(s: str) -> str:
    rep = {
        "\\": r"\textbackslash{}",
        "&": r"\&",
        "%": r"\%",
        "$": r"\$",
        "#": r"\#",
        "_": r"\_",
        "{": r"\{",
        "}": r"\}",
        "~": r"\textasciitilde{}",
        "^": r"\textasciicircum{}",
    }
    return "".join(rep.get(ch, ch) for ch in s)


@dataclass(frozen=True, eq=False)
class CompareView:
    """Accuracy and gain over `baseline` at `budget`, arrays (pairs, strategies).

    Gains and their intervals come from the paired per-problem differences of the same
    cross-fitted curves (one set of bootstrap resamples of problems for both strategies).
    """

    dataset: str
    simulated: bool
    budget: int
    baseline: str
    pairs: tuple[tuple[str, str], ...]
    strategies: tuple[str, ...]
    labels: tuple[str, ...]
    oracle: tuple[bool, ...]
    accuracy: FloatArray
    acc_low: FloatArray
    acc_high: FloatArray
    gain: FloatArray
    gain_low: FloatArray
    gain_high: FloatArray
    level: float
    n_problems: int
    n_subsets: int
    k: int
    reduction: str
    from_cache: tuple[bool, ...]
    notes: tuple[str, ...] = ()  # strategies that could not be fitted (their cells are NaN)

    @property
    def pair_labels(self) -> tuple[str, ...]:
        return tuple(f"{m} × {v}" for m, v in self.pairs)

    def significant(self) -> BoolArray:
        """Cells whose gain interval excludes zero (False where there is no gain)."""
        with np.errstate(invalid="ignore"):
            return np.asarray((self.gain_low > 0) | (self.gain_high < 0), dtype=bool)

    def to_frame(self) -> pd.DataFrame:
        """Long table: one row per pair and strategy (accuracies and gains as fractions)."""
        rows = []
        for i, (m, v) in enumerate(self.pairs):
            for j, s in enumerate(self.strategies):
                rows.append(
                    {
                        "dataset": self.dataset,
                        "simulated": self.simulated,
                        "llm": m,
                        "verifier": v,
                        "strategy": s,
                        "label": self.labels[j],
                        "oracle": self.oracle[j],
                        "budget": self.budget,
                        "accuracy": float(self.accuracy[i, j]),
                        "accuracy_low": float(self.acc_low[i, j]),
                        "accuracy_high": float(self.acc_high[i, j]),
                        "baseline": self.baseline,
                        "gain": float(self.gain[i, j]),
                        "gain_low": float(self.gain_low[i, j]),
                        "gain_high": float(self.gain_high[i, j]),
                        "level": self.level,
                    }
                )
        return pd.DataFrame(rows)

    def display_frame(self) -> pd.DataFrame:
        """For a screen table: accuracy in %, gain in percentage points with its interval."""
        df = self.to_frame()
        pct = round(100 * self.level)
        return pd.DataFrame(
            {
                "pair": [f"{m} × {v}" for m, v in zip(df["llm"], df["verifier"], strict=True)],
                "strategy": df["label"],
                "accuracy (%)": 100 * df["accuracy"],
                f"gain over {get_strategy(self.baseline).label} (points)": 100 * df["gain"],
                f"{pct}% interval (points)": [
                    f"[{100 * lo:+.1f}, {100 * hi:+.1f}]"
                    for lo, hi in zip(df["gain_low"], df["gain_high"], strict=True)
                ],
                "interval excludes 0": self.significant().reshape(-1),
            }
        )

    def to_csv(self) -> str:
        return str(self.to_frame().to_csv(index=False, float_format="%.6g"))

    def to_latex(self) -> str:
        """A booktabs table: accuracy in % with the gain over the baseline in parentheses;
        an asterisk marks gains whose paired interval excludes zero."""
        pct = round(100 * self.level)
        cols = "l" + "r" * len(self.strategies)
        head = " & ".join(["Pair", *(_latex_escape(lb) for lb in self.labels)])
        sig = self.significant()
        lines = [
            r"\begin{table}[t]",
            r"\centering",
            r"\small",
            rf"\begin{{tabular}}{{{cols}}}",
            r"\toprule",
            head + r" \\",
            r"\midrule",
        ]
        for i, (m, v) in enumerate(self.pairs):
            cells = [_latex_escape(f"{m} / {v}")]
            for j, s in enumerate(self.strategies):
                acc = f"{100 * self.accuracy[i, j]:.1f}"
                if math.isnan(self.accuracy[i, j]):
                    cells.append("--")
                elif s == self.baseline or math.isnan(self.gain[i, j]):
                    cells.append(acc)
                else:
                    star = "$^{*}$" if sig[i, j] else ""
                    cells.append(f"{acc} ({100 * self.gain[i, j]:+.1f}{star})")
            lines.append(" & ".join(cells) + r" \\")
        sim = " Simulated data." if self.simulated else ""
        caption = (
            f"Accuracy (\\%) at $N={self.budget}$ on {_latex_escape(self.dataset)}, "
            f"{self.k}-fold cross-fitted; in parentheses the gain over "
            f"{_latex_escape(get_strategy(self.baseline).label)} in points; $^{{*}}$: the "
            f"paired {pct}\\% bootstrap interval over problems excludes zero.{sim}"
        )
        lines += [
            r"\bottomrule",
            r"\end{tabular}",
            rf"\caption{{{caption}}}",
            r"\end{table}",
        ]
        return "\n".join(lines) + "\n"


def compare_view(
    store: Store,
    dataset: str,
    pairs: Sequence[tuple[str, str]],
    strategies: Sequence[str],
    budget: int,
    baseline: str,
    settings: AnalysisSettings | None = None,
    *,
    n_boot: int = 2000,
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> CompareView:
    """Accuracy at `budget` (clipped to the nearest evaluated budget not above it) and the
    gain over `baseline` with a paired bootstrap interval, for pairs x strategies."""
    settings = settings or AnalysisSettings()
    strategies = tuple(strategies)
    if not strategies:
        raise ViewError("choose at least one strategy")
    results = _many_curves(store, dataset, pairs, (*strategies, baseline), settings, progress)
    info = store.get_dataset(dataset)
    n_p, n_s = len(pairs), len(strategies)
    arrays = {k: np.zeros((n_p, n_s)) for k in ("acc", "lo", "hi", "gain", "glo", "ghi")}
    used: set[int] = set()
    n_problems = 0
    notes: list[str] = []
    for i, res in enumerate(results):
        cb = res.curves.budgets
        below = [b for b in cb if b <= budget]
        bud = max(below) if below else min(cb)
        used.add(bud)
        bi = cb.index(bud)
        m, v = pairs[i]
        for name, why in res.skipped.items():
            if name in strategies or name == baseline:
                notes.append(f"{m} × {v}: {get_strategy(name).label} could not be fitted ({why})")
        have = [j for j, s in enumerate(strategies) if s in res.curves.strategies]
        sel = [res.curves.index(strategies[j]) for j in have]
        for key in arrays:
            arrays[key][i] = np.nan
        per = np.asarray(res.curves.per_problem[sel, bi, :], dtype=np.float64)  # (S', P)
        n_problems = per.shape[1]
        arrays["acc"][i, have] = res.intervals.estimate[sel, bi]
        arrays["lo"][i, have] = res.intervals.low[sel, bi]
        arrays["hi"][i, have] = res.intervals.high[sel, bi]
        if baseline not in res.curves.strategies or not have:
            continue
        base = np.asarray(res.curves.per_problem[res.curves.index(baseline), bi, :])
        diff = paired_difference_cis(
            per, np.broadcast_to(base, per.shape), n_boot=n_boot, level=settings.level, seed=seed
        )
        arrays["gain"][i, have] = diff.estimate
        arrays["glo"][i, have] = diff.low
        arrays["ghi"][i, have] = diff.high
    if len(used) != 1:
        raise ViewError(f"the pairs were evaluated at different budgets: {sorted(used)}")
    strats = [get_strategy(s) for s in strategies]
    return CompareView(
        dataset=info.name,
        simulated=info.simulated,
        budget=used.pop(),
        baseline=baseline,
        pairs=tuple((m, v) for m, v in pairs),
        strategies=strategies,
        labels=tuple(s.label for s in strats),
        oracle=tuple(s.is_oracle for s in strats),
        accuracy=arrays["acc"],
        acc_low=arrays["lo"],
        acc_high=arrays["hi"],
        gain=arrays["gain"],
        gain_low=arrays["glo"],
        gain_high=arrays["ghi"],
        level=settings.level,
        n_problems=n_problems,
        n_subsets=settings.n_subsets,
        k=settings.k,
        reduction=settings.reduction,
        from_cache=tuple(r.from_cache for r in results),
        notes=tuple(notes),
    )


# --------------------------------------------------------------------------------------
# problem explorer
# --------------------------------------------------------------------------------------

#: Strategies the problem explorer can show (oracles use the problem's own labels).
EXPLORER_STRATEGIES: Final = (
    "majority",
    "best_of_n",
    "vanilla_wv",
    "linear_wv",
    "logit_wv",
    "kde_wv",
    "platt_wv",
    "isotonic_wv",
)


def _crossfit_inputs(
    lazy: _LazyPair, strategies: Sequence[str], params: StrategyParams, k: int, seed: int
) -> dict[str, Any]:
    """Vote inputs of every response from the fold that held its problem out (as
    `core.calibration.cross_fit_many` makes them: "auto" resolved once for the pair).
    A strategy that cannot be fitted on some fold is left out, with the reason."""
    pair = lazy.get()
    params = auto_once(params, pair)
    folds = kfold_problems(pair.n_problems, k, seed)
    all_idx = np.arange(pair.n_problems, dtype=np.int64)
    n = pair.n_responses
    out: dict[str, Any] = {"fold": np.zeros(pair.n_problems, dtype=np.int64)}
    out["n_calib"] = np.array([pair.n_problems - len(f) for f in folds], dtype=np.int64)
    skipped: dict[str, str] = {}
    for s in strategies:
        out[f"w_{s}"] = np.full(n, np.nan)
        out[f"g_{s}"] = np.full(n, np.nan)
        out[f"bestof_{s}"] = False
    for fi, test in enumerate(folds):
        out["fold"][test] = fi
        calib = select_problems(pair, np.setdiff1d(all_idx, test))
        held = select_problems(pair, test)
        rows = response_rows(pair, test)
        for s in strategies:
            if s in skipped:
                continue
            strat = get_strategy(s)
            try:
                vi = strat.vote_inputs(strat.fit(calib, params), held)
            except CalibrationError as exc:
                skipped[s] = str(exc)
                continue
            out[f"w_{s}"][rows] = vi.weight
            if vi.g is not None:
                out[f"g_{s}"][rows] = vi.g
            out[f"bestof_{s}"] = bool(vi.best_of)
    out["skipped"] = np.array([f"{s}\x1f{why}" for s, why in skipped.items()], dtype=str)
    return out


def _skipped(arrays: Mapping[str, Any]) -> dict[str, str]:
    raw = arrays.get("skipped")
    if raw is None:
        return {}
    return dict(str(x).split("\x1f", 1) for x in np.asarray(raw).reshape(-1))


@dataclass(frozen=True, eq=False)
class _Picks:
    """Full-response-set votes of every problem (global cluster index = cbase[p] + c)."""

    cbase: IntArray  # (P + 1,) first global cluster of each problem
    count: IntArray  # (K,)
    n_correct: FloatArray  # (K,)
    mean_score: FloatArray  # (K,)
    max_score: FloatArray  # (K,)
    weight_sum: FloatArray  # (S, K) sum of the responses' weights
    total: FloatArray  # (S, K) what the vote compares (with the q/m term)
    qm: FloatArray  # (S, P) the per-response q/m term (NaN where unused)
    picked: BoolArray  # (S, K) chosen cluster(s); ties: every tied cluster
    credit: FloatArray  # (S, P) expected credit (fractional for ties)


def _full_set_picks(pair: PairData, strategies: Sequence[str], arrays: Mapping[str, Any]) -> _Picks:
    """Each strategy's vote over all responses of each problem, with the budget engine's
    tie rule (`core.budget`): weighted votes tie within TIE_RTOL of the scale, best-of
    ties are exact and credit the fraction of tied responses that are correct."""
    prob = problem_index(pair)
    sizes = pair.sizes()
    n_prob = pair.n_problems
    k_p = np.zeros(n_prob, dtype=np.int64)
    np.maximum.at(k_p, prob, pair.cluster + 1)
    cbase = np.zeros(n_prob + 1, dtype=np.int64)
    np.cumsum(k_p, out=cbase[1:])
    gid = cbase[prob] + pair.cluster
    n_k = int(cbase[-1])
    cprob = np.repeat(np.arange(n_prob), k_p)
    correct = np.asarray(pair.correct, dtype=np.float64)
    count = np.bincount(gid, minlength=n_k)
    n_correct = np.asarray(np.bincount(gid, weights=correct, minlength=n_k), dtype=np.float64)
    mean_score = np.bincount(gid, weights=pair.score, minlength=n_k) / np.maximum(count, 1)
    max_score = np.full(n_k, -np.inf)
    np.maximum.at(max_score, gid, pair.score)
    n_s = len(strategies)
    weight_sum = np.zeros((n_s, n_k))
    total = np.zeros((n_s, n_k))
    qm = np.full((n_s, n_prob), np.nan)
    picked = np.zeros((n_s, n_k), dtype=bool)
    credit = np.zeros((n_s, n_prob))
    frac = n_correct / np.maximum(count, 1)
    starts = cbase[:-1]
    for j, s in enumerate(strategies):
        w = np.asarray(arrays[f"w_{s}"], dtype=np.float64)
        weight_sum[j] = np.bincount(gid, weights=w, minlength=n_k)
        if bool(arrays[f"bestof_{s}"]):
            top = np.full(n_k, -np.inf)
            np.maximum.at(top, gid, w)
            best_p = np.maximum.reduceat(top, starts)
            total[j] = top
            picked[j] = top == best_p[cprob]
            tied = w == best_p[prob]
            n_tied = np.bincount(prob, weights=tied.astype(np.float64), minlength=n_prob)
            n_tied_ok = np.bincount(prob, weights=tied * correct, minlength=n_prob)
            credit[j] = n_tied_ok / n_tied
            continue
        g = np.asarray(arrays[f"g_{s}"], dtype=np.float64)
        scale = np.bincount(prob, weights=np.abs(w), minlength=n_prob)
        tot = weight_sum[j].copy()
        single = k_p == 1
        if not np.isnan(g).all():
            q = np.bincount(prob, weights=g, minlength=n_prob) / sizes
            q = np.clip(q, Q_EPS, 1.0 - Q_EPS)
            with np.errstate(divide="ignore"):
                c = np.where(single, 0.0, np.log(q * np.maximum(k_p - 1, 1) / (1.0 - q)))
            qm[j] = np.where(single, np.nan, c)
            tot = tot + count * c[cprob]
            scale = scale + sizes * np.abs(c)
        total[j] = tot
        best_p = np.maximum.reduceat(tot, starts)
        pk = tot >= (best_p - TIE_RTOL * scale)[cprob]
        pk[single[cprob]] = True
        picked[j] = pk
        n_pk = np.bincount(cprob, weights=pk.astype(np.float64), minlength=n_prob)
        credit[j] = np.bincount(cprob, weights=pk * frac, minlength=n_prob) / n_pk
    return _Picks(
        cbase=cbase,
        count=count,
        n_correct=n_correct,
        mean_score=mean_score,
        max_score=max_score,
        weight_sum=weight_sum,
        total=total,
        qm=qm,
        picked=picked,
        credit=credit,
    )


def _explorer_data(
    store: Store,
    dataset: str,
    llm: str,
    verifier: str,
    strategies: Sequence[str],
    settings: AnalysisSettings,
    progress: ProgressFn | None,
) -> tuple[DatasetInfo, PairData, dict[str, Any], bool]:
    info = store.get_dataset(dataset)
    _check_pair(info, llm, verifier)
    for s in strategies:
        if s not in EXPLORER_STRATEGIES:
            raise ViewError(f"the problem explorer cannot show {s!r} (oracles use the labels)")
    params = replace(settings.params, step_reduction=settings.reduction)
    lazy = _LazyPair(store, dataset, llm, verifier, settings.reduction)
    _notify(progress, f"cross-fitting {len(strategies)} strategies", 0, 1)
    arrays, hit = _cached_arrays(
        store,
        info,
        "view_crossfit_inputs",
        {
            **_pair_key(llm, verifier, settings.reduction),
            "strategies": list(strategies),
            "params": params.to_dict(),
            "k": settings.k,
            "fold_seed": settings.fold_seed,
        },
        lambda: _crossfit_inputs(lazy, strategies, params, settings.k, settings.fold_seed),
    )
    _notify(progress, "done", 1, 1)
    skipped = _skipped(arrays)
    if len(skipped) == len(strategies):
        raise ViewError(
            "no strategy can be fitted on this pair: "
            + "; ".join(f"{k}: {v}" for k, v in skipped.items())
        )
    return info, lazy.get(), arrays, hit


@dataclass(frozen=True, eq=False)
class ProblemView:
    """One problem of one pair: its answer clusters and how each strategy votes on them.

    Cluster arrays have length K (clusters by size, largest first); strategy arrays
    are (S, K). Weights come from the cross-fitting fold that held this problem out
    (`fold`, fitted on `n_calib` other problems), so no label of this problem was used.
    Response arrays (length n) give each response's cluster, score and weights.
    """

    dataset: str
    simulated: bool
    llm: str
    verifier: str
    problem_id: str
    gold: str | None
    text: str | None
    level: int | None
    subject: str | None
    strategies: tuple[str, ...]
    labels: tuple[str, ...]
    answers: tuple[str, ...]
    count: IntArray
    cluster_correct: FloatArray  # fraction of the cluster's responses marked correct
    mean_score: FloatArray
    max_score: FloatArray
    weight_sum: FloatArray
    total: FloatArray
    qm: FloatArray  # (S,) per-response q/m term of the vote (NaN if unused)
    picked: BoolArray
    credit: FloatArray  # (S,)
    picks: tuple[str, ...]  # per strategy: the answer(s) it picks
    response_cluster: IntArray
    response_score: FloatArray
    response_correct: BoolArray
    response_weight: FloatArray  # (S, n)
    fold: int
    k: int
    n_calib: int
    reduction: str
    skipped: Mapping[str, str] = field(default_factory=dict)  # strategy -> why not fitted

    def to_frame(self) -> pd.DataFrame:
        """One row per answer cluster: answer, count, correctness, scores and, per
        strategy, the cluster total and whether the strategy picks it."""
        df = pd.DataFrame(
            {
                "answer": list(self.answers),
                "responses": self.count,
                "correct": self.cluster_correct >= 0.5,
                "mean score": self.mean_score,
                "max score": self.max_score,
            }
        )
        for j, s in enumerate(self.strategies):
            df[f"{short_name(s)} total"] = self.total[j]
        df["picked by"] = [
            ", ".join(short_name(s) for j, s in enumerate(self.strategies) if self.picked[j, c])
            for c in range(len(self.answers))
        ]
        return df


def _cluster_answers(
    store: Store, dataset: str, llm: str, problem_id: str, cluster: IntArray
) -> tuple[str, ...]:
    resp = store.responses(dataset, llm)
    rows = resp[resp["problem_id"] == problem_id].sort_values("sample_idx")
    if len(rows) != len(cluster):
        return tuple(f"answer {c + 1}" for c in range(int(cluster.max()) + 1))
    raw = rows["answer_raw"].where(rows["answer_raw"].notna(), rows["answer_key"]).astype(str)
    out: list[str] = []
    for c in range(int(cluster.max()) + 1):
        vals = raw.to_numpy()[cluster == c]
        out.append(str(pd.Series(vals).mode().iloc[0]) if len(vals) else f"answer {c + 1}")
    return tuple(out)


def problem_view(
    store: Store,
    dataset: str,
    llm: str,
    verifier: str,
    problem_id: str,
    strategies: Sequence[str] = ("majority", "best_of_n", "vanilla_wv", "logit_wv", "kde_wv"),
    settings: AnalysisSettings | None = None,
    *,
    progress: ProgressFn | None = None,
) -> ProblemView:
    """The answer clusters of one problem and every strategy's vote over all its responses,
    with weights fitted without this problem (its held-out cross-fitting fold)."""
    settings = settings or AnalysisSettings()
    asked = tuple(strategies)
    info, pair, arrays, _ = _explorer_data(store, dataset, llm, verifier, asked, settings, progress)
    skipped = _skipped(arrays)
    strategies = tuple(s for s in asked if s not in skipped)
    try:
        p = pair.problem_ids.index(problem_id)
    except ValueError:
        raise ViewError(f"({llm}, {verifier}) has no problem {problem_id!r}") from None
    picks = _full_set_picks(pair, strategies, arrays)
    k0, k1 = int(picks.cbase[p]), int(picks.cbase[p + 1])
    r0, r1 = int(pair.offsets[p]), int(pair.offsets[p + 1])
    cl = np.asarray(pair.cluster[r0:r1], dtype=np.int64)
    answers = _cluster_answers(store, dataset, llm, problem_id, cl)
    probs = store.problems(dataset)
    prow = probs[probs["problem_id"] == problem_id]

    def opt(col: str) -> Any:
        if prow.empty or col not in prow or pd.isna(prow[col].iloc[0]):
            return None
        return prow[col].iloc[0]

    level = opt("level")
    # clusters in order of size (then mean score), largest first
    order = np.lexsort((-picks.mean_score[k0:k1], -picks.count[k0:k1]))
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    cl = rank[cl]
    answers = tuple(answers[int(i)] for i in order)
    sl = k0 + order
    picked = picks.picked[:, sl]
    choice = tuple(
        " / ".join(a for a, pk in zip(answers, row, strict=True) if pk) for row in picked
    )
    fold = int(arrays["fold"][p])
    return ProblemView(
        dataset=info.name,
        simulated=info.simulated,
        llm=llm,
        verifier=verifier,
        problem_id=problem_id,
        gold=None if opt("gold_answer") is None else str(opt("gold_answer")),
        text=None if opt("text") is None else str(opt("text")),
        level=None if level is None else int(level),
        subject=None if opt("subject") is None else str(opt("subject")),
        strategies=strategies,
        labels=tuple(get_strategy(s).label for s in strategies),
        answers=answers,
        count=picks.count[sl],
        cluster_correct=picks.n_correct[sl] / np.maximum(picks.count[sl], 1),
        mean_score=picks.mean_score[sl],
        max_score=picks.max_score[sl],
        weight_sum=picks.weight_sum[:, sl],
        total=picks.total[:, sl],
        qm=picks.qm[:, p],
        picked=picked,
        credit=picks.credit[:, p],
        picks=choice,
        response_cluster=cl,
        response_score=np.asarray(pair.score[r0:r1], dtype=np.float64),
        response_correct=np.asarray(pair.correct[r0:r1], dtype=bool),
        response_weight=np.vstack([np.asarray(arrays[f"w_{s}"])[r0:r1] for s in strategies]),
        fold=fold,
        k=settings.k,
        n_calib=int(arrays["n_calib"][fold]),
        reduction=settings.reduction,
        skipped=skipped,
    )


@dataclass(frozen=True, eq=False)
class DisagreementView:
    """Problems of one pair on which the strategies do not all pick the same answer."""

    dataset: str
    llm: str
    verifier: str
    strategies: tuple[str, ...]
    n_problems: int
    problem_ids: tuple[str, ...]
    credit: FloatArray  # (S, D) credit of each strategy on each listed problem
    all_problem_ids: tuple[str, ...] = ()
    skipped: Mapping[str, str] = field(default_factory=dict)  # strategy -> why not fitted

    def to_frame(self) -> pd.DataFrame:
        df = pd.DataFrame({"problem": list(self.problem_ids)})
        for j, s in enumerate(self.strategies):
            df[short_name(s)] = self.credit[j]
        return df


def disagreement_problems(
    store: Store,
    dataset: str,
    llm: str,
    verifier: str,
    strategies: Sequence[str] = ("majority", "best_of_n", "vanilla_wv", "logit_wv", "kde_wv"),
    settings: AnalysisSettings | None = None,
    *,
    progress: ProgressFn | None = None,
) -> DisagreementView:
    """Problems where the strategies' picks over all responses differ (cross-fitted
    weights, as in `problem_view`), with each strategy's credit there."""
    settings = settings or AnalysisSettings()
    asked = tuple(strategies)
    info, pair, arrays, _ = _explorer_data(store, dataset, llm, verifier, asked, settings, progress)
    skipped = _skipped(arrays)
    strategies = tuple(s for s in asked if s not in skipped)
    picks = _full_set_picks(pair, strategies, arrays)
    n_prob = pair.n_problems
    k_p = np.diff(picks.cbase)
    cprob = np.repeat(np.arange(n_prob), k_p)
    differs = np.zeros(n_prob, dtype=bool)
    for j in range(1, len(strategies)):
        neq = picks.picked[j] != picks.picked[0]
        differs |= np.bincount(cprob, weights=neq.astype(np.float64), minlength=n_prob) > 0
    idx = np.flatnonzero(differs)
    return DisagreementView(
        dataset=info.name,
        llm=llm,
        verifier=verifier,
        strategies=strategies,
        n_problems=n_prob,
        problem_ids=tuple(pair.problem_ids[int(i)] for i in idx),
        credit=picks.credit[:, idx],
        all_problem_ids=tuple(pair.problem_ids),
        skipped=skipped,
    )
