"""Pair-level analyses used by the CLI and the dashboard, with the DuckDB result cache.

One call = one answer: `pair_curves` (cross-fitted accuracy-vs-budget curves with bootstrap
intervals for one (dataset, llm, verifier) pair), `fit_pair` (weighting functions fitted on
every problem of a pair, for plots and export), `weight_summary` (where the weights are
negative). Results are cached in the store keyed by the dataset's content hash, the pair,
the strategies and every parameter.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from core.allocation import Allocation, allocate
from core.budget import CurveSet, make_subsets
from core.calibration import (
    CalibrationError,
    FittedWeights,
    StrategyParams,
    auto_once,
    cross_fit_many,
    kfold_problems,
    select_problems,
)
from core.reduce import REDUCTIONS, reduce_steps
from core.stats import CurveIntervals, EfficiencyResult, curve_cis, efficiency_from_curves
from core.store import Store
from core.strategies import get_strategy, list_strategies
from core.types import PairData, TTSLabError

# Bump when a change in core would alter cached numbers.
ENGINE_VERSION = 1
DEFAULT_STRATEGIES: tuple[str, ...] = (
    "majority",
    "best_of_n",
    "vanilla_wv",
    "linear_wv",
    "logit_wv",
    "kde_wv",
    "oracle_optimal",
    "pass_at_n",
)
ProgressFn = Callable[[str, int, int], None]


class AnalysisError(TTSLabError):
    """An analysis cannot run on this data (no step scores, too few problems...)."""


@dataclass(frozen=True)
class CurveSpec:
    """Everything that determines a set of curves (and so its cache key)."""

    dataset: str
    llm: str
    verifier: str
    strategies: tuple[str, ...] = DEFAULT_STRATEGIES
    params: StrategyParams = field(default_factory=StrategyParams)
    reduction: str = "stored"
    k: int = 5
    fold_seed: int = 0
    budgets: tuple[int, ...] | None = None
    n_subsets: int = 200
    subset_seed: int = 0
    n_boot: int = 1000
    level: float = 0.95
    order: str = "auto"  # "random" subsets, "sample" order prefixes, "auto": by dataset.iid

    def key_params(self) -> dict[str, Any]:
        return {
            "engine": ENGINE_VERSION,
            "llm": self.llm,
            "verifier": self.verifier,
            "strategies": list(self.strategies),
            "params": self.params.to_dict(),
            "reduction": self.reduction,
            "k": self.k,
            "fold_seed": self.fold_seed,
            "budgets": list(self.budgets) if self.budgets else None,
            "n_subsets": self.n_subsets,
            "subset_seed": self.subset_seed,
            "n_boot": self.n_boot,
            "level": self.level,
            "order": self.order,
        }


@dataclass(frozen=True, eq=False)
class PairCurves:
    spec: CurveSpec
    curves: CurveSet
    intervals: CurveIntervals
    from_cache: bool = False
    skipped: dict[str, str] = field(default_factory=dict)  # strategy -> why it could not run

    def to_frame(self) -> pd.DataFrame:
        """Long table: strategy, label, oracle, exact, budget, accuracy, low, high."""
        rows = []
        for s, name in enumerate(self.curves.strategies):
            strat = get_strategy(name)
            for b, n in enumerate(self.curves.budgets):
                rows.append(
                    {
                        "llm": self.spec.llm,
                        "verifier": self.spec.verifier,
                        "strategy": name,
                        "label": strat.label,
                        "oracle": strat.is_oracle,
                        "exact": self.curves.exact[s],
                        "budget": n,
                        "accuracy": float(self.intervals.estimate[s, b]),
                        "low": float(self.intervals.low[s, b]),
                        "high": float(self.intervals.high[s, b]),
                    }
                )
        return pd.DataFrame(rows)

    def efficiency(self, a: str, b: str, ref_budget: int | None = None) -> EfficiencyResult:
        """Budget at which `a` reaches `b`'s accuracy at `ref_budget` (default: largest)."""
        ref = ref_budget or max(self.curves.budgets)
        return efficiency_from_curves(self.curves, a, b, ref)


