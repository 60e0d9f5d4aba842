"""What the weight pages show: one pair's weighting function with its band and the score
densities under it, or every pair's weight curve (small multiples)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from core.evaluation.config import EvalConfig, parse_calibration
from core.evaluation.weightfits import WEIGHT_GRID, score_densities, weight_curve, weight_fit
from core.info.common import (
    MIN_CLASS_RESPONSES,
    Issue,
    ViewError,
    check_pair,
    kept_per_content,
    negative_intervals,
)
from core.methods.fitted import FittedWeights
from core.methods.params import CalibrationError, StrategyParams
from core.methods.registry import get_strategy
from core.store import DatasetInfo, Store
from core.types import FloatArray, TTSLabError

ProgressFn = Callable[[str, int, int], None]


@dataclass(frozen=True, eq=False)
class WeightView:
    """One pair's weighting function on the transformed-score grid, with what explains it.

    Attributes:
        grid: transformed scores t in (0, 1) (`WEIGHT_GRID`).
        w: the curve shown (the fitted one, or with the offset b chosen by hand).
        w_fitted: the curve fitted on every problem of the pair.
        band_low, band_high: pointwise bootstrap percentile band of the fitted curve at
            `level` (problems resampled with replacement and the weights refitted).
        f1, f0: densities of t for correct / incorrect responses (the logit-space KDE
            times the Jacobian); None when a class has fewer than 2 responses.
        hist_*: where the scores lie (counts per bin of t, and of logit t).
        b, b_fitted, b_low, b_high: offset shown, fitted offset and its bootstrap interval
            (offset strategies only, else None).
        negative: intervals of t where the shown weight is negative.
        share_negative: fraction of the pair's responses whose shown weight is negative.
        orientation: the signal's direction the fit used ("higher" or "lower"; t is
            oriented so that higher t is better either way).
        raw_grid: the raw score each grid point stands for (tokens, raw reward), for a
            raw-score axis; decreasing when lower raw scores are better.
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
    issues: tuple[Issue, ...] = ()
    t_sorted: FloatArray = field(default_factory=lambda: np.zeros(0), repr=False)
    orientation: str = "higher"
    raw_grid: FloatArray = field(default_factory=lambda: WEIGHT_GRID.copy(), repr=False)
    calibration: str = "labels"
    calibration_note: str = ""
    overlay: FloatArray | None = field(default=None, repr=False)
    overlay_label: str = ""
    #: offset strategies: the search's objective, the calibration accuracy of every
    #: candidate b (averaged over `offset_budgets`), with a pointwise bootstrap band
    offset_candidates: FloatArray = field(default_factory=lambda: np.zeros(0), repr=False)
    offset_accuracy: FloatArray = field(default_factory=lambda: np.zeros(0), repr=False)
    offset_low: FloatArray = field(default_factory=lambda: np.zeros(0), repr=False)
    offset_high: FloatArray = field(default_factory=lambda: np.zeros(0), repr=False)
    offset_budgets: tuple[int, ...] = ()

    @property
    def raw_differs(self) -> bool:
        """Whether the raw score differs from the transformed one (a raw axis says more)."""
        return self.orientation == "lower" or self.transform.split(":", 1)[0] != "identity"

    def raw_at(self, t: float) -> float:
        """The raw score of transformed (oriented) score t."""
        return float(np.interp(t, self.grid, self.raw_grid))

    @property
    def has_negative(self) -> bool:
        return bool(np.any(self.w < 0))

    @property
    def offset_formula(self) -> str | None:
        space = get_strategy(self.kind).offset
        return space.formula if space is not None else None

    def with_offset(self, b: float | None) -> WeightView:
        """The same view with the offset b set by hand (None: the fitted b). Only the curve
        shown, its negative region and share change; the band stays the fitted curve's."""
        strategy = get_strategy(self.kind)
        if b is None:
            if not self.manual_offset:
                return self
            return replace(
                self,
                w=self.w_fitted,
                b=self.b_fitted,
                manual_offset=False,
                share_negative=self._share_negative_at(self.b_fitted),
                negative=negative_intervals(self.grid, self.w_fitted),
            )
        space = strategy.offset
        if space is None:
            raise ViewError(f"{self.label} has no offset b")
        lo, hi = space.slider_range()
        b = float(b)
        if not lo <= b <= hi:
            raise ViewError(f"offset b of {self.label} must lie in [{lo}, {hi}], got {b}")
        w = self._weights_at(self.grid, b)
        return replace(
            self,
            w=w,
            b=b,
            manual_offset=True,
            share_negative=self._share_negative_at(b),
            negative=negative_intervals(self.grid, w),
        )

    def _weights_at(self, t: FloatArray, b: float) -> FloatArray:
        strategy = get_strategy(self.kind)
        assert strategy.offset is not None
        stub = FittedWeights(self.kind, self.transform, StrategyParams(clip_eps=self.clip_eps))
        return np.asarray(
            strategy.base_weights(stub, t) - strategy.offset.shift(b), dtype=np.float64
        )

    def _share_negative_at(self, b: float | None) -> float:
        if b is None or self.t_sorted.size == 0:
            return self.share_negative
        return float(np.mean(self._weights_at(self.t_sorted, b) < 0))


