"""The recorded parameters of fitting and applying a weighting function.

One typed, frozen `StrategyParams` holds every knob of every built-in method; each registry
entry declares which fields it reads (`Strategy.uses`), so a cache key or an exported fit
records only what matters for that strategy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from core.types import (
    BANDWIDTH_MODES,
    BANDWIDTH_RULES,
    OFFSET_OBJECTIVES,
    ORIENTATIONS,
    TRANSFORMS,
    BandwidthMode,
    BandwidthRule,
    OffsetObjective,
    Orientation,
    Transform,
    TTSLabError,
)


class CalibrationError(TTSLabError):
    """A weighting function cannot be fitted or loaded (too few labels, bad parameters...)."""


@dataclass(frozen=True)
class StrategyParams:
    """Every recorded parameter of fitting and applying a weighting function.

    Attributes:
        transform: score transform ("auto" is resolved on the calibration scores and the
            resolved value is what a fit records).
        orientation: "higher" (higher scores mean more likely correct), "lower" (e.g.
            response length), or "auto": as declared at import, else estimated on the
            calibration problems (AUC below 0.5 by more than its noise). Recorded with every
            fit and applied by every strategy.
        clip_eps: transformed scores are clipped to [eps, 1 - eps] before any logit.
        bandwidth: KDE bandwidth rule ("scott", "silverman") or a number in logit units.
        bandwidth_mode: "shared" (default): both classes use the larger of the two
            per-class rule bandwidths, so that with an uninformative verifier both density
            estimates have the same expectation and the log ratio has no smoothing bias
            (constant scores give exactly zero weight); "per_class": each class its own.
        n_grid: minimum number of KDE grid points (more are used when the bandwidth is
            smaller than 4 grid steps, up to 65536).
        density_floor: the data ends where the pooled score density falls below this
            fraction of its peak; beyond, the log likelihood ratio is held at its edge value.
        density_prior: pseudo-responses by which each class density is shrunk towards the
            pooled density (where a class has no data its log likelihood ratio levels off
            at about -log(n_class / density_prior)).
        n_bins: number of equal-mass bins of the calibrator g(s) used for q.
        bin_smoothing: pseudo-count pulling each bin (and isotonic block) towards the
            smoothed base rate, so probabilities stay strictly inside (0, 1).
        use_qm: for Platt and isotonic LR weights, also add Theorem 3.2's per-problem
            ``log(q(m-1)/(1-q))`` term (as KDE WV always does). False: pure LR weights.
        offset_objective: "budget" (calibration accuracy at `offset_budget`) or "mean"
            (mean calibration accuracy over `offset_budgets`).
        offset_budget: budget of the "budget" objective (clipped to the largest problem).
        offset_budgets: budgets of the "mean" objective; None = 1, 2, 4, ... up to the
            largest problem.
        offset_grid_size: number of candidate offsets (see the strategy's `OffsetSpace`).
        offset_n_subsets: random subsets per problem and budget in the offset search.
        offset_seed: seed of those subsets.
    """

    transform: Transform = "auto"
    orientation: Orientation = "auto"
    clip_eps: float = 1e-6
    bandwidth: BandwidthRule | float = "scott"
    bandwidth_mode: BandwidthMode = "shared"
    n_grid: int = 1024
    density_floor: float = 1e-3
    density_prior: float = 1.0
    n_bins: int = 10
    bin_smoothing: float = 2.0
    use_qm: bool = True
    offset_objective: OffsetObjective = "budget"
    offset_budget: int = 32
    offset_budgets: tuple[int, ...] | None = None
    offset_grid_size: int = 41
    offset_n_subsets: int = 100
    offset_seed: int = 0

    def __post_init__(self) -> None:
        if self.transform not in TRANSFORMS:
            raise CalibrationError(f"transform must be one of {TRANSFORMS}, got {self.transform!r}")
        if self.orientation not in ORIENTATIONS:
            raise CalibrationError(
                f"orientation must be one of {ORIENTATIONS}, got {self.orientation!r}"
            )
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
        if not self.density_prior > 0:
            raise CalibrationError(f"density_prior must be > 0, got {self.density_prior}")
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

    def to_dict(self, only: frozenset[str] | None = None) -> dict[str, Any]:
        """Every field (or those in `only`), JSON-able."""
        d = asdict(self)
        if self.offset_budgets is not None:
            d["offset_budgets"] = list(self.offset_budgets)
        if only is not None:
            d = {k: v for k, v in d.items() if k in only}
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StrategyParams:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise CalibrationError(f"unknown strategy parameters: {sorted(unknown)}")
        kw = dict(d)
        if kw.get("offset_budgets") is not None:
            kw["offset_budgets"] = tuple(int(b) for b in kw["offset_budgets"])
        return cls(**kw)


#: Field groups, for `Strategy.uses`.
ORIENTATION_FIELDS = frozenset({"orientation"})
TRANSFORM_FIELDS = frozenset({"transform", "clip_eps"}) | ORIENTATION_FIELDS
KDE_FIELDS = frozenset({"bandwidth", "bandwidth_mode", "n_grid", "density_floor", "density_prior"})
Q_FIELDS = frozenset({"n_bins", "bin_smoothing"})
OFFSET_FIELDS = frozenset(
    {
        "offset_objective",
        "offset_budget",
        "offset_budgets",
        "offset_grid_size",
        "offset_n_subsets",
        "offset_seed",
    }
)
ALL_FIELDS = frozenset(f.name for f in fields(StrategyParams))

__all__ = [
    "ALL_FIELDS",
    "KDE_FIELDS",
    "OFFSET_FIELDS",
    "ORIENTATION_FIELDS",
    "Q_FIELDS",
    "TRANSFORM_FIELDS",
    "CalibrationError",
    "StrategyParams",
]
