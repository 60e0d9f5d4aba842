"""Bootstrap confidence intervals over problems, paired differences and efficiency ratios.

Problems are the resampling unit: every per-problem array has problems on its last axis.
Resamples are drawn as a (n_boot, P) count matrix, so the bootstrap means of any number
of curves are one matrix product, and the same seed gives the same resamples for every
input of the same P (which is what makes paired comparisons paired).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt
from threadpoolctl import ThreadpoolController

from core.evaluation.engine import CurveSet
from core.types import FloatArray, TTSLabError

__all__ = [
    "CurveIntervals",
    "EfficiencyResult",
    "Interval",
    "IntervalArray",
    "StatsError",
    "bootstrap_mean_ci",
    "bootstrap_means",
    "curve_cis",
    "efficiencies",
    "efficiency_from_curves",
    "efficiency_ratio",
    "paired_difference_ci",
    "paired_difference_cis",
    "reach_ratios",
]

#: Largest count matrix materialised at once (entries); larger n_boot x P go in chunks.
_CHUNK_ENTRIES = 2_000_000
_BLAS: ThreadpoolController | None = None


def _one_blas_thread() -> Any:
    """A context with BLAS on one thread: these products are small, and OpenBLAS's idle
    threads would otherwise spin on the other core after each one."""
    global _BLAS
    if _BLAS is None:
        _BLAS = ThreadpoolController()
    return _BLAS.limit(limits=1, user_api="blas")


class StatsError(TTSLabError, ValueError):
    """Raised for malformed inputs to the statistics helpers."""


@dataclass(frozen=True)
class Interval:
    """A point estimate with a (percentile bootstrap) confidence interval."""

    estimate: float
    low: float
    high: float
    level: float


@dataclass(frozen=True, eq=False)
class IntervalArray:
    """Element-wise intervals for arrays of estimates (e.g. one per budget)."""

    estimate: FloatArray
    low: FloatArray
    high: FloatArray
    level: float

    def at(self, index: int | tuple[int, ...]) -> Interval:
        return Interval(
            float(self.estimate[index]),
            float(self.low[index]),
            float(self.high[index]),
            self.level,
        )


@dataclass(frozen=True, eq=False)
class CurveIntervals:
    """Per-strategy, per-budget mean accuracy with bootstrap intervals, arrays (S, B)."""

    strategies: tuple[str, ...]
    budgets: tuple[int, ...]
    estimate: FloatArray
    low: FloatArray
    high: FloatArray
    level: float
    n_boot: int


@dataclass(frozen=True)
class EfficiencyResult:
    """Budget at which curve A first reaches a target accuracy, relative to a reference.

    Attributes:
        ratio: budget / ref_budget (NaN when the target is never reached).
        budget: interpolated budget (on log2 N) at which A reaches the target, or None.
        target: the accuracy to reach (B's accuracy at the reference budget).
        ref_budget: the reference budget.
        reached: whether A reaches the target within the evaluated budgets.
        reason: short explanation (how the budget was obtained, or why it is missing).
        low, high: percentile bootstrap interval of the ratio over problems (both curves
            resampled together); ``high`` is inf when A fails to reach the target in more
            than (1 - level) / 2 of the resamples. NaN when no interval was computed.
        level: the interval's level (NaN without one).
        share_reached: the share of bootstrap resamples in which A reaches the target.
    """

    ratio: float
    budget: float | None
    target: float
    ref_budget: int
    reached: bool
    reason: str
    low: float = math.nan
    high: float = math.nan
    level: float = math.nan
    share_reached: float = math.nan

    @property
    def has_interval(self) -> bool:
        return not math.isnan(self.level)


def _as_problems_last(x: npt.ArrayLike, name: str) -> FloatArray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 0 or arr.shape[-1] == 0:
        raise StatsError(f"{name} needs at least one problem on its last axis")
    if not np.all(np.isfinite(arr)):
        raise StatsError(f"{name} contains non-finite values")
    return arr


def _check_level(level: float, n_boot: int) -> None:
    if not 0.0 < level < 1.0:
        raise StatsError(f"level must lie in (0, 1), got {level}")
    if n_boot < 1:
        raise StatsError(f"n_boot must be >= 1, got {n_boot}")


def bootstrap_means(per_problem: npt.ArrayLike, n_boot: int = 2000, seed: int = 0) -> FloatArray:
    """Bootstrap means over problems: (..., P) -> (..., n_boot).

    Resample b draws P problems with replacement; its mean is ``counts[b] @ x / P``. The
    resamples depend only on (seed, P, n_boot), never on the values.
    """
    x = _as_problems_last(per_problem, "per_problem")
    n_boot = int(n_boot)
    if n_boot < 1:
        raise StatsError(f"n_boot must be >= 1, got {n_boot}")
    n_prob = x.shape[-1]
    flat = x.reshape(-1, n_prob)
    out = np.empty((flat.shape[0], n_boot), dtype=np.float64)
    for start, stop, counts_t in _resample_counts(seed, n_prob, n_boot):
        with _one_blas_thread():
            out[:, start:stop] = flat @ counts_t / n_prob
    return out.reshape((*x.shape[:-1], n_boot))


@functools.lru_cache(maxsize=16)
def _resample_counts(
    seed: int, n_prob: int, n_boot: int
) -> tuple[tuple[int, int, FloatArray], ...]:
    """The resamples as (start, stop, counts (P, rows) as floats) chunks; they depend only
    on (seed, P, n_boot), so every curve of the same problems shares one draw."""
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_ENTRIES // n_prob)
    out = []
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        rows = stop - start
        idx = rng.integers(0, n_prob, size=(rows, n_prob))
        flat_idx = (np.arange(rows, dtype=np.int64)[:, None] * n_prob + idx).ravel()
        counts = np.bincount(flat_idx, minlength=rows * n_prob).reshape(rows, n_prob)
        counts_t = counts.T.astype(np.float64)  # as laid out before the cache: same sums
        counts_t.setflags(write=False)
        out.append((start, stop, counts_t))
    return tuple(out)


def bootstrap_mean_ci(
    per_problem: npt.ArrayLike, n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Mean over problems with a percentile bootstrap interval, for (..., P) input.

    Returns:
        (estimate, low, high), each of shape ``per_problem.shape[:-1]``.
    """
    _check_level(level, n_boot)
    x = _as_problems_last(per_problem, "per_problem")
    means = bootstrap_means(x, n_boot=n_boot, seed=seed)
    alpha = 1.0 - level
    low = np.quantile(means, alpha / 2.0, axis=-1)
    high = np.quantile(means, 1.0 - alpha / 2.0, axis=-1)
    est = x.mean(axis=-1)
    return (
        np.asarray(est, dtype=np.float64),
        np.asarray(low, dtype=np.float64),
        np.asarray(high, dtype=np.float64),
    )


def paired_difference_cis(
    a_per_problem: npt.ArrayLike,
    b_per_problem: npt.ArrayLike,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> IntervalArray:
    """Mean of A - B over problems with a bootstrap interval of the per-problem
    differences (one set of resamples for both), for (..., P) inputs of equal shape."""
    a = _as_problems_last(a_per_problem, "a_per_problem")
    b = _as_problems_last(b_per_problem, "b_per_problem")
    if a.shape != b.shape:
        raise StatsError(f"paired inputs must have equal shapes, got {a.shape} and {b.shape}")
    est, low, high = bootstrap_mean_ci(a - b, n_boot=n_boot, level=level, seed=seed)
    return IntervalArray(est, low, high, float(level))


def paired_difference_ci(
    a_per_problem: npt.ArrayLike,
    b_per_problem: npt.ArrayLike,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Scalar version of :func:`paired_difference_cis` for per-problem vectors (P,)."""
    a = np.asarray(a_per_problem, dtype=np.float64)
    if a.ndim != 1:
        raise StatsError(
            f"paired_difference_ci takes (P,) vectors, got shape {a.shape}; "
            "use paired_difference_cis for (..., P) arrays (e.g. one row per budget)"
        )
    return paired_difference_cis(a, b_per_problem, n_boot, level, seed).at(())


def curve_cis(
    curves: CurveSet, n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> CurveIntervals:
    """Bootstrap interval of every strategy's mean accuracy at every budget (same
    resamples of problems for all strategies and budgets)."""
    est, low, high = bootstrap_mean_ci(curves.per_problem, n_boot=n_boot, level=level, seed=seed)
    return CurveIntervals(
        strategies=curves.strategies,
        budgets=curves.budgets,
        estimate=est,
        low=low,
        high=high,
        level=float(level),
        n_boot=int(n_boot),
    )


def efficiency_ratio(
    budgets: Sequence[int] | npt.ArrayLike,
    acc_a: npt.ArrayLike,
    acc_b_at_ref: float,
    ref_budget: int,
) -> EfficiencyResult:
    """Smallest budget at which curve A first reaches ``acc_b_at_ref``, over ``ref_budget``.

    Between grid points the curve is interpolated linearly in log2 N: if A crosses the
    target between budgets N_lo and N_hi (accuracies a_lo < target <= a_hi), the budget
    is ``2 ** (log2 N_lo + (target - a_lo) / (a_hi - a_lo) * (log2 N_hi - log2 N_lo))``.
    If A is at or above the target at the first budget, the budget is that first budget
    (1 / ref_budget when the grid starts at N = 1). If A never reaches the target, ratio
    is NaN and budget None.
    """
    n = np.asarray(budgets, dtype=np.float64).reshape(-1)
    acc = np.asarray(acc_a, dtype=np.float64).reshape(-1)
    target = float(acc_b_at_ref)
    ref = int(ref_budget)
    if len(n) == 0 or len(n) != len(acc):
        raise StatsError("budgets and acc_a must be non-empty and of equal length")
    if np.any(n < 1) or np.any(np.diff(n) <= 0):
        raise StatsError("budgets must be >= 1 and strictly increasing")
    if ref < 1:
        raise StatsError(f"ref_budget must be >= 1, got {ref_budget}")
    if not (np.all(np.isfinite(acc)) and math.isfinite(target)):
        raise StatsError("accuracies must be finite")
    hits = np.flatnonzero(acc >= target)
    if len(hits) == 0:
        return EfficiencyResult(
            ratio=math.nan,
            budget=None,
            target=target,
            ref_budget=ref,
            reached=False,
            reason=(
                f"never reaches {target:.4f} within budgets up to {int(n[-1])} "
                f"(max accuracy {float(acc.max()):.4f})"
            ),
        )
    i = int(hits[0])
    if i == 0:
        budget = float(n[0])
        reason = f"already at or above the target at the smallest budget N={int(n[0])}" + (
            " (an upper bound: smaller budgets were not evaluated)" if n[0] > 1 else ""
        )
    else:
        x0, x1 = math.log2(float(n[i - 1])), math.log2(float(n[i]))
        a0, a1 = float(acc[i - 1]), float(acc[i])
        frac = (target - a0) / (a1 - a0)
        budget = 2.0 ** (x0 + frac * (x1 - x0))
        reason = (
            f"interpolated on log2 N between N={int(n[i - 1])} ({a0:.4f}) "
            f"and N={int(n[i])} ({a1:.4f})"
        )
    return EfficiencyResult(
        ratio=budget / ref,
        budget=budget,
        target=target,
        ref_budget=ref,
        reached=True,
        reason=reason,
    )


def reach_ratios(
    budgets: Sequence[int], acc: FloatArray, target: FloatArray, ref: int
) -> FloatArray:
    """`efficiency_ratio` for many curves at once: acc (R, B), target (R,) -> (R,) ratios,
    inf where the curve never reaches its target."""
    n = np.log2(np.asarray(budgets, dtype=np.float64))
    hit = acc >= target[:, None]
    reached = hit.any(axis=1)
    i = np.argmax(hit, axis=1)
    rows = np.arange(acc.shape[0])
    prev = np.maximum(i - 1, 0)
    a0, a1 = acc[rows, prev], acc[rows, i]
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(a1 > a0, (target - a0) / (a1 - a0), 1.0)
    x = np.where(i == 0, n[0], n[prev] + frac * (n[i] - n[prev]))
    out = np.where(reached, 2.0**x / ref, np.inf)
    return np.asarray(out, dtype=np.float64)


def efficiency_from_curves(
    curves: CurveSet,
    strategy_a: str,
    strategy_b: str,
    ref_budget: int,
    *,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> EfficiencyResult:
    """:func:`efficiency_ratio` of A against B's mean accuracy at ``ref_budget`` (which
    must be one of the curve budgets), with a percentile bootstrap interval over problems:
    each resample recomputes both A's curve and B's target on the same problems."""
    return efficiencies(
        curves, [strategy_a], strategy_b, ref_budget, n_boot=n_boot, level=level, seed=seed
    )[strategy_a]


def efficiencies(
    curves: CurveSet,
    strategies: Sequence[str],
    strategy_b: str,
    ref_budget: int,
    *,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, EfficiencyResult]:
    """`efficiency_from_curves` of several strategies against one reference, from one set
    of bootstrap means."""
    if ref_budget not in curves.budgets:
        raise StatsError(f"ref_budget {ref_budget} is not one of the budgets {curves.budgets}")
    _check_level(level, n_boot)
    names = list(dict.fromkeys([*strategies, strategy_b]))
    per = curves.per_problem
    boot = bootstrap_means(
        np.stack([per[curves.index(n)] for n in names]), n_boot=n_boot, seed=seed
    )  # (S, B, n_boot)
    bi = curves.budgets.index(ref_budget)
    acc_b = float(curves.curve(strategy_b)[bi])
    target = boot[names.index(strategy_b), bi]
    alpha = 1.0 - level
    lo_i = math.floor(alpha / 2.0 * (n_boot - 1))
    hi_i = math.ceil((1.0 - alpha / 2.0) * (n_boot - 1))
    out: dict[str, EfficiencyResult] = {}
    for name in strategies:
        point = efficiency_ratio(curves.budgets, curves.curve(name), acc_b, ref_budget)
        ratios = reach_ratios(curves.budgets, boot[names.index(name)].T, target, ref_budget)
        srt = np.sort(ratios)
        out[name] = replace(
            point,
            low=float(srt[lo_i]),
            high=float(srt[hi_i]),
            level=float(level),
            share_reached=float(np.mean(np.isfinite(ratios))),
        )
    return out