@kept_per_content
def weight_view(
    store: Store,
    info: DatasetInfo,
    llm: str,
    verifier: str,
    kind: str,
    config: EvalConfig,
    *,
    offset: float | None = None,
    overlay: str | None = None,
    progress: ProgressFn | None = None,
) -> WeightView:
    """The weighting function of `kind` for one pair, fitted on all its problems, with a
    bootstrap band at ``config.level`` from ``config.weight_boot`` refits. `offset` (offset
    strategies only) replaces the fitted b in the curve shown. `overlay` (a calibration
    mode, e.g. "none") adds the curve fitted with labels obtained that way, to compare a
    label-free fit with the labelled one."""
    check_pair(info, llm, verifier)
    strategy = get_strategy(kind)
    if offset is not None and strategy.offset is None:
        raise ViewError(f"{strategy.label} has no offset b")
    try:
        fit, hit1 = weight_fit(store, info, llm, verifier, kind, config, progress=progress)
        dens, hit2 = score_densities(store, info, llm, verifier, config)
    except (CalibrationError, TTSLabError) as exc:
        if isinstance(exc, ViewError):
            raise
        raise ViewError(
            f"cannot fit {strategy.label} weights for ({llm}, {verifier}): {exc}"
        ) from exc
    over: FloatArray | None = None
    if overlay is not None and overlay != config.calibration:
        try:
            curve, _ = weight_curve(
                store, info, llm, verifier, kind, replace(config, calibration=overlay)
            )
            over = np.asarray(curve["w"], dtype=np.float64)
        except (CalibrationError, TTSLabError) as exc:
            issues_over = str(exc)
        else:
            issues_over = ""
    else:
        issues_over = ""
    if progress is not None:
        progress("done", 1, 1)
    w_fitted = np.asarray(fit["w_fitted"], dtype=np.float64)
    has_offset = strategy.offset is not None
    b_fitted = float(fit["b_fitted"]) if has_offset else None
    issues: list[Issue] = []
    if bool(fit["uses_q"]):
        issues.append(Issue("q_term", strategy=kind))
    if int(fit["n_widened"]):
        issues.append(Issue("band_widened", strategy=kind, value=float(fit["n_widened"])))
    if int(fit["n_failed"]):
        issues.append(Issue("band_failed", strategy=kind, value=float(fit["n_failed"])))
    if fit.get("calibration_note"):
        issues.append(Issue("label_free", strategy=kind, detail=str(fit["calibration_note"])))
    if issues_over:
        issues.append(Issue("overlay_failed", strategy=kind, detail=issues_over))
    n_pos = int(fit["n_correct"])
    n_neg = int(fit["n_responses"]) - n_pos
    if min(n_pos, n_neg) < MIN_CLASS_RESPONSES:
        issues.append(
            Issue(
                "few_responses",
                f"{llm} × {verifier}",
                strategy=kind,
                detail=f"{n_pos}/{n_neg}",
                value=float(min(n_pos, n_neg)),
            )
        )
    has_d = bool(dens["has_density"])
    view = WeightView(
        dataset=info.name,
        simulated=info.simulated,
        llm=llm,
        verifier=verifier,
        kind=kind,
        label=strategy.label,
        transform=str(fit["transform"]),
        reduction=config.reduction,
        grid=WEIGHT_GRID,
        w=w_fitted,
        w_fitted=w_fitted,
        band_low=np.asarray(fit["band_low"], dtype=np.float64),
        band_high=np.asarray(fit["band_high"], dtype=np.float64),
        level=config.level,
        n_boot=config.weight_boot,
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
        b_low=float(fit["b_low"]) if has_offset else None,
        b_high=float(fit["b_high"]) if has_offset else None,
        manual_offset=False,
        negative=negative_intervals(WEIGHT_GRID, w_fitted),
        share_negative=float(fit["share_negative"]),
        n_problems=int(fit["n_problems"]),
        n_responses=int(fit["n_responses"]),
        n_correct=int(fit["n_correct"]),
        clip_eps=config.params.clip_eps,
        bandwidth=float(dens["bandwidth"]) if has_d else None,
        from_cache=hit1 and hit2,
        issues=tuple(issues),
        t_sorted=np.asarray(fit["t_sorted"], dtype=np.float64),
        orientation=str(fit["orientation"]),
        raw_grid=np.asarray(fit["raw_grid"], dtype=np.float64),
        calibration=config.calibration,
        calibration_note=str(fit.get("calibration_note", "")),
        overlay=over,
        overlay_label=calibration_label(overlay) if over is not None and overlay else "",
        **_offset_curve(fit),
    )
    return view.with_offset(offset)


