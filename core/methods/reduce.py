"""Step-score reductions: turn a PRM's per-step scores into one score per response.

Every reduction is vectorised over a flat array of step scores plus CSR offsets
(``values[offsets[i]:offsets[i + 1]]`` are the steps of response ``i``), so reducing a
whole pair costs a handful of numpy calls instead of one Python call per response.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from core.types import STEP_REDUCTIONS, FloatArray, IntArray, TTSLabError


class ReductionError(TTSLabError, ValueError):
    """Raised for an unknown reduction or malformed step scores."""


def _check_how(how: str) -> None:
    if how not in STEP_REDUCTIONS:
        raise ReductionError(
            f"unknown step reduction {how!r}; valid reductions are: {', '.join(STEP_REDUCTIONS)}"
        )


def _flatten(step_scores: Sequence[Sequence[float]]) -> tuple[FloatArray, IntArray]:
    lengths = np.fromiter((len(s) for s in step_scores), dtype=np.int64, count=len(step_scores))
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    values = np.fromiter(
        (float(x) for s in step_scores for x in s), dtype=np.float64, count=int(offsets[-1])
    )
    return values, offsets


def reduce_steps(
    step_scores: Sequence[Sequence[float]] | npt.ArrayLike,
    how: str,
    offsets: Sequence[int] | IntArray | None = None,
) -> FloatArray:
    """Reduce each response's step scores to one score.

    Args:
        step_scores: either one sequence of step scores per response, or (when ``offsets``
            is given) the flat float array of all step scores.
        how: one of :data:`core.types.STEP_REDUCTIONS` ("min", "last", "prod", "mean", "max").
        offsets: CSR offsets of length R + 1 (``offsets[0] == 0``, non-decreasing,
            ``offsets[-1] == len(values)``) for the flat form.

    Returns:
        float64 array with one reduced score per response.

    Raises:
        ReductionError (a ValueError): unknown ``how``, a response with no steps,
            non-finite step scores, or malformed offsets.
    """
    _check_how(how)
    if offsets is None:
        values, offs = _flatten(step_scores)  # type: ignore[arg-type]
    else:
        values = np.ascontiguousarray(step_scores, dtype=np.float64)
        offs = np.ascontiguousarray(offsets, dtype=np.int64)
        if values.ndim != 1 or offs.ndim != 1 or len(offs) == 0:
            raise ReductionError("flat form needs 1-D values and 1-D offsets of length R + 1")
        if offs[0] != 0 or offs[-1] != len(values) or np.any(np.diff(offs) < 0):
            raise ReductionError(
                "offsets must start at 0, be non-decreasing and end at len(values) "
                f"(got first={int(offs[0])}, last={int(offs[-1])}, len(values)={len(values)})"
            )
    lengths = np.diff(offs)
    n = len(lengths)
    if n == 0:
        return np.zeros(0, dtype=np.float64)
    empty = np.flatnonzero(lengths == 0)
    if len(empty):
        raise ReductionError(
            f"{len(empty)} response(s) have no step scores (first at position {int(empty[0])}); "
            f"cannot apply the {how!r} reduction to an empty list"
        )
    if not np.all(np.isfinite(values)):
        bad = int(np.flatnonzero(~np.isfinite(values))[0])
        raise ReductionError(f"step scores must be finite (non-finite value at flat index {bad})")
    starts = offs[:-1]
    if how == "min":
        return np.asarray(np.minimum.reduceat(values, starts), dtype=np.float64)
    if how == "max":
        return np.asarray(np.maximum.reduceat(values, starts), dtype=np.float64)
    if how == "prod":
        return np.asarray(np.multiply.reduceat(values, starts), dtype=np.float64)
    if how == "mean":
        return np.asarray(np.add.reduceat(values, starts) / lengths, dtype=np.float64)
    # "last"
    return np.asarray(values[offs[1:] - 1], dtype=np.float64)
