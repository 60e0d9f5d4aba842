"""Class-conditional densities of logit scores by a grid/FFT Gaussian KDE.

Scores are binned linearly onto a regular grid and convolved with a Gaussian kernel by FFT
(100x faster than `scipy.stats.gaussian_kde` at 1e5+ points; in logit space no boundary
correction is needed). Bandwidth "scott" (``n**-1/5 * sd``) or "silverman"
(``(3n/4)**-1/5 * sd``), both with scipy's conventions, or a positive number in logit units;
by default one bandwidth is shared by both classes (the larger of the two per-class rule
values), so an uninformative verifier gives no systematic weight.

Tails: each class density is shrunk towards the pooled density by ``density_prior``
pseudo-responses, f1' = (n1 f1 + c fp) / (n1 + c), so where one class has no data its log
likelihood ratio levels off at about -log(n1 / c) instead of returning to 0 (as a floor on
each density made it do: at both ends of the data the floored densities met). Beyond the
data (where the pooled density falls below ``density_floor`` of its peak) the log
likelihood ratio is held at its value at the edge, never snapped to 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
from scipy import fft as sp_fft

from core.methods.params import CalibrationError, StrategyParams
from core.types import BoolArray, FloatArray

#: |log likelihood ratio| below this is numerical noise and is set to exactly 0, so that
#: identical class densities give exactly zero weight (and ties stay ties).
LLR_ZERO_TOL: Final = 1e-9
#: smallest KDE bandwidth used (logit units); smaller requests are raised to it.
MIN_BANDWIDTH: Final = 1e-4
_MAX_GRID: Final = 1 << 16
_KDE_CUTOFF: Final = 5.0  # kernel and grid padding, in bandwidths


def _fftconvolve_same(a: FloatArray, k: FloatArray) -> FloatArray:
    """``scipy.signal.fftconvolve(a, k, mode="same")`` for 1-D real arrays, computed the
    same way (real FFTs of the next fast length, centred slice), without importing
    scipy.signal (a second of start-up)."""
    full = a.size + k.size - 1
    n = sp_fft.next_fast_len(full, True)
    out = sp_fft.irfftn(sp_fft.rfftn(a, [n]) * sp_fft.rfftn(k, [n]), [n])[:full]
    start = (full - a.size) // 2
    return np.asarray(out[start : start + a.size].copy(), dtype=np.float64)


def kde_bandwidth(
    x: FloatArray, bandwidth: str | float, weights: FloatArray | None = None
) -> float:
    """Bandwidth in the units of `x` (scipy gaussian_kde's Scott / Silverman factors).

    Never below `MIN_BANDWIDTH`. A sample without spread (all values equal up to rounding)
    is given unit scale. With `weights` (soft class memberships), n is their sum and the
    spread their weighted standard deviation (scipy's convention for weighted KDEs uses
    Kish's effective n; the sum is used here so that 0/1 weights give the unweighted rule).
    """
    if not isinstance(bandwidth, str):
        return max(float(bandwidth), MIN_BANDWIDTH)
    if weights is None:
        n: float = x.size
        sd = float(np.std(x, ddof=1)) if n > 1 else 0.0
    else:
        n = float(weights.sum())
        if n > 1:
            mean = float(weights @ x) / n
            sd = math.sqrt(max(float(weights @ (x - mean) ** 2) / (n - 1.0), 0.0))
        else:
            sd = 0.0
    scale = max(1.0, float(np.max(np.abs(x)))) if n else 1.0
    if not (math.isfinite(sd) and sd > 1e-9 * scale):
        sd = 1.0  # degenerate sample (all equal): unit scale in logit space
    if bandwidth == "scott":
        h = n ** (-0.2) * sd
    elif bandwidth == "silverman":
        h = (n * 0.75) ** (-0.2) * sd
    else:
        raise CalibrationError(f"unknown bandwidth rule {bandwidth!r}")
    return max(float(h), MIN_BANDWIDTH)


def kde_grid(xs: Sequence[FloatArray], hs: Sequence[float], n_grid: int) -> FloatArray:
    """A regular grid covering every sample +- 5 bandwidths with step <= min(h) / 4."""
    lo = min(float(x.min()) - _KDE_CUTOFF * h for x, h in zip(xs, hs, strict=True))
    hi = max(float(x.max()) + _KDE_CUTOFF * h for x, h in zip(xs, hs, strict=True))
    need = math.ceil((hi - lo) / (min(hs) / 4.0)) + 1
    n = int(min(max(n_grid, need), _MAX_GRID))
    return np.linspace(lo, hi, n)


def grid_kde_density(
    x: FloatArray, grid: FloatArray, h: float, weights: FloatArray | None = None
) -> FloatArray:
    """Gaussian KDE of `x` with bandwidth `h` on a regular `grid` (linear binning + FFT),
    each point counted with its weight when `weights` are given.

    Mass outside the grid is clamped onto its end points. Returns a density (integrates to
    about 1 over the grid), non-negative.
    """
    n = grid.size
    dx = float(grid[1] - grid[0])
    u = (x - grid[0]) / dx
    i = np.clip(np.floor(u), 0, n - 2).astype(np.int64)
    frac = np.clip(u - i, 0.0, 1.0)
    lo_w, hi_w = (1.0 - frac, frac) if weights is None else ((1.0 - frac) * weights, frac * weights)
    counts = np.asarray(
        np.bincount(i, weights=lo_w, minlength=n) + np.bincount(i + 1, weights=hi_w, minlength=n),
        dtype=np.float64,
    )
    half = min(n - 1, math.ceil(_KDE_CUTOFF * h / dx))
    offs = np.arange(-half, half + 1, dtype=np.float64) * dx
    kernel = np.exp(-0.5 * (offs / h) ** 2)
    kernel /= kernel.sum() * dx  # discrete normalisation: exact mass even when h < dx
    dens = _fftconvolve_same(counts, kernel)
    total = float(x.size) if weights is None else float(weights.sum())
    dens = np.maximum(dens, 0.0) / max(total, 1e-300 if weights is not None else 1.0)
    return np.asarray(dens, dtype=np.float64)


@dataclass(frozen=True, eq=False)
class KDEFit:
    """Class-conditional densities of x = logit(t) on a grid (log, each shrunk towards the
    pooled density), and the range [x_lo, x_hi] of the data beyond which the log likelihood
    ratio is held at its edge value."""

    grid: FloatArray
    log_f1: FloatArray
    log_f0: FloatArray
    bandwidth1: float
    bandwidth0: float
    n1: int
    n0: int
    log_floor: float
    x_lo: float = -math.inf
    x_hi: float = math.inf

    def log_densities(self, x: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
        """log f1(x), log f0(x) (linear interpolation; constant beyond the grid)."""
        xx = np.asarray(x, dtype=np.float64)
        l1 = np.interp(xx, self.grid, self.log_f1)
        l0 = np.interp(xx, self.grid, self.log_f0)
        return np.asarray(l1, dtype=np.float64), np.asarray(l0, dtype=np.float64)

    def log_lr(self, x: npt.ArrayLike) -> FloatArray:
        """log f1(x) / f0(x), held at its value at the edge of the data beyond it."""
        xx = np.clip(np.asarray(x, dtype=np.float64), self.x_lo, self.x_hi)
        l1, l0 = self.log_densities(xx)
        d = l1 - l0
        d[np.abs(d) < LLR_ZERO_TOL] = 0.0
        return d


def fit_kde(
    x: FloatArray,
    correct: BoolArray | FloatArray,
    *,
    bandwidth: str | float = "scott",
    bandwidth_mode: str = "shared",
    n_grid: int = 1024,
    density_floor: float = 1e-3,
    density_prior: float = 1.0,
) -> KDEFit:
    """KDE of logit scores for correct (f1) and incorrect (f0) responses, each shrunk
    towards the pooled density by `density_prior` pseudo-responses; the data's range is
    where the pooled density is at least `density_floor` of its peak.

    `correct` is either the labels (bool) or soft labels: each response's probability of
    being correct (floats in [0, 1], from label-free calibration), when every response
    counts in f1 with weight p and in f0 with weight 1 - p (0/1 floats give the labelled
    fit).

    Raises CalibrationError when a class has fewer than 2 responses (in weight).
    """
    x = np.asarray(x, dtype=np.float64)
    labels = np.asarray(correct)
    w1: FloatArray | None = None
    w0: FloatArray | None = None
    if labels.dtype == bool:
        mask = labels.astype(bool)
        x1, x0 = x[mask], x[~mask]
        n1, n0 = float(x1.size), float(x0.size)
    else:
        p = labels.astype(np.float64)
        if p.shape != x.shape or not np.all((p >= 0.0) & (p <= 1.0)):
            raise CalibrationError("soft labels must be probabilities, one per response")
        on, off = p > 0.0, p < 1.0
        x1, w1 = x[on], p[on]
        x0, w0 = x[off], 1.0 - p[off]
        n1, n0 = float(w1.sum()), float(w0.sum())
    if n1 < 2 or n0 < 2:
        raise CalibrationError(
            "the KDE needs at least 2 correct and 2 incorrect calibration responses "
            f"(got {n1:g} correct, {n0:g} incorrect)"
        )
    h1, h0 = kde_bandwidth(x1, bandwidth, w1), kde_bandwidth(x0, bandwidth, w0)
    if bandwidth_mode == "shared":
        h1 = h0 = max(h1, h0)
    elif bandwidth_mode != "per_class":
        raise CalibrationError(f"unknown bandwidth_mode {bandwidth_mode!r}")
    grid = kde_grid([x1, x0], [h1, h0], n_grid)
    f1 = grid_kde_density(x1, grid, h1, w1)
    f0 = grid_kde_density(x0, grid, h0, w0)
    pooled = (n1 * f1 + n0 * f0) / (n1 + n0)
    prior = float(density_prior)
    s1 = (n1 * f1 + prior * pooled) / (n1 + prior)
    s0 = (n0 * f0 + prior * pooled) / (n0 + prior)
    peak = float(pooled.max())
    inside = np.flatnonzero(pooled >= density_floor * peak)
    # numerically zero far from the data (FFT round-off): a tiny floor keeps logs finite
    tiny = 1e-300 + 1e-12 * peak
    return KDEFit(
        grid=grid,
        log_f1=np.log(np.maximum(s1, tiny)),
        log_f0=np.log(np.maximum(s0, tiny)),
        bandwidth1=h1,
        bandwidth0=h0,
        n1=round(n1),
        n0=round(n0),
        log_floor=math.log(tiny),
        x_lo=float(grid[inside[0]]),
        x_hi=float(grid[inside[-1]]),
    )


def fit_kde_params(
    x: FloatArray, correct: BoolArray | FloatArray, params: StrategyParams
) -> KDEFit:
    """`fit_kde` with the KDE fields of `params`."""
    return fit_kde(
        x,
        correct,
        bandwidth=params.bandwidth,
        bandwidth_mode=params.bandwidth_mode,
        n_grid=params.n_grid,
        density_floor=params.density_floor,
        density_prior=params.density_prior,
    )