def _offset_curve(fit: Mapping[str, Any]) -> dict[str, Any]:
    if "b_candidates" not in fit:
        return {}
    return {
        "offset_candidates": np.asarray(fit["b_candidates"], dtype=np.float64),
        "offset_accuracy": np.asarray(fit["b_accuracy"], dtype=np.float64),
        "offset_low": np.asarray(fit["b_accuracy_low"], dtype=np.float64),
        "offset_high": np.asarray(fit["b_accuracy_high"], dtype=np.float64),
        "offset_budgets": tuple(int(b) for b in fit["b_budgets"]),
    }


def calibration_label(mode: str) -> str:
    """Short name of a calibration mode for legends."""
    k = parse_calibration(mode)
    if k is None:
        return "labelled fit"
    if k == 0:
        return "label-free fit (EM, no labels)"
    return f"semi-supervised fit ({k} labelled problems)"


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


def weight_grid_view(
    store: Store,
    info: DatasetInfo,
    kind: str,
    config: EvalConfig,
    *,
    llms: Sequence[str] | None = None,
    verifiers: Sequence[str] | None = None,
    progress: ProgressFn | None = None,
) -> WeightGridView:
    """Weight curves of `kind` for every pair (LLMs x verifiers), each fitted on all the
    pair's problems. A pair that cannot be fitted gets a panel with `error` set."""
    strategy = get_strategy(kind)
    ms = tuple(llms) if llms is not None else info.llms
    vs = tuple(verifiers) if verifiers is not None else info.verifiers
    panels: list[WeightPanel] = []
    n_cached = 0
    total = len(ms) * len(vs)
    for i, (m, v) in enumerate((m, v) for m in ms for v in vs):
        if progress is not None:
            progress(f"{m} × {v}", i, total)
        check_pair(info, m, v)
        try:
            arr, hit = weight_curve(store, info, m, v, kind, config)
        except TTSLabError as exc:
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
    if progress is not None:
        progress("done", total, total)
    return WeightGridView(
        dataset=info.name,
        simulated=info.simulated,
        kind=kind,
        label=strategy.label,
        reduction=config.reduction,
        grid=WEIGHT_GRID,
        llms=ms,
        verifiers=vs,
        panels=tuple(panels),
        n_cached=n_cached,
    )


__all__ = ["WeightGridView", "WeightPanel", "WeightView", "weight_grid_view", "weight_view"]