def load_pair_reduced(
    store: Store, dataset: str, llm: str, verifier: str, reduction: str = "stored"
) -> PairData:
    """The pair with scores recomputed from step scores by `reduction` ("stored" keeps the
    imported score)."""
    if reduction == "stored":
        return store.load_pair(dataset, llm, verifier)
    if reduction not in REDUCTIONS:
        raise AnalysisError(
            f"unknown step reduction {reduction!r}; use 'stored' or one of {REDUCTIONS}"
        )
    pair = store.load_pair(dataset, llm, verifier, with_steps=True)
    steps = pair.step_scores or ()
    if any(len(s) == 0 for s in steps) or not steps:
        raise AnalysisError(
            f"pair ({llm}, {verifier}) of {dataset!r} has responses without step scores; "
            "only the stored score can be used"
        )
    score = reduce_steps(steps, reduction)
    return replace(pair, score=np.asarray(score, dtype=np.float64))


def _encode_curves(curves: CurveSet, skipped: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    meta = {
        "skipped": skipped,
        "budgets": list(curves.budgets),
        "strategies": list(curves.strategies),
        "problem_ids": list(curves.problem_ids),
        "exact": list(curves.exact),
        "n_subsets": curves.n_subsets,
        "seed": curves.seed,
        "n_clipped": list(curves.n_clipped),
        "order": curves.order,
        "tie_break": curves.tie_break,
    }
    np.savez_compressed(
        buf,
        per_problem=curves.per_problem,
        meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
    )
    return buf.getvalue()


def _decode_curves(payload: bytes) -> tuple[CurveSet, dict[str, str]]:
    with np.load(io.BytesIO(payload)) as z:
        meta = json.loads(bytes(z["meta"]).decode())
        per_problem = np.asarray(z["per_problem"], dtype=np.float64)
    return CurveSet(
        budgets=tuple(meta["budgets"]),
        strategies=tuple(meta["strategies"]),
        problem_ids=tuple(meta["problem_ids"]),
        per_problem=per_problem,
        exact=tuple(bool(x) for x in meta["exact"]),
        n_subsets=int(meta["n_subsets"]),
        seed=int(meta["seed"]),
        n_clipped=tuple(meta["n_clipped"]),
        order=str(meta["order"]),
        tie_break=str(meta["tie_break"]),
    ), {str(k): str(v) for k, v in meta.get("skipped", {}).items()}


def pair_curves(
    store: Store,
    spec: CurveSpec,
    *,
    use_cache: bool = True,
    progress: ProgressFn | None = None,
) -> PairCurves:
    """Cross-fitted accuracy-vs-budget curves of one pair, with bootstrap intervals.

    Weights are fitted with K-fold cross-fitting over problems (each problem is weighted by
    a fit that never saw its labels); every strategy is evaluated on the same random
    subsets; oracle strategies are labelled upper bounds. Datasets whose samples are not
    independent draws (iid false: beam search groups) are evaluated on prefixes in sampling
    order instead of random subsets (`order="auto"`).
    """
    info = store.get_dataset(spec.dataset)
    order = spec.order if spec.order != "auto" else ("random" if info.iid else "sample")
    # the key holds the resolved order: two imports of one file may differ in iid
    key_params = {**spec.key_params(), "order": order}
    key = Store.cache_key(info.content_sha256, "pair_curves", key_params)
    if use_cache:
        cached = store.cache_get(key)
        if cached is not None:
            curves, was_skipped = _decode_curves(cached)
            return PairCurves(
                spec, curves, _intervals(curves, spec), from_cache=True, skipped=was_skipped
            )
    if progress is not None:
        progress("loading pair", 0, 3)
    pair = load_pair_reduced(store, spec.dataset, spec.llm, spec.verifier, spec.reduction)
    if pair.n_problems < spec.k:
        raise AnalysisError(
            f"{spec.k}-fold cross-fitting needs at least {spec.k} problems; the pair has "
            f"{pair.n_problems}"
        )
    params = replace(spec.params, step_reduction=spec.reduction)
    subsets = make_subsets(
        pair, spec.budgets, n_subsets=spec.n_subsets, seed=spec.subset_seed, order=order
    )
    if progress is not None:
        progress(f"fitting and evaluating {len(spec.strategies)} strategies", 1, 3)
    strategies = list(spec.strategies)
    skipped: dict[str, str] = {}
    try:
        res = cross_fit_many(
            pair, strategies, params, k=spec.k, seed=spec.fold_seed, subsets=subsets
        )
    except CalibrationError:
        # find which strategies cannot be fitted on some fold, drop them with the reason
        skipped = _unfittable(pair, strategies, params, spec.k, spec.fold_seed)
        strategies = [s for s in strategies if s not in skipped]
        if not strategies:
            raise AnalysisError(
                "no strategy can be fitted on this pair: "
                + "; ".join(f"{k}: {v}" for k, v in skipped.items())
            ) from None
        res = cross_fit_many(
            pair, strategies, params, k=spec.k, seed=spec.fold_seed, subsets=subsets
        )
    curves = res.curves
    if progress is not None:
        progress("bootstrap intervals", 2, 3)
    store.cache_put(
        key, info.content_sha256, "pair_curves", key_params, _encode_curves(curves, skipped)
    )
    out = PairCurves(spec, curves, _intervals(curves, spec), skipped=skipped)
    if progress is not None:
        progress("done", 3, 3)
    return out


def _unfittable(
    pair: PairData, strategies: Sequence[str], params: StrategyParams, k: int, seed: int
) -> dict[str, str]:
    """Strategies whose fit fails on some fold's calibration problems, with the reason."""
    out: dict[str, str] = {}
    params = auto_once(params, pair)  # as cross_fit_many does: one transform for the pair
    folds = kfold_problems(pair.n_problems, k, seed)
    everything = np.arange(pair.n_problems, dtype=np.int64)
    for name in strategies:
        strat = get_strategy(name)
        for test in folds:
            try:
                strat.fit(select_problems(pair, np.setdiff1d(everything, test)), params)
            except CalibrationError as exc:
                out[name] = str(exc)
                break
    return out


def _intervals(curves: CurveSet, spec: CurveSpec) -> CurveIntervals:
    return curve_cis(curves, n_boot=spec.n_boot, level=spec.level, seed=spec.subset_seed)


def fit_pair(
    store: Store,
    dataset: str,
    llm: str,
    verifier: str,
    strategy: str,
    params: StrategyParams | None = None,
    reduction: str = "stored",
) -> FittedWeights:
    """A strategy's weighting function fitted on every problem of the pair (for plots and
    export; evaluation uses `pair_curves`, which cross-fits)."""
    strat = get_strategy(strategy)
    if strat.is_oracle:
        raise AnalysisError(f"{strategy} is an oracle: it has no weights to export")
    pair = load_pair_reduced(store, dataset, llm, verifier, reduction)
    p = replace(params or StrategyParams(), step_reduction=reduction)
    return strat.fit(pair, p)


@dataclass(frozen=True)
class WeightSummary:
    """Where a fitted weight function is negative, in (transformed) score units."""

    kind: str
    negative_fraction_of_range: float
    negative_intervals: tuple[tuple[float, float], ...]
    share_of_responses_negative: float
    weight_at: dict[str, float]
    extra: dict[str, float]

    def describe_intervals(self) -> str:
        if not self.negative_intervals:
            return "none"
        return ", ".join(f"[{lo:.2f}, {hi:.2f}]" for lo, hi in self.negative_intervals)


def weight_summary(fitted: FittedWeights, pair: PairData | None = None) -> WeightSummary:
    grid = np.linspace(0.0025, 0.9975, 400)
    w = fitted.weight_curve(grid)
    neg = w < 0
    intervals: list[tuple[float, float]] = []
    start: float | None = None
    for x, is_neg in zip(grid, neg, strict=True):
        if is_neg and start is None:
            start = float(x)
        if not is_neg and start is not None:
            intervals.append((start, float(x)))
            start = None
    if start is not None:
        intervals.append((start, float(grid[-1])))
    share = math.nan
    if pair is not None:
        share = float(np.mean(fitted.response_weights(pair) < 0))
    at = {f"w({q:.1f})": float(fitted.weight_curve(np.array([q]))[0]) for q in (0.1, 0.5, 0.9)}
    extra: dict[str, float] = {}
    if fitted.offset is not None:
        extra["b"] = float(fitted.offset.b)
    if fitted.kde is not None and fitted.kind == "kde_wv":
        extra["bandwidth"] = float(fitted.kde.bandwidth1)
    return WeightSummary(
        kind=fitted.kind,
        negative_fraction_of_range=float(neg.mean()),
        negative_intervals=tuple(intervals),
        share_of_responses_negative=share,
        weight_at=at,
        extra=extra,
    )


def calibrate_table(
    store: Store,
    dataset: str,
    llm: str,
    verifier: str,
    strategies: Sequence[str],
    params: StrategyParams | None = None,
    reduction: str = "stored",
) -> pd.DataFrame:
    """One row per strategy: fitted parameters and where its weights are negative."""
    pair = load_pair_reduced(store, dataset, llm, verifier, reduction)
    p = replace(params or StrategyParams(), step_reduction=reduction)
    rows = []
    for name in strategies:
        strat = get_strategy(name)
        if strat.is_oracle:
            continue
        fitted = strat.fit(pair, p)
        s = weight_summary(fitted, pair)
        rows.append(
            {
                "llm": llm,
                "verifier": verifier,
                "strategy": name,
                "transform": fitted.transform,
                **{k: round(v, 4) for k, v in s.extra.items()},
                **{k: round(v, 3) for k, v in s.weight_at.items()},
                "negative score range": s.describe_intervals(),
                "responses with w<0": round(s.share_of_responses_negative, 3),
            }
        )
    return pd.DataFrame(rows)


def calibrated_strategy_names() -> list[str]:
    """Strategies that have a fitted weighting function (no oracles)."""
    return [s.name for s in list_strategies(include_oracles=False) if s.needs_fit]


def pair_allocation(
    store: Store,
    spec: CurveSpec,
    candidates: Sequence[str] | None = None,
    n_bins: int = 4,
    seed: int = 0,
    *,
    variants: Mapping[str, StrategyParams] | None = None,
    progress: ProgressFn | None = None,
) -> Allocation:
    """Per-difficulty-bin choice of strategy *and parameters* for one pair (two-fold CV
    over problems), on the pair's cross-fitted curves (from the cache when present).

    `variants` adds, for every fitted candidate, a copy fitted with other parameters
    (e.g. ``{"b@N=4": StrategyParams(offset_budget=4)}``), named ``"<strategy> [<label>]"``;
    all variants are evaluated on the same subsets, so the per-bin choice compares like
    with like.
    """
    res = pair_curves(store, spec, progress=progress)
    pair = load_pair_reduced(store, spec.dataset, spec.llm, spec.verifier, spec.reduction)
    names = [
        s
        for s in (candidates or spec.strategies)
        if not get_strategy(s).is_oracle and s in res.curves.strategies
    ]
    curves = res.curves
    fitted = [s for s in names if get_strategy(s).needs_fit]
    for label, params in (variants or {}).items():
        if not fitted:
            break
        vres = pair_curves(
            store, replace(spec, params=params, strategies=tuple(fitted)), progress=progress
        )
        for s in vres.curves.strategies:
            name = f"{s} [{label}]"
            curves = curves.with_strategy(
                name, vres.curves.per_problem[vres.curves.index(s)], exact=False
            )
            names.append(name)
    return allocate(curves, pair, names, n_bins=n_bins, seed=seed)


def strategy_label(name: str) -> str:
    """Label of a registered strategy, or of a parameter variant "<strategy> [<label>]"."""
    base, _, rest = name.partition(" [")
    label = get_strategy(base).label
    return f"{label} [{rest}" if rest else label
