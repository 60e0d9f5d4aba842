"""Calibrators of P(correct | score) fitted on calibration problems.

* a binned calibrator ``g(t)`` (equal-mass bins, P(correct) per bin shrunk towards the
  smoothed base rate) used for the per-problem ``q`` of Theorem 3.2;
* Platt scaling (1-D logistic regression on ``x = logit(t)`` with Platt's target smoothing,
  Newton's method) and isotonic regression (pool-adjacent-violators); both turned into log
  likelihood ratio weights ``logit P(c=1|s) - logit(base rate)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import special

from core.methods.params import CalibrationError
from core.methods.transforms import logit_scalar, smoothed_base_rate
from core.types import BoolArray, FloatArray


@dataclass(frozen=True, eq=False)
class BinnedCalibrator:
    """P(correct | t) by equal-mass bins: bin j holds edges[j-1] <= t < edges[j]."""

    edges: FloatArray  # interior edges, increasing, length n_bins - 1 (or fewer with ties)
    probs: FloatArray  # length len(edges) + 1, strictly inside (0, 1)

    def predict(self, t: npt.ArrayLike) -> FloatArray:
        j = np.searchsorted(self.edges, np.asarray(t, dtype=np.float64), side="right")
        return np.asarray(self.probs[j], dtype=np.float64)


def fit_binned_calibrator(
    t: FloatArray, correct: BoolArray | FloatArray, *, n_bins: int = 10, smoothing: float = 2.0
) -> BinnedCalibrator:
    """Equal-mass bins of t; per bin (k + a * p0) / (n + a), p0 = (K + 1) / (N + 2).
    `correct` may be soft labels (each response's probability of being correct): k and K
    are then expected counts."""
    t = np.asarray(t, dtype=np.float64)
    c = np.asarray(correct)
    c = c.astype(np.float64) if c.dtype != bool else c
    if t.size == 0:
        raise CalibrationError("cannot fit a calibrator on zero responses")
    p0 = smoothed_base_rate(float(c.sum()), float(c.size))
    qs = np.quantile(t, np.arange(1, n_bins) / n_bins, method="inverted_cdf")
    edges = np.unique(qs)
    # an edge equal to the minimum would leave bin 0 empty: drop it
    edges = edges[edges > t.min()]
    j = np.searchsorted(edges, t, side="right")
    k = np.bincount(j, weights=c.astype(np.float64), minlength=edges.size + 1)
    n = np.bincount(j, minlength=edges.size + 1).astype(np.float64)
    probs = (k + smoothing * p0) / (n + smoothing)
    return BinnedCalibrator(edges=np.asarray(edges, np.float64), probs=probs)


# --------------------------------------------------------------------------------------
# Platt and isotonic
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlattFit:
    """P(c=1 | x) = sigmoid(slope * x + intercept); x = logit(t)."""

    slope: float
    intercept: float
    base_rate: float

    def log_lr(self, x: npt.ArrayLike) -> FloatArray:
        xx = np.asarray(x, dtype=np.float64)
        return np.asarray(
            self.slope * xx + self.intercept - logit_scalar(self.base_rate), dtype=np.float64
        )


def fit_platt(x: FloatArray, correct: BoolArray, *, max_iter: int = 100) -> PlattFit:
    """1-D logistic regression of correctness on x with Platt's smoothed targets.

    Targets are (N+ + 1) / (N+ + 2) for positives and 1 / (N- + 2) for negatives, which keeps
    the maximum-likelihood solution finite even on separable data. Newton's method with
    backtracking, on standardised x.
    """
    x = np.asarray(x, dtype=np.float64)
    c = np.asarray(correct, dtype=bool)
    if x.size == 0:
        raise CalibrationError("cannot fit Platt scaling on zero responses")
    n1 = float(c.sum())
    n0 = float(c.size) - n1
    tgt = np.where(c, (n1 + 1.0) / (n1 + 2.0), 1.0 / (n0 + 2.0))
    mu = float(x.mean())
    sd = float(x.std())
    if not sd > 0:
        sd = 1.0
    z = (x - mu) / sd

    def loss(beta: FloatArray) -> float:
        eta = beta[0] * z + beta[1]
        return float(np.sum(np.logaddexp(0.0, eta) - tgt * eta))

    tm = float(tgt.mean())
    beta = np.array([0.0, logit_scalar(tm)])
    cur = loss(beta)
    for _ in range(max_iter):
        eta = beta[0] * z + beta[1]
        p = special.expit(eta)
        r = p - tgt
        grad = np.array([float(np.dot(r, z)), float(r.sum())])
        w = p * (1.0 - p)
        hess = np.array(
            [[float(np.dot(w, z * z)), float(np.dot(w, z))], [float(np.dot(w, z)), float(w.sum())]]
        )
        hess += np.eye(2) * 1e-12 * max(1.0, float(np.trace(hess)))
        try:
            step = np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError:
            step = grad / max(float(np.trace(hess)), 1e-12)
        lr = 1.0
        while lr > 1e-10:
            cand = beta - lr * step
            new = loss(cand)
            if new <= cur:
                break
            lr *= 0.5
        else:
            break
        beta, prev = cand, cur
        cur = new
        if float(np.max(np.abs(lr * step))) < 1e-10 or prev - cur < 1e-13 * max(1.0, abs(cur)):
            break
    slope = float(beta[0] / sd)
    intercept = float(beta[1] - beta[0] * mu / sd)
    return PlattFit(slope=slope, intercept=intercept, base_rate=smoothed_base_rate(n1, c.size))


def pava(y: FloatArray, w: FloatArray) -> FloatArray:
    """Weighted least-squares non-decreasing fit of y (pool adjacent violators)."""
    n = y.size
    means: list[float] = []
    weights: list[float] = []
    counts: list[int] = []
    for i in range(n):
        m, wt, cnt = float(y[i]), float(w[i]), 1
        while means and means[-1] > m:
            pw = weights.pop()
            pm = means.pop()
            cnt += counts.pop()
            m = (pm * pw + m * wt) / (pw + wt)
            wt += pw
        means.append(m)
        weights.append(wt)
        counts.append(cnt)
    return np.repeat(np.asarray(means, dtype=np.float64), np.asarray(counts, dtype=np.int64))


@dataclass(frozen=True, eq=False)
class IsotonicFit:
    """Non-decreasing P(c=1 | x), linear interpolation between knots, constant beyond."""

    x: FloatArray
    p: FloatArray
    base_rate: float

    def prob(self, x: npt.ArrayLike) -> FloatArray:
        return np.asarray(
            np.interp(np.asarray(x, dtype=np.float64), self.x, self.p), dtype=np.float64
        )

    def log_lr(self, x: npt.ArrayLike) -> FloatArray:
        p = self.prob(x)
        return np.asarray(special.logit(p) - logit_scalar(self.base_rate), dtype=np.float64)


def fit_isotonic(x: FloatArray, correct: BoolArray, *, smoothing: float = 2.0) -> IsotonicFit:
    """Isotonic regression of correctness on x (PAVA over distinct x values).

    Each pooled block's rate k/n is shrunk to (k + a * p0) / (n + a) (p0 the smoothed base
    rate, a = `smoothing`) and re-monotonised with a running maximum, so probabilities stay
    strictly inside (0, 1). Knots: first and last x of every block.
    """
    x = np.asarray(x, dtype=np.float64)
    c = np.asarray(correct, dtype=np.float64)
    if x.size == 0:
        raise CalibrationError("cannot fit isotonic regression on zero responses")
    ux, inv = np.unique(x, return_inverse=True)
    k = np.bincount(inv, weights=c, minlength=ux.size)
    n = np.bincount(inv, minlength=ux.size).astype(np.float64)
    fitted = pava(k / n, n)
    # blocks = runs of equal fitted value
    start = np.ones(ux.size, dtype=bool)
    start[1:] = fitted[1:] != fitted[:-1]
    bid = np.cumsum(start) - 1
    bk = np.bincount(bid, weights=k)
    bn = np.bincount(bid, weights=n)
    p0 = smoothed_base_rate(float(c.sum()), float(c.size))
    bp = np.maximum.accumulate((bk + smoothing * p0) / (bn + smoothing))
    first = np.flatnonzero(start)
    last = np.append(first[1:] - 1, ux.size - 1)
    knots_x = np.empty(2 * first.size, dtype=np.float64)
    knots_p = np.empty(2 * first.size, dtype=np.float64)
    knots_x[0::2], knots_x[1::2] = ux[first], ux[last]
    knots_p[0::2], knots_p[1::2] = bp, bp
    keep = np.ones(knots_x.size, dtype=bool)
    keep[1:] = knots_x[1:] != knots_x[:-1]  # one-value blocks give duplicate knots
    return IsotonicFit(x=knots_x[keep], p=knots_p[keep], base_rate=p0)
