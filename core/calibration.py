"""Fitting weight functions on calibration problems.

Everything in this module that looks at correctness labels does so on *calibration*
problems only; evaluation happens elsewhere (`core.budget`). The pieces:

* score transforms (``identity`` / ``sigmoid`` / ``rank``; ``auto`` resolves to identity when
  every calibration score lies in [0, 1] and to sigmoid otherwise). The resolved transform is
  recorded with every fit. Transformed scores ``t`` lie in [0, 1]; log-space methods work on
  ``x = logit(clip(t, eps, 1 - eps))``.
* a grid/FFT Gaussian KDE of ``x`` for correct and incorrect responses (linear binning onto a
  regular grid + FFT convolution). Bandwidth ``"scott"`` (``n**-1/5 * sd``), ``"silverman"``
  (``(3n/4)**-1/5 * sd``; both with scipy's ``gaussian_kde`` conventions) or a positive number in
  logit units; by default one bandwidth is shared by both classes (the larger of the two
  per-class rule values), so an uninformative verifier gives no systematic weight. Both
  densities are floored at ``density_floor * max(peak f1, peak f0)`` so the log likelihood
  ratio stays finite (and tends to 0) where data is thin.
* a binned calibrator ``g(t)`` (equal-mass bins, P(correct) per bin shrunk towards the
  smoothed base rate) used for the per-problem ``q`` of Theorem 3.2.
* Platt scaling (1-D logistic regression on ``x`` with Platt's target smoothing, Newton's
  method) and isotonic regression (pool-adjacent-violators); both turned into log likelihood
  ratio weights ``logit P(c=1|s) - logit(base rate)``.
* a grid search of the offset ``b`` of linear WV (``t - b``, b in [-1, 1]) and logit WV
  (``logit t - logit b``, b in (0, 1)) whose objective (calibration accuracy at one budget, or
  averaged over budgets) is recorded.
* `FittedWeights`: one fitted weighting function, with a weight curve and class-conditional
  densities for plotting, and versioned JSON (de)serialisation.
* cross-fitting over problems (`cross_fit`, `cross_fit_many`), calibrate-on-A-evaluate-on-B
  (`calibrate_transfer`) and bootstrap bands of weight curves (`bootstrap_weight_bands`).

Serialised form of a `FittedWeights` (``to_json``; schema_version 1), every float written
with round-trip precision so that ``from_json`` reproduces the weights bit for bit::

    {"schema_version": 1, "kind": "kde_wv", "transform": "identity",   # resolved transform
     "step_reduction": "last", "params": {...every StrategyParams field...},
     "calibration": {"dataset_id", "llm", "verifier", "n_problems", "n_responses",
                     "n_correct"},
     "kde": {"space": "logit", "grid": [...], "log_f1": [...], "log_f0": [...],
             "bandwidth1", "bandwidth0", "n1", "n0", "log_floor"} | null,
     "calibrator": {"edges": [...], "probs": [...]} | null,
     "platt": {"slope", "intercept", "base_rate"} | null,
     "isotonic": {"x": [...], "p": [...], "base_rate"} | null,
     "offset": {"b", "candidates": [...], "objective_values": [...], "objective",
                "budgets": [...], "n_subsets", "seed"} | null}
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt
from scipy import signal, special

from core.types import BoolArray, FloatArray, IntArray, PairData, TTSLabError

if TYPE_CHECKING:
    from core.budget import CurveSet, Subsets, VoteInputs
    from core.strategies import Strategy

SCHEMA_VERSION: Final = 1

TRANSFORMS: Final = ("auto", "identity", "sigmoid", "rank", "zscore", "log-zscore")
#: number of quantile knots of the resolved "rank" transform
RANK_KNOTS: Final = 129
#: transforms whose resolved form carries the centre and scale fitted on calibration scores,
#: written "zscore:<mean>:<sd>" / "log-zscore:<mean>:<sd>" (exact float reprs).
PARAMETRIC_TRANSFORMS: Final = ("zscore", "log-zscore")
#: "auto" treats non-negative signals above this as counts (e.g. token lengths).
COUNT_SIGNAL_MIN_MAX: Final = 50.0
BANDWIDTH_RULES: Final = ("scott", "silverman")
BANDWIDTH_MODES: Final = ("shared", "per_class")
OFFSET_OBJECTIVES: Final = ("budget", "mean")

#: weight kinds `FittedWeights` knows how to evaluate from scores alone.
SCORE_WEIGHT_KINDS: Final = (
    "majority",
    "best_of_n",
    "vanilla_wv",
    "linear_wv",
    "logit_wv",
    "kde_wv",
    "platt_wv",
    "isotonic_wv",
)
#: kinds whose weights use the labels of the evaluated problems (upper bounds).
ORACLE_KINDS: Final = ("oracle_optimal", "pass_at_n")
ALL_KINDS: Final = SCORE_WEIGHT_KINDS + ORACLE_KINDS

#: |log likelihood ratio| below this is numerical noise and is set to exactly 0, so that
#: identical class densities give exactly zero weight (and ties stay ties).
LLR_ZERO_TOL: Final = 1e-9
#: smallest KDE bandwidth used (logit units); smaller requests are raised to it.
MIN_BANDWIDTH: Final = 1e-4
_MAX_GRID: Final = 1 << 16
_KDE_CUTOFF: Final = 5.0  # kernel and grid padding, in bandwidths


class CalibrationError(TTSLabError):
    """A weighting function cannot be fitted or loaded (too few labels, bad parameters...)."""


# --------------------------------------------------------------------------------------
# parameters
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StrategyParams:
    """Every recorded parameter of fitting and applying a weighting function.

    Attributes:
        transform: score transform, one of `TRANSFORMS` ("auto" is resolved on the
            calibration scores and the resolved value is what `FittedWeights` records).
        clip_eps: transformed scores are clipped to [eps, 1 - eps] before any logit.
        bandwidth: KDE bandwidth rule ("scott", "silverman") or a number in logit units.
        bandwidth_mode: "shared" (default): both classes use the larger of the two
            per-class rule bandwidths, so that with an uninformative verifier both density
            estimates have the same expectation and the log ratio has no smoothing bias
            (constant scores give exactly zero weight); "per_class": each class its own.
        n_grid: minimum number of KDE grid points (more are used when the bandwidth is
            smaller than 4 grid steps, up to 65536).
        density_floor: class densities are floored at this fraction of the larger peak.
        n_bins: number of equal-mass bins of the calibrator g(s) used for q.
        bin_smoothing: pseudo-count pulling each bin (and isotonic block) towards the
            smoothed base rate, so probabilities stay strictly inside (0, 1).
        use_qm: for Platt and isotonic LR weights, also add Theorem 3.2's per-problem
            ``log(q(m-1)/(1-q))`` term (as KDE WV always does). False: pure LR weights.
        offset_objective: "budget" (calibration accuracy at `offset_budget`) or "mean"
            (mean calibration accuracy over `offset_budgets`).
        offset_budget: budget of the "budget" objective (clipped to the largest problem).
        offset_budgets: budgets of the "mean" objective; None = `budget.default_budgets`.
        offset_grid_size: number of candidate offsets (linear: evenly over [-1, 1];
            logit: evenly inside (0, 1), endpoints excluded).
        offset_n_subsets: random subsets per problem and budget in the offset search.
        offset_seed: seed of those subsets.
        step_reduction: label of the step reduction that produced the scores (recorded
            only; reduction happens before the data reach this module).
    """

    transform: str = "auto"
    clip_eps: float = 1e-6
    bandwidth: str | float = "scott"
    bandwidth_mode: str = "shared"
    n_grid: int = 1024
    density_floor: float = 1e-3
    n_bins: int = 10
    bin_smoothing: float = 2.0
    use_qm: bool = True
    offset_objective: str = "budget"
    offset_budget: int = 32
    offset_budgets: tuple[int, ...] | None = None
    offset_grid_size: int = 41
    offset_n_subsets: int = 100
    offset_seed: int = 0
    step_reduction: str = "stored"

    def __post_init__(self) -> None:
        if self.transform not in TRANSFORMS:
            raise CalibrationError(f"transform must be one of {TRANSFORMS}, got {self.transform!r}")
        if not 0.0 < self.clip_eps < 0.5:
            raise CalibrationError(f"clip_eps must be in (0, 0.5), got {self.clip_eps}")
        if isinstance(self.bandwidth, str):
            if self.bandwidth not in BANDWIDTH_RULES:
                raise CalibrationError(
                    f"bandwidth must be one of {BANDWIDTH_RULES} or a positive number, "
                    f"got {self.bandwidth!r}"
                )
        elif isinstance(self.bandwidth, bool) or not (
            math.isfinite(self.bandwidth) and self.bandwidth > 0
        ):
            raise CalibrationError(f"bandwidth must be positive, got {self.bandwidth!r}")
        if self.bandwidth_mode not in BANDWIDTH_MODES:
            raise CalibrationError(
                f"bandwidth_mode must be one of {BANDWIDTH_MODES}, got {self.bandwidth_mode!r}"
            )
        if self.n_grid < 16:
            raise CalibrationError(f"n_grid must be >= 16, got {self.n_grid}")
        if not 0.0 < self.density_floor < 1.0:
            raise CalibrationError(f"density_floor must be in (0, 1), got {self.density_floor}")
        if self.n_bins < 1:
            raise CalibrationError(f"n_bins must be >= 1, got {self.n_bins}")
        if not self.bin_smoothing > 0:
            raise CalibrationError(f"bin_smoothing must be > 0, got {self.bin_smoothing}")
        if self.offset_objective not in OFFSET_OBJECTIVES:
            raise CalibrationError(
                f"offset_objective must be one of {OFFSET_OBJECTIVES}, "
                f"got {self.offset_objective!r}"
            )
        if self.offset_budget < 1:
            raise CalibrationError(f"offset_budget must be >= 1, got {self.offset_budget}")
        if self.offset_budgets is not None and (
            len(self.offset_budgets) == 0 or min(self.offset_budgets) < 1
        ):
            raise CalibrationError("offset_budgets must be None or positive budgets")
        if self.offset_grid_size < 2:
            raise CalibrationError(f"offset_grid_size must be >= 2, got {self.offset_grid_size}")
        if self.offset_n_subsets < 1:
            raise CalibrationError("offset_n_subsets must be >= 1")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if self.offset_budgets is not None:
            d["offset_budgets"] = list(self.offset_budgets)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StrategyParams:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - known
        if unknown:
            raise CalibrationError(f"unknown strategy parameters: {sorted(unknown)}")
        kw = dict(d)
        if kw.get("offset_budgets") is not None:
            kw["offset_budgets"] = tuple(int(b) for b in kw["offset_budgets"])
        return cls(**kw)


# --------------------------------------------------------------------------------------
# data helpers and transforms
# --------------------------------------------------------------------------------------


def select_problems(pair: PairData, problems: npt.ArrayLike) -> PairData:
    """The pair restricted to (and reordered as) the given problem indices.

    Repeated indices repeat the problem (used by the bootstrap).
    """
    idx = np.asarray(problems, dtype=np.int64).reshape(-1)
    if idx.size and (idx.min() < 0 or idx.max() >= pair.n_problems):
        raise CalibrationError("problem index out of range")
    sizes = pair.sizes()[idx]
    offsets = np.zeros(idx.size + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    rows = response_rows(pair, idx)
    step = None
    if pair.step_scores is not None:
        step = tuple(pair.step_scores[int(r)] for r in rows)
    return PairData(
        dataset_id=pair.dataset_id,
        llm=pair.llm,
        verifier=pair.verifier,
        problem_ids=tuple(pair.problem_ids[int(i)] for i in idx),
        offsets=offsets,
        cluster=pair.cluster[rows].copy(),
        score=pair.score[rows].copy(),
        correct=pair.correct[rows].copy(),
        sample_idx=pair.sample_idx[rows].copy(),
        n_tokens=pair.n_tokens[rows].copy(),
        step_scores=step,
    )


def response_rows(pair: PairData, problems: npt.ArrayLike) -> IntArray:
    """Row indices (into the per-response arrays) of the given problems, in that order."""
    idx = np.asarray(problems, dtype=np.int64).reshape(-1)
    starts = pair.offsets[idx]
    sizes = pair.offsets[idx + 1] - starts
    total = int(sizes.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    # rows = starts[j] + (0..sizes[j]-1), vectorised
    seg_start = np.repeat(np.cumsum(sizes) - sizes, sizes)
    rows = np.repeat(starts, sizes) + (np.arange(total, dtype=np.int64) - seg_start)
    return np.asarray(rows, dtype=np.int64)


def problem_index(pair: PairData) -> IntArray:
    """Problem index of every response."""
    return np.repeat(np.arange(pair.n_problems, dtype=np.int64), pair.sizes())


def resolve_transform(transform: str, score: npt.ArrayLike) -> str:
    """Resolve "auto" and fit the parameters of parametric transforms on `score`.

    "auto": identity if every score lies in [0, 1]; log-zscore for non-negative signals
    that reach above COUNT_SIGNAL_MIN_MAX (counts such as token lengths); sigmoid otherwise
    (reward-model logits). "zscore" / "log-zscore" resolve to
    "zscore:<mean>:<sd>" / "log-zscore:<mean>:<sd>" of the (log1p) scores given here, i.e.
    of the calibration problems only: t = sigmoid((v - mean) / sd).
    """
    if transform not in TRANSFORMS:
        raise CalibrationError(f"transform must be one of {TRANSFORMS}, got {transform!r}")
    s = np.asarray(score, dtype=np.float64)
    if transform == "auto":
        if s.size == 0 or (float(s.min()) >= 0.0 and float(s.max()) <= 1.0):
            return "identity"
        if float(s.min()) >= 0.0 and float(s.max()) > COUNT_SIGNAL_MIN_MAX:
            transform = "log-zscore"
        else:
            return "sigmoid"
    if transform == "rank":
        return _resolve_rank(s)
    if transform in PARAMETRIC_TRANSFORMS:
        if transform == "log-zscore" and s.size and float(s.min()) < 0.0:
            raise CalibrationError("log-zscore needs non-negative scores")
        v = np.log1p(s) if transform == "log-zscore" else s
        mean = float(v.mean()) if v.size else 0.0
        sd = float(v.std()) if v.size else 1.0
        if not math.isfinite(sd) or sd <= 0.0:
            sd = 1.0
        return f"{transform}:{mean!r}:{sd!r}"
    return transform


def auto_transform_name(score: npt.ArrayLike) -> str:
    """The transform "auto" stands for on these scores (name only, no parameters).

    Resolve it once per pair (on all its scores: no labels are involved) so that every
    fold of a cross-fit uses the same kind of transform; the parameters of parametric
    transforms are then fitted per fold on calibration scores only.
    """
    name = resolve_transform("auto", score)
    return name.split(":", 1)[0]


def _resolve_rank(s: FloatArray) -> str:
    """ "rank:<knots>|<levels>": the mid-rank of a score among the calibration scores
    (their empirical CDF at RANK_KNOTS quantiles, interpolated). Unlike a rank within the
    problem, it does not depend on the other responses of the problem, which a budget-N
    subset has not seen."""
    if s.size == 0:
        return "rank:0.0|0.5"
    srt = np.sort(s)
    knots = np.unique(np.quantile(srt, np.linspace(0.0, 1.0, RANK_KNOTS)))
    lo = np.searchsorted(srt, knots, side="left")
    hi = np.searchsorted(srt, knots, side="right")
    levels = (lo + hi) / (2.0 * srt.size)
    return (
        "rank:"
        + ",".join(repr(float(k)) for k in knots)
        + "|"
        + ",".join(repr(float(v)) for v in levels)
    )


def _parse_rank(transform: str) -> tuple[FloatArray, FloatArray]:
    try:
        knots_s, levels_s = transform.split(":", 1)[1].split("|")
        knots = np.asarray([float(x) for x in knots_s.split(",")], dtype=np.float64)
        levels = np.asarray([float(x) for x in levels_s.split(",")], dtype=np.float64)
    except (ValueError, IndexError):
        raise CalibrationError("bad resolved rank transform") from None
    if (
        knots.size != levels.size
        or knots.size == 0
        or not (np.all(np.isfinite(knots)) and np.all(np.isfinite(levels)))
        or np.any(np.diff(knots) <= 0)
    ):
        raise CalibrationError("bad resolved rank transform")
    return knots, levels


def is_resolved_transform(transform: str) -> bool:
    try:
        parse_transform(transform)
    except CalibrationError:
        return False
    return True


def parse_transform(transform: str) -> tuple[str, float, float]:
    """(name, mean, sd) of a resolved transform (mean 0, sd 1 for non-parametric ones)."""
    name, *rest = transform.split(":")
    if name == "rank":
        if not rest:
            raise CalibrationError("the rank transform must be resolved on calibration scores")
        _parse_rank(transform)
        return name, 0.0, 1.0
    if name in PARAMETRIC_TRANSFORMS:
        if len(rest) != 2:
            raise CalibrationError(f"bad resolved transform {transform!r}")
        try:
            mean, sd = float(rest[0]), float(rest[1])
        except ValueError:
            raise CalibrationError(f"bad resolved transform {transform!r}") from None
        if not (math.isfinite(mean) and math.isfinite(sd) and sd > 0):
            raise CalibrationError(f"bad resolved transform {transform!r}")
        return name, mean, sd
    if rest or name not in TRANSFORMS or name == "auto":
        raise CalibrationError(f"bad resolved transform {transform!r}")
    return name, 0.0, 1.0


def within_problem_rank(score: FloatArray, offsets: IntArray) -> FloatArray:
    """Mid-rank of each score within its problem, mapped to (0, 1): (rank + 0.5) / n.

    Ties share their average rank; a problem with one response gets 0.5.
    """
    n = score.size
    if n == 0:
        return np.zeros(0, dtype=np.float64)
    sizes = np.diff(offsets)
    prob = np.repeat(np.arange(sizes.size, dtype=np.int64), sizes)
    order = np.lexsort((score, prob))
    s_sorted = score[order]
    p_sorted = prob[order]
    pos = np.arange(n, dtype=np.float64) - offsets[p_sorted].astype(np.float64)
    new_group = np.ones(n, dtype=bool)
    new_group[1:] = (s_sorted[1:] != s_sorted[:-1]) | (p_sorted[1:] != p_sorted[:-1])
    gid = np.cumsum(new_group) - 1
    g_sum = np.bincount(gid, weights=pos)
    g_cnt = np.bincount(gid)
    mid = (g_sum / g_cnt)[gid]
    out = np.empty(n, dtype=np.float64)
    out[order] = (mid + 0.5) / sizes[p_sorted].astype(np.float64)
    return out


def apply_transform(
    score: npt.ArrayLike, transform: str, offsets: IntArray | None = None
) -> FloatArray:
    """Transformed score in [0, 1] (identity clips to [0, 1]; rank needs `offsets`)."""
    s = np.asarray(score, dtype=np.float64)
    if transform == "identity":
        return np.clip(s, 0.0, 1.0)
    if transform == "sigmoid":
        return np.asarray(special.expit(s), dtype=np.float64)
    if transform.startswith("rank:"):
        knots, levels = _parse_rank(transform)
        if knots.size == 1:
            return np.full(s.shape, float(levels[0]))
        return np.asarray(np.interp(s, knots, levels), dtype=np.float64)
    if transform.split(":", 1)[0] in PARAMETRIC_TRANSFORMS:
        name, mean, sd = parse_transform(transform)
        v = np.log1p(np.maximum(s, 0.0)) if name == "log-zscore" else s
        return np.asarray(special.expit((v - mean) / sd), dtype=np.float64)
    raise CalibrationError(f"cannot apply transform {transform!r} (resolve 'auto' first)")


def clipped_logit(t: npt.ArrayLike, eps: float) -> FloatArray:
    tt = np.clip(np.asarray(t, dtype=np.float64), eps, 1.0 - eps)
    return np.asarray(special.logit(tt), dtype=np.float64)


def _smoothed_base_rate(n_correct: float, n: float) -> float:
    return (n_correct + 1.0) / (n + 2.0)


def _logit_scalar(p: float) -> float:
    return math.log(p) - math.log1p(-p)


# --------------------------------------------------------------------------------------
# grid KDE
# --------------------------------------------------------------------------------------


def kde_bandwidth(x: FloatArray, bandwidth: str | float) -> float:
    """Bandwidth in the units of `x` (scipy gaussian_kde's Scott / Silverman factors).

    Never below `MIN_BANDWIDTH`. A sample without spread (all values equal up to rounding)
    is given unit scale.
    """
    if not isinstance(bandwidth, str):
        return max(float(bandwidth), MIN_BANDWIDTH)
    n = x.size
    sd = float(np.std(x, ddof=1)) if n > 1 else 0.0
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


def grid_kde_density(x: FloatArray, grid: FloatArray, h: float) -> FloatArray:
    """Gaussian KDE of `x` with bandwidth `h` on a regular `grid` (linear binning + FFT).

    Mass outside the grid is clamped onto its end points. Returns a density (integrates to
    about 1 over the grid), non-negative.
    """
    n = grid.size
    dx = float(grid[1] - grid[0])
    u = (x - grid[0]) / dx
    i = np.clip(np.floor(u), 0, n - 2).astype(np.int64)
    frac = np.clip(u - i, 0.0, 1.0)
    counts = np.bincount(i, weights=1.0 - frac, minlength=n) + np.bincount(
        i + 1, weights=frac, minlength=n
    )
    half = min(n - 1, math.ceil(_KDE_CUTOFF * h / dx))
    offs = np.arange(-half, half + 1, dtype=np.float64) * dx
    kernel = np.exp(-0.5 * (offs / h) ** 2)
    kernel /= kernel.sum() * dx  # discrete normalisation: exact mass even when h < dx
    dens = signal.fftconvolve(counts, kernel, mode="same")
    dens = np.maximum(dens, 0.0) / max(float(x.size), 1.0)
    return np.asarray(dens, dtype=np.float64)


@dataclass(frozen=True, eq=False)
class KDEFit:
    """Class-conditional densities of x = logit(t), on a grid, as floored log densities."""

    grid: FloatArray
    log_f1: FloatArray
    log_f0: FloatArray
    bandwidth1: float
    bandwidth0: float
    n1: int
    n0: int
    log_floor: float

    def log_densities(self, x: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
        """Floored log f1(x), log f0(x) (linear interpolation; constant beyond the grid)."""
        xx = np.asarray(x, dtype=np.float64)
        l1 = np.interp(xx, self.grid, self.log_f1)
        l0 = np.interp(xx, self.grid, self.log_f0)
        return np.asarray(l1, dtype=np.float64), np.asarray(l0, dtype=np.float64)

    def log_lr(self, x: npt.ArrayLike) -> FloatArray:
        """log f1(x) / f0(x)."""
        l1, l0 = self.log_densities(x)
        d = l1 - l0
        d[np.abs(d) < LLR_ZERO_TOL] = 0.0
        return d


def fit_kde(
    x: FloatArray,
    correct: BoolArray,
    *,
    bandwidth: str | float = "scott",
    bandwidth_mode: str = "shared",
    n_grid: int = 1024,
    density_floor: float = 1e-3,
) -> KDEFit:
    """KDE of logit scores for correct (f1) and incorrect (f0) responses.

    Raises CalibrationError when a class has fewer than 2 responses.
    """
    x = np.asarray(x, dtype=np.float64)
    c = np.asarray(correct, dtype=bool)
    x1, x0 = x[c], x[~c]
    if x1.size < 2 or x0.size < 2:
        raise CalibrationError(
            "the KDE needs at least 2 correct and 2 incorrect calibration responses "
            f"(got {x1.size} correct, {x0.size} incorrect)"
        )
    h1, h0 = kde_bandwidth(x1, bandwidth), kde_bandwidth(x0, bandwidth)
    if bandwidth_mode == "shared":
        h1 = h0 = max(h1, h0)
    elif bandwidth_mode != "per_class":
        raise CalibrationError(f"unknown bandwidth_mode {bandwidth_mode!r}")
    grid = kde_grid([x1, x0], [h1, h0], n_grid)
    f1 = grid_kde_density(x1, grid, h1)
    f0 = grid_kde_density(x0, grid, h0)
    floor = density_floor * max(float(f1.max()), float(f0.max()))
    return KDEFit(
        grid=grid,
        log_f1=np.log(np.maximum(f1, floor)),
        log_f0=np.log(np.maximum(f0, floor)),
        bandwidth1=h1,
        bandwidth0=h0,
        n1=int(x1.size),
        n0=int(x0.size),
        log_floor=math.log(floor),
    )


# --------------------------------------------------------------------------------------
# binned calibrator g(s)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class BinnedCalibrator:
    """P(correct | t) by equal-mass bins: bin j holds edges[j-1] <= t < edges[j]."""

    edges: FloatArray  # interior edges, increasing, length n_bins - 1 (or fewer with ties)
    probs: FloatArray  # length len(edges) + 1, strictly inside (0, 1)

    def predict(self, t: npt.ArrayLike) -> FloatArray:
        j = np.searchsorted(self.edges, np.asarray(t, dtype=np.float64), side="right")
        return np.asarray(self.probs[j], dtype=np.float64)


def fit_binned_calibrator(
    t: FloatArray, correct: BoolArray, *, n_bins: int = 10, smoothing: float = 2.0
) -> BinnedCalibrator:
    """Equal-mass bins of t; per bin (k + a * p0) / (n + a), p0 = (K + 1) / (N + 2)."""
    t = np.asarray(t, dtype=np.float64)
    c = np.asarray(correct, dtype=bool)
    if t.size == 0:
        raise CalibrationError("cannot fit a calibrator on zero responses")
    p0 = _smoothed_base_rate(float(c.sum()), float(c.size))
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
            self.slope * xx + self.intercept - _logit_scalar(self.base_rate), dtype=np.float64
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
    beta = np.array([0.0, _logit_scalar(tm)])
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
    return PlattFit(slope=slope, intercept=intercept, base_rate=_smoothed_base_rate(n1, c.size))


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
        return np.asarray(special.logit(p) - _logit_scalar(self.base_rate), dtype=np.float64)


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
    p0 = _smoothed_base_rate(float(c.sum()), float(c.size))
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


# --------------------------------------------------------------------------------------
# offset search
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class OffsetFit:
    """The chosen offset b and the recorded search."""

    b: float
    candidates: FloatArray
    objective_values: FloatArray
    objective: str
    budgets: tuple[int, ...]
    n_subsets: int
    seed: int


def offset_candidates(kind: str, size: int) -> FloatArray:
    if kind == "linear_wv":
        return np.linspace(-1.0, 1.0, size)
    if kind == "logit_wv":
        return np.linspace(0.0, 1.0, size + 2)[1:-1]
    raise CalibrationError(f"{kind!r} has no offset")


def offset_weights(kind: str, t: FloatArray, b: float, eps: float) -> FloatArray:
    if kind == "linear_wv":
        return np.asarray(t - b, dtype=np.float64)
    if kind == "logit_wv":
        return np.asarray(clipped_logit(t, eps) - _logit_scalar(b), dtype=np.float64)
    raise CalibrationError(f"{kind!r} has no offset")


def _objective_budgets(calib: PairData, params: StrategyParams) -> tuple[int, ...]:
    from core.budget import default_budgets

    n_max = int(calib.sizes().max())
    if params.offset_objective == "budget":
        return (min(params.offset_budget, n_max),)
    raw = params.offset_budgets if params.offset_budgets is not None else default_budgets(n_max)
    kept = tuple(sorted({min(int(b), n_max) for b in raw}))
    return kept


def offset_objective(
    calib: PairData, t: FloatArray, kind: str, params: StrategyParams
) -> tuple[FloatArray, tuple[int, ...], FloatArray]:
    """(candidates, budgets, per-problem objective (C, P)) of the offset search: each
    candidate b's accuracy on every calibration problem, averaged over the objective's
    budgets. Kept per problem so the search can be repeated on bootstrap resamples of
    problems without re-running the vote."""
    from core.budget import VoteInputs, accuracy_curves

    cands = offset_candidates(kind, params.offset_grid_size)
    budgets = _objective_budgets(calib, params)
    # weight = base - shift(b); the logit of t is computed once for all candidates
    base = clipped_logit(t, params.clip_eps) if kind == "logit_wv" else np.asarray(t, np.float64)
    shifts = [float(b) if kind == "linear_wv" else _logit_scalar(float(b)) for b in cands]
    inputs = {f"b{i}": VoteInputs(weight=base - sh) for i, sh in enumerate(shifts)}
    curves = accuracy_curves(
        calib,
        inputs,
        budgets=budgets,
        n_subsets=params.offset_n_subsets,
        seed=params.offset_seed,
    )
    order = [curves.index(f"b{i}") for i in range(cands.size)]
    per_problem = np.asarray(curves.per_problem[order].mean(axis=1), dtype=np.float64)
    return cands, budgets, per_problem


def pick_offset(cands: FloatArray, objective: FloatArray, kind: str) -> FloatArray:
    """Best candidate per column of `objective` (C, R); ties (within 1e-12) go to the
    candidate nearest the neutral offset (0 for linear WV, 0.5 for logit WV)."""
    neutral = 0.0 if kind == "linear_wv" else 0.5
    best = objective.max(axis=0)
    tied = objective >= best[None, :] - 1e-12
    dist = np.where(tied, np.abs(cands - neutral)[:, None], np.inf)
    return np.asarray(cands[np.argmin(dist, axis=0)], dtype=np.float64)


def search_offset(calib: PairData, t: FloatArray, kind: str, params: StrategyParams) -> OffsetFit:
    """Grid search of b on the calibration problems, maximising the recorded objective
    (mean calibration accuracy over the objective's budgets; ties as in `pick_offset`)."""
    cands, budgets, per_problem = offset_objective(calib, t, kind, params)
    obj = per_problem.mean(axis=1)
    return OffsetFit(
        b=float(pick_offset(cands, obj[:, None], kind)[0]),
        candidates=cands,
        objective_values=obj,
        objective=params.offset_objective,
        budgets=tuple(int(b) for b in budgets),
        n_subsets=params.offset_n_subsets,
        seed=params.offset_seed,
    )


# --------------------------------------------------------------------------------------
# fitted weighting functions
# --------------------------------------------------------------------------------------


def _floats(a: npt.ArrayLike) -> list[float]:
    return [float(v) for v in np.asarray(a, dtype=np.float64).reshape(-1)]


def _arr(v: Any) -> FloatArray:
    return np.asarray(v, dtype=np.float64)


@dataclass(frozen=True, eq=False)
class FittedWeights:
    """One fitted weighting function of one strategy (kind), ready to weight responses.

    Components present depend on the kind: `kde` (always for kde_wv; otherwise fitted for
    description when both classes have >= 2 responses), `calibrator` (g for q), `platt`,
    `isotonic`, `offset`. `weight_curve` is the score-dependent part of the weight; the
    per-problem ``log(q(m-1)/(1-q))`` term of KDE WV (and Platt/isotonic with ``use_qm``) is
    added by the vote, per subset.
    """

    kind: str
    transform: str
    params: StrategyParams
    calibration: Mapping[str, Any] = field(default_factory=dict)
    kde: KDEFit | None = None
    calibrator: BinnedCalibrator | None = None
    platt: PlattFit | None = None
    isotonic: IsotonicFit | None = None
    offset: OffsetFit | None = None

    # ---- evaluation ------------------------------------------------------------------

    def transformed(self, pair: PairData) -> FloatArray:
        """The pair's scores after this fit's (resolved) transform, in [0, 1]."""
        return apply_transform(pair.score, self.transform, pair.offsets)

    def weights_from_transformed(self, t: npt.ArrayLike) -> FloatArray:
        """Per-response weight (without the per-problem q/m term) from transformed scores."""
        tt = np.asarray(t, dtype=np.float64)
        eps = self.params.clip_eps
        k = self.kind
        if k == "majority":
            return np.ones_like(tt)
        if k in ("vanilla_wv", "best_of_n"):
            return tt.copy()
        if k in ("linear_wv", "logit_wv"):
            if self.offset is None:
                raise CalibrationError(f"{k} fit has no offset")
            return offset_weights(k, tt, self.offset.b, eps)
        if k == "kde_wv":
            if self.kde is None:
                raise CalibrationError("kde_wv fit has no KDE")
            return self.kde.log_lr(clipped_logit(tt, eps))
        if k == "platt_wv":
            if self.platt is None:
                raise CalibrationError("platt_wv fit has no Platt model")
            return self.platt.log_lr(clipped_logit(tt, eps))
        if k == "isotonic_wv":
            if self.isotonic is None:
                raise CalibrationError("isotonic_wv fit has no isotonic model")
            return self.isotonic.log_lr(clipped_logit(tt, eps))
        raise CalibrationError(
            f"{k!r} weights depend on the labels of the evaluated problems (oracle); "
            "they have no score-only weight curve"
        )

    def response_weights(self, pair: PairData) -> FloatArray:
        """Weight of every response of `pair` (q/m term excluded)."""
        return self.weights_from_transformed(self.transformed(pair))

    def response_g(self, pair: PairData) -> FloatArray:
        """Calibrated P(correct | s) of every response of `pair` (for q)."""
        if self.calibrator is None:
            raise CalibrationError(f"{self.kind} fit has no calibrator")
        return self.calibrator.predict(self.transformed(pair))

    def _grid_to_t(self, grid: npt.ArrayLike, raw: bool) -> FloatArray:
        g = np.asarray(grid, dtype=np.float64)
        if not raw:
            return g
        return apply_transform(g, self.transform)

    def weight_curve(self, grid: npt.ArrayLike, *, raw: bool = False) -> FloatArray:
        """w(score) on a grid of transformed scores in [0, 1] (raw scores if `raw`)."""
        return self.weights_from_transformed(self._grid_to_t(grid, raw))

    def class_densities(
        self, grid: npt.ArrayLike, *, logit_axis: bool = False, raw: bool = False
    ) -> tuple[FloatArray, FloatArray]:
        """Floored class densities (correct, incorrect) from the KDE.

        Default: densities of the transformed score t on a grid of t values (the logit-space
        KDE times the Jacobian 1 / (t (1 - t)), t clipped to [eps, 1 - eps]). With
        `logit_axis`, `grid` is in logit units and the logit-space densities are returned.
        """
        if self.kde is None:
            raise CalibrationError(f"{self.kind} fit has no class densities")
        if logit_axis:
            l1, l0 = self.kde.log_densities(grid)
            return np.exp(l1), np.exp(l0)
        t = np.clip(self._grid_to_t(grid, raw), self.params.clip_eps, 1 - self.params.clip_eps)
        l1, l0 = self.kde.log_densities(special.logit(t))
        jac = 1.0 / (t * (1.0 - t))
        return np.exp(l1) * jac, np.exp(l0) * jac

    # ---- serialisation ---------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "kind": self.kind,
            "transform": self.transform,
            "step_reduction": self.params.step_reduction,
            "params": self.params.to_dict(),
            "calibration": dict(self.calibration),
            "kde": None,
            "calibrator": None,
            "platt": None,
            "isotonic": None,
            "offset": None,
        }
        if self.kde is not None:
            k = self.kde
            d["kde"] = {
                "space": "logit",
                "grid": _floats(k.grid),
                "log_f1": _floats(k.log_f1),
                "log_f0": _floats(k.log_f0),
                "bandwidth1": k.bandwidth1,
                "bandwidth0": k.bandwidth0,
                "n1": k.n1,
                "n0": k.n0,
                "log_floor": k.log_floor,
            }
        if self.calibrator is not None:
            d["calibrator"] = {
                "edges": _floats(self.calibrator.edges),
                "probs": _floats(self.calibrator.probs),
            }
        if self.platt is not None:
            d["platt"] = asdict(self.platt)
        if self.isotonic is not None:
            d["isotonic"] = {
                "x": _floats(self.isotonic.x),
                "p": _floats(self.isotonic.p),
                "base_rate": self.isotonic.base_rate,
            }
        if self.offset is not None:
            o = self.offset
            d["offset"] = {
                "b": o.b,
                "candidates": _floats(o.candidates),
                "objective_values": _floats(o.objective_values),
                "objective": o.objective,
                "budgets": list(o.budgets),
                "n_subsets": o.n_subsets,
                "seed": o.seed,
            }
        return d

    def to_json(self, *, indent: int | None = None) -> str:
        """Versioned JSON; floats are written with round-trip precision."""
        try:
            return json.dumps(self.to_dict(), indent=indent, allow_nan=False)
        except ValueError as e:
            raise CalibrationError(f"fit contains non-finite numbers: {e}") from e

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FittedWeights:
        ver = d.get("schema_version")
        if ver != SCHEMA_VERSION:
            raise CalibrationError(
                f"unsupported weight-function schema_version {ver!r} (expected {SCHEMA_VERSION})"
            )
        try:
            params = StrategyParams.from_dict(d["params"])
            if d.get("step_reduction", params.step_reduction) != params.step_reduction:
                raise CalibrationError("step_reduction disagrees with params.step_reduction")
            kind = str(d["kind"])
            if kind not in ALL_KINDS:
                raise CalibrationError(f"unknown weight kind {kind!r}")
            transform = str(d["transform"])
            parse_transform(transform)  # raises on anything but a resolved transform
            kde = None
            if d.get("kde") is not None:
                k = d["kde"]
                kde = KDEFit(
                    grid=_arr(k["grid"]),
                    log_f1=_arr(k["log_f1"]),
                    log_f0=_arr(k["log_f0"]),
                    bandwidth1=float(k["bandwidth1"]),
                    bandwidth0=float(k["bandwidth0"]),
                    n1=int(k["n1"]),
                    n0=int(k["n0"]),
                    log_floor=float(k["log_floor"]),
                )
                if not (kde.grid.size == kde.log_f1.size == kde.log_f0.size >= 2):
                    raise CalibrationError("KDE grid and log densities differ in length")
            cal = None
            if d.get("calibrator") is not None:
                c = d["calibrator"]
                cal = BinnedCalibrator(edges=_arr(c["edges"]), probs=_arr(c["probs"]))
                if cal.probs.size != cal.edges.size + 1:
                    raise CalibrationError("calibrator needs len(probs) == len(edges) + 1")
            platt = None
            if d.get("platt") is not None:
                p = d["platt"]
                platt = PlattFit(
                    slope=float(p["slope"]),
                    intercept=float(p["intercept"]),
                    base_rate=float(p["base_rate"]),
                )
            iso = None
            if d.get("isotonic") is not None:
                i = d["isotonic"]
                iso = IsotonicFit(x=_arr(i["x"]), p=_arr(i["p"]), base_rate=float(i["base_rate"]))
            off = None
            if d.get("offset") is not None:
                o = d["offset"]
                off = OffsetFit(
                    b=float(o["b"]),
                    candidates=_arr(o["candidates"]),
                    objective_values=_arr(o["objective_values"]),
                    objective=str(o["objective"]),
                    budgets=tuple(int(b) for b in o["budgets"]),
                    n_subsets=int(o["n_subsets"]),
                    seed=int(o["seed"]),
                )
        except (KeyError, TypeError, ValueError) as e:
            raise CalibrationError(f"malformed weight-function JSON: {e!r}") from e
        return cls(
            kind=kind,
            transform=transform,
            params=params,
            calibration=dict(d.get("calibration") or {}),
            kde=kde,
            calibrator=cal,
            platt=platt,
            isotonic=iso,
            offset=off,
        )

    @classmethod
    def from_json(cls, text: str) -> FittedWeights:
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise CalibrationError(f"not JSON: {e}") from e
        if not isinstance(d, dict):
            raise CalibrationError("weight-function JSON must be an object")
        return cls.from_dict(d)


_NEEDS_LABELS: Final = ("linear_wv", "logit_wv", "kde_wv", "platt_wv", "isotonic_wv")


def fit_weights(calib: PairData, kind: str, params: StrategyParams | None = None) -> FittedWeights:
    """Fit the weighting function of `kind` on the calibration pair `calib`.

    Label-free kinds (majority, best_of_n, vanilla_wv) and oracle kinds only resolve the
    transform (and, where possible, fit the descriptive KDE and calibrator).
    """
    params = params or StrategyParams()
    if kind not in ALL_KINDS:
        raise CalibrationError(f"unknown weight kind {kind!r}; known: {ALL_KINDS}")
    if calib.n_responses == 0:
        raise CalibrationError("calibration pair has no responses")
    if not np.all(np.isfinite(calib.score)):
        raise CalibrationError("calibration scores must be finite (NaN or inf found)")
    transform = resolve_transform(params.transform, calib.score)
    t = apply_transform(calib.score, transform, calib.offsets)
    x = clipped_logit(t, params.clip_eps)
    c = np.asarray(calib.correct, dtype=bool)
    n1 = int(c.sum())
    info: dict[str, Any] = {
        "dataset_id": calib.dataset_id,
        "llm": calib.llm,
        "verifier": calib.verifier,
        "n_problems": calib.n_problems,
        "n_responses": calib.n_responses,
        "n_correct": n1,
    }
    kde: KDEFit | None = None
    if kind == "kde_wv" or (n1 >= 2 and c.size - n1 >= 2):
        kde = fit_kde(
            x,
            c,
            bandwidth=params.bandwidth,
            bandwidth_mode=params.bandwidth_mode,
            n_grid=params.n_grid,
            density_floor=params.density_floor,
        )
    calibrator = fit_binned_calibrator(t, c, n_bins=params.n_bins, smoothing=params.bin_smoothing)
    platt = fit_platt(x, c) if kind == "platt_wv" else None
    iso = fit_isotonic(x, c, smoothing=params.bin_smoothing) if kind == "isotonic_wv" else None
    offset = search_offset(calib, t, kind, params) if kind in ("linear_wv", "logit_wv") else None
    return FittedWeights(
        kind=kind,
        transform=transform,
        params=params,
        calibration=info,
        kde=kde,
        calibrator=calibrator,
        platt=platt,
        isotonic=iso,
        offset=offset,
    )


# --------------------------------------------------------------------------------------
# oracle weights (use the labels of the evaluated problems)
# --------------------------------------------------------------------------------------


def oracle_weights(
    pair: PairData, transform: str, params: StrategyParams
) -> tuple[FloatArray, FloatArray]:
    """ORACLE: Theorem 3.2 weights from the evaluated problems' own labels.

    log f1/f0 from a KDE fitted on the evaluated pair itself (all its problems, with their
    labels), and g = each problem's true fraction of correct responses (constant within the
    problem), so q is the true per-problem rate. Returns (weight, g).

    Per-problem densities (as first sketched in ARCHITECTURE.md) were tried and rejected:
    with 16 responses per problem, leave-one-out per-problem KDEs are so noisy that the
    "oracle" fell below calibrated KDE WV on the simulator, while pooled in-sample densities
    with true q reach the simulator's Bayes-optimal accuracy.
    """
    tr = transform if is_resolved_transform(transform) else resolve_transform(transform, pair.score)
    t = apply_transform(pair.score, tr, pair.offsets)
    x = clipped_logit(t, params.clip_eps)
    c = np.asarray(pair.correct, dtype=bool)
    prob = problem_index(pair)
    sizes = pair.sizes()
    n_corr = np.bincount(prob, weights=c.astype(np.float64), minlength=pair.n_problems)
    g = np.asarray((n_corr / np.maximum(sizes, 1))[prob], dtype=np.float64)
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
        # one class (nearly) absent from the whole pair: scores carry no usable information
        return np.zeros_like(x), g
    return kde.log_lr(x), g


# --------------------------------------------------------------------------------------
# cross-fitting, transfer, bootstrap
# --------------------------------------------------------------------------------------

FitFn = Callable[["Strategy", PairData, StrategyParams], FittedWeights]


def _default_fit(strategy: Strategy, calib: PairData, params: StrategyParams) -> FittedWeights:
    return strategy.fit(calib, params)


def auto_once(params: StrategyParams, pair: PairData) -> StrategyParams:
    """Resolve "auto" to a transform name once for the whole pair (scores only, no
    labels), so every fold uses the same kind of transform."""
    if params.transform != "auto":
        return params
    return replace(params, transform=auto_transform_name(pair.score))


def kfold_problems(n_problems: int, k: int, seed: int) -> list[IntArray]:
    """Random partition of problem indices into k folds of near-equal size (sorted)."""
    if k < 2:
        raise CalibrationError(f"cross-fitting needs k >= 2, got {k}")
    if n_problems < k:
        raise CalibrationError(f"{n_problems} problems cannot be split into {k} folds")
    perm = np.random.default_rng(seed).permutation(n_problems)
    return [np.sort(f).astype(np.int64) for f in np.array_split(perm, k)]


@dataclass(frozen=True, eq=False)
class FoldFit:
    """One fold: fits on `train` problems, used for the `test` problems."""

    train: IntArray
    test: IntArray
    fitted: Mapping[str, FittedWeights]


@dataclass(frozen=True, eq=False)
class CrossFitResult:
    """Held-out evaluation of strategies, merged over folds into one CurveSet.

    `inputs` holds the stitched vote inputs over the whole pair: the rows of each problem
    come from the fold in which that problem was held out.
    """

    curves: CurveSet
    folds: tuple[FoldFit, ...]
    inputs: Mapping[str, VoteInputs]
    params: StrategyParams
    k: int
    seed: int


@dataclass(frozen=True, eq=False)
class TransferResult:
    """Weights fitted on one pair (calibration) and evaluated on another."""

    curves: CurveSet
    fitted: Mapping[str, FittedWeights]
    inputs: Mapping[str, VoteInputs]
    params: StrategyParams


def _resolve(strategies: Sequence[str | Strategy] | str | Strategy) -> list[Strategy]:
    from core.strategies import get_strategy

    if isinstance(strategies, str) or not isinstance(strategies, Sequence):
        strategies = [strategies]
    out = [get_strategy(s) if isinstance(s, str) else s for s in strategies]
    names = [s.name for s in out]
    if len(set(names)) != len(names):
        raise CalibrationError(f"duplicate strategies: {names}")
    return out


def stitch_inputs(pair: PairData, parts: Sequence[tuple[IntArray, VoteInputs]]) -> VoteInputs:
    """Merge per-fold vote inputs (each over its fold's problems, in order) into one."""
    from core.budget import VoteInputs

    n = pair.n_responses
    weight = np.full(n, np.nan)
    has_g = parts[0][1].g is not None
    g = np.full(n, np.nan) if has_g else None
    best_of = parts[0][1].best_of
    for problems, vi in parts:
        rows = response_rows(pair, problems)
        if (vi.g is not None) != has_g or vi.best_of != best_of:
            raise CalibrationError("folds disagree on the vote type")
        weight[rows] = vi.weight
        if g is not None and vi.g is not None:
            g[rows] = vi.g
    if np.isnan(weight).any():
        raise CalibrationError("some problems were not covered by any fold")
    return VoteInputs(weight=weight, g=g, best_of=best_of)


def _evaluate(
    pair: PairData,
    strategies: Sequence[Strategy],
    fitted: Mapping[str, FittedWeights] | None,
    inputs: Mapping[str, VoteInputs],
    budgets: Sequence[int] | None,
    n_subsets: int,
    subset_seed: int,
    subsets: Subsets | None,
) -> CurveSet:
    from core.budget import accuracy_curves

    curves = accuracy_curves(
        pair,
        inputs,
        budgets=budgets,
        n_subsets=n_subsets,
        seed=subset_seed,
        subsets=subsets,
    )
    if curves.order == "sample":
        # exact formulas are expectations over random subsets; in sampling order the
        # kernel's own (deterministic) result is the answer
        return curves
    # strategies with exact order-statistic formulas replace their sampled rows
    per_problem = np.array(curves.per_problem, dtype=np.float64, copy=True)
    names = list(curves.strategies)
    replaced: set[str] = set()
    for s in strategies:
        fw = fitted[s.name] if fitted is not None else None
        exact = s.exact_accuracy(fw, pair, tuple(int(b) for b in curves.budgets))
        if exact is not None:
            per_problem[names.index(s.name)] = exact
            replaced.add(s.name)
    if replaced:
        flags = tuple(e or nm in replaced for nm, e in zip(names, curves.exact, strict=True))
        per_problem.setflags(write=False)
        curves = replace(curves, per_problem=per_problem, exact=flags)
    return curves


def cross_fit_many(
    pair: PairData,
    strategies: Sequence[str | Strategy],
    params: StrategyParams | None = None,
    k: int = 5,
    seed: int = 0,
    *,
    budgets: Sequence[int] | None = None,
    n_subsets: int = 200,
    subset_seed: int = 0,
    subsets: Subsets | None = None,
    fit_fn: FitFn | None = None,
) -> CrossFitResult:
    """K-fold cross-fitting over problems for several strategies at once.

    For each fold, every strategy is fitted on the other folds' problems (through `fit_fn`,
    default ``strategy.fit``) and weights the fold's own problems; the stitched inputs are
    evaluated in one `accuracy_curves` call over all problems, with common subsets for every
    strategy. Oracle strategies use the evaluated problems' own labels by design.
    """
    params = auto_once(params or StrategyParams(), pair)
    strats = _resolve(strategies)
    fit = fit_fn or _default_fit
    folds = kfold_problems(pair.n_problems, k, seed)
    all_idx = np.arange(pair.n_problems, dtype=np.int64)
    fold_fits: list[FoldFit] = []
    parts: dict[str, list[tuple[IntArray, VoteInputs]]] = {s.name: [] for s in strats}
    for test in folds:
        train = np.setdiff1d(all_idx, test)
        calib = select_problems(pair, train)
        held = select_problems(pair, test)
        fitted: dict[str, FittedWeights] = {}
        for s in strats:
            fw = fit(s, calib, params)
            fitted[s.name] = fw
            parts[s.name].append((test, s.vote_inputs(fw, held)))
        fold_fits.append(FoldFit(train=train, test=test, fitted=fitted))
    inputs = {name: stitch_inputs(pair, p) for name, p in parts.items()}
    curves = _evaluate(pair, strats, None, inputs, budgets, n_subsets, subset_seed, subsets)
    return CrossFitResult(
        curves=curves, folds=tuple(fold_fits), inputs=inputs, params=params, k=k, seed=seed
    )


def cross_fit(
    pair: PairData,
    strategy: str | Strategy,
    params: StrategyParams | None = None,
    k: int = 5,
    seed: int = 0,
    *,
    budgets: Sequence[int] | None = None,
    n_subsets: int = 200,
    subset_seed: int = 0,
    subsets: Subsets | None = None,
    fit_fn: FitFn | None = None,
) -> CrossFitResult:
    """`cross_fit_many` for one strategy."""
    return cross_fit_many(
        pair,
        [strategy],
        params,
        k,
        seed,
        budgets=budgets,
        n_subsets=n_subsets,
        subset_seed=subset_seed,
        subsets=subsets,
        fit_fn=fit_fn,
    )


def calibrate_transfer(
    calib: PairData,
    eval_pair: PairData,
    strategies: Sequence[str | Strategy],
    params: StrategyParams | None = None,
    *,
    budgets: Sequence[int] | None = None,
    n_subsets: int = 200,
    subset_seed: int = 0,
    subsets: Subsets | None = None,
    fit_fn: FitFn | None = None,
) -> TransferResult:
    """Fit on `calib` (e.g. another dataset or LLM), evaluate on every problem of `eval_pair`."""
    params = auto_once(params or StrategyParams(), calib)
    shared = set(calib.problem_ids) & set(eval_pair.problem_ids)
    if calib.dataset_id == eval_pair.dataset_id and shared:
        raise CalibrationError(
            f"calibration and evaluation pairs share {len(shared)} problems of one dataset: "
            "their labels would leak into the weights; use cross_fit_many, or "
            "core.transfer.transfer_inputs (which folds the shared problems)"
        )
    strats = _resolve(strategies)
    fit = fit_fn or _default_fit
    fitted = {s.name: fit(s, calib, params) for s in strats}
    inputs = {s.name: s.vote_inputs(fitted[s.name], eval_pair) for s in strats}
    curves = _evaluate(eval_pair, strats, fitted, inputs, budgets, n_subsets, subset_seed, subsets)
    return TransferResult(curves=curves, fitted=fitted, inputs=inputs, params=params)


@dataclass(frozen=True, eq=False)
class WeightBands:
    """Pointwise bootstrap percentile band of a weight curve on a score grid."""

    kind: str
    transform: str
    grid: FloatArray
    center: FloatArray
    lower: FloatArray
    upper: FloatArray
    level: float
    n_boot: int
    n_failed: int
    samples: FloatArray = field(repr=False)  # (n_ok, len(grid))


def bootstrap_weight_bands(
    pair: PairData,
    strategy: str | Strategy,
    params: StrategyParams | None = None,
    grid: npt.ArrayLike | None = None,
    *,
    n_boot: int = 100,
    seed: int = 0,
    level: float = 0.9,
    fit_fn: FitFn | None = None,
) -> WeightBands:
    """Resample calibration problems with replacement, refit, and take pointwise percentiles.

    `grid` is in transformed-score units (default 201 points over [0.005, 0.995]); `center`
    is the fit on the full pair. Resamples whose fit fails (e.g. a class vanished) are
    skipped and counted in `n_failed`.
    """
    params = auto_once(params or StrategyParams(), pair)
    (strat,) = _resolve([strategy])
    fit = fit_fn or _default_fit
    if not 0.0 < level < 1.0:
        raise CalibrationError(f"level must be in (0, 1), got {level}")
    g = np.linspace(0.005, 0.995, 201) if grid is None else np.asarray(grid, dtype=np.float64)
    full = fit(strat, pair, params)
    center = full.weight_curve(g)
    rng = np.random.default_rng(seed)
    rows: list[FloatArray] = []
    failed = 0
    for _ in range(n_boot):
        idx = rng.integers(0, pair.n_problems, size=pair.n_problems)
        try:
            fw = fit(strat, select_problems(pair, idx), params)
        except CalibrationError:
            failed += 1
            continue
        rows.append(fw.weight_curve(g))
    if not rows:
        raise CalibrationError("every bootstrap refit failed")
    samples = np.vstack(rows)
    alpha = (1.0 - level) / 2.0
    lower, upper = np.quantile(samples, [alpha, 1.0 - alpha], axis=0)
    return WeightBands(
        kind=full.kind,
        transform=full.transform,
        grid=g,
        center=center,
        lower=np.asarray(lower, dtype=np.float64),
        upper=np.asarray(upper, dtype=np.float64),
        level=level,
        n_boot=n_boot,
        n_failed=failed,
        samples=samples,
    )


__all__ = [
    "ALL_KINDS",
    "ORACLE_KINDS",
    "SCHEMA_VERSION",
    "SCORE_WEIGHT_KINDS",
    "TRANSFORMS",
    "BinnedCalibrator",
    "CalibrationError",
    "CrossFitResult",
    "FitFn",
    "FittedWeights",
    "FoldFit",
    "IsotonicFit",
    "KDEFit",
    "OffsetFit",
    "PlattFit",
    "StrategyParams",
    "TransferResult",
    "WeightBands",
    "apply_transform",
    "bootstrap_weight_bands",
    "calibrate_transfer",
    "clipped_logit",
    "cross_fit",
    "cross_fit_many",
    "fit_binned_calibrator",
    "fit_isotonic",
    "fit_kde",
    "fit_platt",
    "fit_weights",
    "grid_kde_density",
    "kde_bandwidth",
    "kfold_problems",
    "offset_objective",
    "oracle_weights",
    "pava",
    "pick_offset",
    "resolve_transform",
    "search_offset",
    "select_problems",
    "stitch_inputs",
    "within_problem_rank",
]
