"""Score transforms: every signal is mapped to t in [0, 1] before weighting.

``identity`` clips to [0, 1]; ``sigmoid`` maps reward-model logits; ``rank`` is the score's
mid-rank among the calibration scores (their empirical CDF at `RANK_KNOTS` quantiles);
``zscore`` / ``log-zscore`` are sigmoid((v - mean) / sd) of the (log1p) score with mean and
sd fitted on calibration scores. ``auto`` resolves on the calibration scores: identity when
they lie in [0, 1], log-zscore for non-negative counts (e.g. token lengths), and ``rank``
otherwise: a sigmoid saturates wide-range reward-model scores (-1102 to 396 for one
RewardMATH model) into ties, while the rank keeps their order. A *resolved* transform is a
string that carries its fitted parameters ("rank:<knots>|<levels>", "zscore:<mean>:<sd>")
and is recorded with every fit; one without parameters ("identity", "sigmoid") does not
depend on which problems it was resolved on.

Orientation: a signal where lower is better (response length) is read as ``1 - t``, so every
strategy sees "higher t = more likely correct". `estimate_orientation` decides it on
calibration problems when it was not declared at import.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Final

import numpy as np
import numpy.typing as npt
from scipy import special

from core.methods.params import CalibrationError, StrategyParams
from core.types import TRANSFORMS, FloatArray, PairData

#: number of quantile knots of the resolved "rank" transform
RANK_KNOTS: Final = 129
#: transforms whose resolved form carries the centre and scale fitted on calibration scores,
#: written "zscore:<mean>:<sd>" / "log-zscore:<mean>:<sd>" (exact float reprs).
PARAMETRIC_TRANSFORMS: Final = ("zscore", "log-zscore")
#: "auto" treats non-negative signals above this as counts (e.g. token lengths).
COUNT_SIGNAL_MIN_MAX: Final = 50.0


def resolve_transform(transform: str, score: npt.ArrayLike) -> str:
    """Resolve "auto" and fit the parameters of parametric transforms on `score`.

    "auto": identity if every score lies in [0, 1]; log-zscore for non-negative signals
    that reach above COUNT_SIGNAL_MIN_MAX (counts such as token lengths); rank otherwise
    (reward-model scores of any range: the order is kept, nothing saturates). "zscore" /
    "log-zscore" resolve to "zscore:<mean>:<sd>" / "log-zscore:<mean>:<sd>" of the
    (log1p) scores given here, i.e. of the calibration problems only:
    t = sigmoid((v - mean) / sd).
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
            transform = "rank"
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
    (linear between distinct scores; at most RANK_KNOTS knots, at quantiles). Unlike a
    rank within the problem, it does not depend on the other responses of the problem,
    which a budget-N subset has not seen."""
    if s.size == 0:
        return "rank:0.0|0.5"
    srt = np.sort(s)
    uniq = np.unique(srt)
    # mid-rank of every distinct score, linear in between (the ECDF made continuous)
    mid = (np.searchsorted(srt, uniq, side="left") + np.searchsorted(srt, uniq, side="right")) / (
        2.0 * srt.size
    )
    if uniq.size <= RANK_KNOTS:
        knots = uniq
    else:
        knots = np.unique(np.quantile(srt, np.linspace(0.0, 1.0, RANK_KNOTS)))
    levels = np.interp(knots, uniq, mid)
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


def apply_transform(score: npt.ArrayLike, transform: str) -> FloatArray:
    """Transformed score in [0, 1] of a resolved transform (identity clips to [0, 1])."""
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


def fold_independent(transform: str) -> bool:
    """True when a resolved transform has no fitted parameters, so it maps a score the same
    way whichever calibration problems it was resolved on."""
    return ":" not in transform


def auto_once(params: StrategyParams, pair: PairData) -> StrategyParams:
    """Resolve "auto" to a transform name once for the whole pair (scores only, no
    labels), so every fold uses the same kind of transform."""
    if params.transform != "auto":
        return params
    name = auto_transform_name(pair.score)
    return replace(params, transform=name)  # type: ignore[arg-type]


def smoothed_base_rate(n_correct: float, n: float) -> float:
    return (n_correct + 1.0) / (n + 2.0)


def logit_scalar(p: float) -> float:
    return math.log(p) - math.log1p(-p)


def inverse_transform(t: npt.ArrayLike, transform: str) -> FloatArray:
    """The raw score a transformed score t stands for (for a raw-score axis). Inside the
    calibration range for "rank"; identity maps to t itself."""
    tt = np.asarray(t, dtype=np.float64)
    if transform in ("identity",):
        return tt.copy()
    if transform == "sigmoid":
        return np.asarray(special.logit(tt), dtype=np.float64)
    if transform.startswith("rank:"):
        knots, levels = _parse_rank(transform)
        if knots.size == 1:
            return np.full(tt.shape, float(knots[0]))
        return np.asarray(np.interp(tt, levels, knots), dtype=np.float64)
    name, mean, sd = parse_transform(transform)
    v = mean + sd * np.asarray(special.logit(tt), dtype=np.float64)
    return np.asarray(np.expm1(v) if name == "log-zscore" else v, dtype=np.float64)


#: Flip a signal only when its AUC is below 0.5 by more than this and by two standard errors.
ORIENTATION_MARGIN: Final = 0.02


def auc(score: npt.ArrayLike, correct: npt.ArrayLike) -> tuple[float, float]:
    """(AUC, its standard error): P(score of a correct response > score of an incorrect
    one), ties counted half (Mann-Whitney), with Hanley and McNeil's standard error. NaN
    when a class is empty."""
    s = np.asarray(score, dtype=np.float64)
    c = np.asarray(correct, dtype=bool)
    n1, n0 = int(c.sum()), int(c.size - c.sum())
    if n1 == 0 or n0 == 0:
        return math.nan, math.nan
    order = np.argsort(s, kind="mergesort")
    srt = s[order]
    # average ranks (1-based) of tied values
    first = np.r_[True, srt[1:] != srt[:-1]]
    group = np.cumsum(first) - 1
    starts = np.flatnonzero(first)
    ends = np.r_[starts[1:], srt.size]
    avg = (starts + ends + 1) / 2.0
    ranks = np.empty(s.size, dtype=np.float64)
    ranks[order] = avg[group]
    a = (float(ranks[c].sum()) - n1 * (n1 + 1) / 2.0) / (n1 * n0)
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    var = (a * (1 - a) + (n1 - 1) * (q1 - a * a) + (n0 - 1) * (q2 - a * a)) / (n1 * n0)
    return a, math.sqrt(max(var, 0.0))


def estimate_orientation(score: npt.ArrayLike, correct: npt.ArrayLike) -> str:
    """ "lower" when correct responses score clearly lower than incorrect ones (AUC below
    0.5 by more than `ORIENTATION_MARGIN` and two standard errors), else "higher"."""
    a, se = auc(score, correct)
    if math.isnan(a):
        return "higher"
    return "lower" if a < 0.5 - max(ORIENTATION_MARGIN, 2.0 * se) else "higher"


def resolve_orientation(orientation: str, calib: PairData) -> str:
    """The direction to use on these calibration problems: `orientation` when set, else as
    declared at import (`calib.orientation`), else estimated on their labels."""
    if orientation != "auto":
        return orientation
    if calib.orientation != "auto":
        return calib.orientation
    return estimate_orientation(calib.score, calib.correct)


def oriented(t: FloatArray, orientation: str) -> FloatArray:
    """Transformed scores as every strategy reads them: higher = more likely correct."""
    return np.asarray(1.0 - t, dtype=np.float64) if orientation == "lower" else t
