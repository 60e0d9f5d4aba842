"""Compute-optimal choice of strategy per difficulty bin (after Snell et al., 2024).

Problems are binned by a *predicted* difficulty that uses no labels: the mean verifier
score over the problem's samples. Bin edges are quantiles of that prediction. At every
budget and in every bin, the strategy with the best accuracy is chosen by two-fold
cross-validation over problems: the choice applied to fold A's problems is made on fold
B's problems only, and vice versa. The resulting per-problem accuracy of "choose per
bin" is compared with every fixed strategy on the same problems.

The inputs are per-problem accuracies of each candidate strategy (a `CurveSet`, normally
from cross-fitted weights, see `core.evaluation.pair_curves`), so the selection stage adds
no fitting of its own and cannot see the labels of the problems it is applied to. The two
folds are those of the one cross-fitting path (`core.evaluation.kfold`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from core.evaluation.config import EvalConfig
from core.evaluation.crossfit import kfold
from core.evaluation.engine import CurveSet
from core.evaluation.pipeline import ProgressFn, load_pair, pair_curves
from core.evaluation.stats import bootstrap_means
from core.methods.params import StrategyParams
from core.methods.registry import get_strategy
from core.store import DatasetInfo, Store
from core.types import FloatArray, IntArray, PairData, TTSLabError

#: Mean accuracies closer than this are tied (the same per-problem credits summed in
#: another order differ in the last digits).
TIE_TOL = 1e-12


class AllocationError(TTSLabError):
    """The allocation cannot be computed (too few problems, unknown strategies...)."""


def predicted_difficulty(pair: PairData) -> FloatArray:
    """Mean verifier score of each problem's responses: higher means predicted easier
    (negated for a signal declared lower-is-better at import, such as length).

    Uses scores only (no labels), so it may be computed on every problem.
    """
    sums = np.add.reduceat(pair.score, pair.offsets[:-1]) if pair.n_responses else np.zeros(0)
    mean = sums / np.maximum(pair.sizes(), 1)
    return np.asarray(-mean if pair.orientation == "lower" else mean, dtype=np.float64)


def difficulty_bins(pred: FloatArray, n_bins: int) -> tuple[IntArray, FloatArray]:
    """Quantile bins of the prediction: (bin index per problem, inner edges).

    Bin 0 holds the problems with the lowest mean score (predicted hardest).
    """
    if n_bins < 1:
        raise AllocationError(f"n_bins must be >= 1, got {n_bins}")
    edges = np.quantile(pred, np.linspace(0, 1, n_bins + 1)[1:-1]) if n_bins > 1 else np.zeros(0)
    bins = np.searchsorted(edges, pred, side="right").astype(np.int64)
    return bins, np.asarray(edges, dtype=np.float64)


def two_folds(n_problems: int, seed: int) -> IntArray:
    """Fold label (0 or 1) of each problem: the two folds of `core.evaluation.kfold`."""
    fold = np.zeros(n_problems, dtype=np.int64)
    for f in kfold(n_problems, 2, seed):
        fold[f.test] = f.index
    return fold


@dataclass(frozen=True, eq=False)
class Allocation:
    """Per-bin choice of strategy, cross-validated over two folds of problems.

    Attributes:
        budgets, strategies: as in the input CurveSet (candidates only).
        bins: (P,) bin of each problem; edges: inner quantile edges of the prediction.
        fold: (P,) 0/1 fold of each problem.
        choice: (2, B, n_bins) index of the strategy chosen for fold f's problems (made on
            the other fold's problems).
        per_problem: (B, P) accuracy of the per-bin choice on each problem.
        fixed: (S, B, P) accuracy of every fixed strategy on the same problems.
    """

    budgets: tuple[int, ...]
    strategies: tuple[str, ...]
    problem_ids: tuple[str, ...]
    bins: IntArray
    edges: FloatArray
    fold: IntArray
    choice: IntArray
    per_problem: FloatArray
    fixed: FloatArray

    def curve(self) -> FloatArray:
        """(B,) mean accuracy of the per-bin choice."""
        return np.asarray(self.per_problem.mean(axis=-1), dtype=np.float64)

    def fixed_curves(self) -> FloatArray:
        """(S, B) mean accuracy of each fixed strategy."""
        return np.asarray(self.fixed.mean(axis=-1), dtype=np.float64)

    def table(self) -> pd.DataFrame:
        """One row per (budget, bin, fold): the chosen strategy and the bin's accuracies.
        Bins and folds are numbered from 1, as everywhere a person reads them (bin 1 =
        the lowest mean verifier score)."""
        rows = []
        n_bins = self.choice.shape[2]
        for b, n in enumerate(self.budgets):
            for k in range(n_bins):
                in_bin = self.bins == k
                for f in (0, 1):
                    mask = in_bin & (self.fold == f)
                    chosen = self.strategies[int(self.choice[f, b, k])]
                    row: dict[str, object] = {
                        "budget": n,
                        "bin": k + 1,
                        "fold": f + 1,
                        "problems": int(mask.sum()),
                        "chosen": chosen,
                        "chosen accuracy": float(self.per_problem[b, mask].mean())
                        if mask.any()
                        else float("nan"),
                    }
                    for s, name in enumerate(self.strategies):
                        row[name] = (
                            float(self.fixed[s, b, mask].mean()) if mask.any() else float("nan")
                        )
                    rows.append(row)
        return pd.DataFrame(rows)


def allocate(
    curves: CurveSet,
    pair: PairData,
    candidates: Sequence[str] | None = None,
    n_bins: int = 4,
    seed: int = 0,
    fold: IntArray | None = None,
) -> Allocation:
    """Choose the best candidate strategy per difficulty bin and budget, two-fold CV.

    `curves` must cover the problems of `pair` (same ids, same order). The choice for a
    bin of fold f is the candidate with the highest mean accuracy on the *other* fold's
    problems in that bin (ties: the earlier candidate); an empty bin there falls back to
    the best candidate over the other fold's problems of all bins.
    """
    if tuple(curves.problem_ids) != tuple(pair.problem_ids):
        raise AllocationError("the curves and the pair must cover the same problems in order")
    names = tuple(candidates) if candidates is not None else tuple(curves.strategies)
    idx = [curves.index(n) for n in names]
    acc = np.asarray(curves.per_problem[idx], dtype=np.float64)  # (S, B, P)
    n_problems = acc.shape[2]
    if n_problems < 2 * n_bins:
        raise AllocationError(
            f"{n_bins} bins over two folds need at least {2 * n_bins} problems, have {n_problems}"
        )
    bins, edges = difficulty_bins(predicted_difficulty(pair), n_bins)
    folds = two_folds(n_problems, seed) if fold is None else np.asarray(fold, dtype=np.int64)
    if folds.shape != (n_problems,) or not np.isin(folds, (0, 1)).all():
        raise AllocationError("fold must give 0 or 1 for every problem")
    n_b = len(curves.budgets)
    choice = np.zeros((2, n_b, n_bins), dtype=np.int64)
    per_problem = np.empty((n_b, n_problems), dtype=np.float64)
    for f in (0, 1):
        train = folds != f  # the other fold: where the choice is made
        target = folds == f  # where it is applied
        for k in range(n_bins):
            sel = train & (bins == k)
            if not sel.any():
                sel = train
            means = acc[:, :, sel].mean(axis=2)  # (S, B)
            # the first maximum: the earlier candidate wins ties (up to summation noise)
            best = np.argmax(means >= means.max(axis=0) - TIE_TOL, axis=0)
            choice[f, :, k] = best
            apply = target & (bins == k)
            for b in range(n_b):
                per_problem[b, apply] = acc[best[b], b, apply]
    return Allocation(
        budgets=tuple(curves.budgets),
        strategies=names,
        problem_ids=tuple(curves.problem_ids),
        bins=bins,
        edges=edges,
        fold=folds,
        choice=choice,
        per_problem=per_problem,
        fixed=acc,
    )


@dataclass(frozen=True, eq=False)
class ChoiceSupport:
    """How firmly each per-bin choice was made, on the problems that made it (the other
    fold's problems of the bin), arrays (2, B, n_bins):

    support: share of bootstrap resamples of those problems in which no candidate beats
        the one chosen (1.0: every resample agrees; ties count as agreeing).
    margin, low, high: chosen candidate's mean accuracy minus the best other candidate's,
        with a percentile bootstrap interval (0 with one candidate).
    n_problems: problems the choice was made on.
    """

    support: FloatArray
    margin: FloatArray
    low: FloatArray
    high: FloatArray
    n_problems: IntArray
    level: float


def choice_support(
    alloc: Allocation, n_boot: int = 1000, level: float = 0.95, seed: int = 0
) -> ChoiceSupport:
    """Bootstrap the problems behind every per-bin choice of `alloc` (see `ChoiceSupport`)."""
    n_f, n_b, n_bins = alloc.choice.shape
    support = np.ones((n_f, n_b, n_bins))
    margin = np.zeros((n_f, n_b, n_bins))
    low = np.zeros((n_f, n_b, n_bins))
    high = np.zeros((n_f, n_b, n_bins))
    n_sel = np.zeros((n_f, n_bins), dtype=np.int64)
    n_s = alloc.fixed.shape[0]
    alpha = 1.0 - level
    for f in range(n_f):
        train = alloc.fold != f
        for k in range(n_bins):
            sel = train & (alloc.bins == k)
            if not sel.any():
                sel = train
            n_sel[f, k] = int(sel.sum())
            if n_s < 2:
                continue
            acc = alloc.fixed[:, :, sel]  # (S, B, n)
            boot = bootstrap_means(acc, n_boot=n_boot, seed=seed)  # (S, B, n_boot)
            chosen = alloc.choice[f, :, k]  # (B,)
            rows = np.arange(n_b)
            mine = boot[chosen, rows, :]  # (B, n_boot)
            others = boot.copy()
            others[chosen, rows, :] = -np.inf
            diff = mine - others.max(axis=0)
            # the same choice: nothing beats the chosen one (candidates that score the same
            # on every problem, e.g. at N = 1, tie and agree)
            support[f, :, k] = np.mean(diff >= -TIE_TOL, axis=1)
            point = acc.mean(axis=2)
            rest = point.copy()
            rest[chosen, rows] = -np.inf
            margin[f, :, k] = point[chosen, rows] - rest.max(axis=0)
            low[f, :, k] = np.quantile(diff, alpha / 2.0, axis=1)
            high[f, :, k] = np.quantile(diff, 1.0 - alpha / 2.0, axis=1)
    return ChoiceSupport(
        support=support,
        margin=margin,
        low=low,
        high=high,
        n_problems=n_sel,
        level=float(level),
    )


def pair_allocation(
    store: Store,
    info: DatasetInfo,
    llm: str,
    verifier: str,
    candidates: Sequence[str],
    config: EvalConfig,
    n_bins: int = 4,
    seed: int = 0,
    *,
    curve_set: Sequence[str] | None = None,
    variants: dict[str, StrategyParams] | None = None,
    progress: ProgressFn | None = None,
) -> Allocation:
    """Per-difficulty-bin choice of strategy *and parameters* for one pair (two-fold CV
    over problems), on the pair's cross-fitted curves (from the cache when present).

    `curve_set` is the strategy set whose curves are computed (default: the candidates),
    so callers can share cached curves. `variants` adds, for every candidate that is
    fitted on labels, a copy fitted with other parameters (e.g.
    ``{"b@N=4": StrategyParams(offset_budget=4)}``), named ``"<strategy> [<label>]"``; all
    are evaluated on the same subsets, so the per-bin choice compares like with like.
    Oracles are never candidates.
    """
    names = [c for c in dict.fromkeys(candidates) if not get_strategy(c).oracle]
    res = pair_curves(
        store, info, llm, verifier, list(curve_set or names), config, progress=progress
    )
    names = [s for s in names if s in res.curves.strategies]
    if not names:
        raise AllocationError("no candidate strategy can be fitted on this pair")
    curves = res.curves
    fitted = [s for s in names if get_strategy(s).needs_labels]
    for label, params in (variants or {}).items():
        if not fitted:
            break
        vres = pair_curves(
            store, info, llm, verifier, fitted, replace(config, params=params), progress=progress
        )
        for s in vres.curves.strategies:
            name = f"{s} [{label}]"
            curves = curves.with_strategy(
                name, vres.curves.per_problem[vres.curves.index(s)], exact=False
            )
            names.append(name)
    pair = load_pair(store, info, llm, verifier, config.reduction)
    return allocate(curves, pair, names, n_bins=n_bins, seed=seed)
