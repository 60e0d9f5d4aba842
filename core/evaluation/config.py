"""The one evaluation config: every setting that decides an evaluated number.

`EvalConfig` is used by core, the CLI and the dashboard alike, and is hashed whole into the
keys of the result cache, so a cached result always belongs to exactly one config.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

from core.methods.params import StrategyParams
from core.types import ORDERS, REDUCTIONS, TIE_BREAKS, Order, Reduction, TieBreak, TTSLabError


class ConfigError(TTSLabError, ValueError):
    """An evaluation setting is out of range."""


@dataclass(frozen=True)
class EvalConfig:
    """Everything that determines an evaluation (and so its cache key).

    Attributes:
        params: parameters of fitting and applying the weighting functions.
        reduction: how step scores become one score ("stored": the imported score).
        folds, fold_seed: K-fold cross-fitting over problems.
        budgets: budgets N to evaluate (None: 1, 2, 4, ... up to the largest problem).
        n_subsets, subset_seed: random subsets per problem and budget (common to every
            strategy).
        order: "random" subsets, "sample" (the first N samples in sampling order), or
            "auto" (random for independent draws, sampling order for ordered groups such as
            beam search, from the dataset's iid flag).
        tie_break: "fractional" credit over tied answers, or "first" (the tied answer seen
            first, as scripts such as rm_maj_eval.py do).
        n_boot, level, boot_seed: bootstrap over problems for every interval.
        weight_boot: bootstrap refits of a weight function for its band.
        calibration: where the calibrated strategies' labels come from: "labels" (the
            calibration problems' correctness, cross-fitted), "none" (label-free: inferred
            by EM from answers and scores alone, fitted on every evaluated problem since
            no label is read), or "semi:K" (K labelled calibration problems per fold, the
            others' labels inferred; cross-fitted).
    """

    params: StrategyParams = field(default_factory=StrategyParams)
    reduction: Reduction = "stored"
    folds: int = 5
    fold_seed: int = 0
    budgets: tuple[int, ...] | None = None
    n_subsets: int = 200
    subset_seed: int = 0
    order: Order = "auto"
    tie_break: TieBreak = "fractional"
    n_boot: int = 1000
    level: float = 0.95
    boot_seed: int = 0
    weight_boot: int = 50
    calibration: str = "labels"

    def __post_init__(self) -> None:
        if self.reduction not in REDUCTIONS:
            raise ConfigError(f"reduction must be one of {REDUCTIONS}, got {self.reduction!r}")
        if self.folds < 2:
            raise ConfigError(f"cross-fitting needs at least 2 folds, got {self.folds}")
        if self.budgets is not None and (not self.budgets or min(self.budgets) < 1):
            raise ConfigError(f"budgets must be positive, got {self.budgets}")
        if self.n_subsets < 1:
            raise ConfigError(f"n_subsets must be >= 1, got {self.n_subsets}")
        if self.order not in ORDERS:
            raise ConfigError(f"order must be one of {ORDERS}, got {self.order!r}")
        if self.tie_break not in TIE_BREAKS:
            raise ConfigError(f"tie_break must be one of {TIE_BREAKS}, got {self.tie_break!r}")
        if self.n_boot < 1 or self.weight_boot < 1:
            raise ConfigError("bootstrap resamples must be >= 1")
        if not (0.0 < self.level < 1.0 and math.isfinite(self.level)):
            raise ConfigError(f"level must lie in (0, 1), got {self.level}")
        parse_calibration(self.calibration)

    @property
    def labelled_per_fold(self) -> int | None:
        """Labelled calibration problems per fold: None for every one ("labels"), 0 for
        label-free ("none"), K for "semi:K"."""
        return parse_calibration(self.calibration)

    def with_(self, **changes: Any) -> EvalConfig:
        """A copy with some settings changed (`params` fields may be given by name too)."""
        pf = {f.name for f in fields(StrategyParams)}
        param_changes = {k: changes.pop(k) for k in list(changes) if k in pf}
        out = replace(self, **changes)
        if param_changes:
            out = replace(out, params=replace(out.params, **param_changes))
        return out

    def resolved_order(self, iid: bool) -> Literal["random", "sample"]:
        if self.order == "auto":
            return "random" if iid else "sample"
        return "random" if self.order == "random" else "sample"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["params"] = self.params.to_dict()
        d["budgets"] = list(self.budgets) if self.budgets is not None else None
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EvalConfig:
        kw = dict(d)
        kw["params"] = StrategyParams.from_dict(kw.get("params") or {})
        if kw.get("budgets") is not None:
            kw["budgets"] = tuple(int(b) for b in kw["budgets"])
        return cls(**kw)

    def key(self) -> dict[str, Any]:
        """The whole config, for cache keys (which also carry `core.store.CACHE_VERSION`,
        bumped whenever a change in core would alter cached numbers)."""
        return self.to_dict()

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.key(), sort_keys=True).encode()).hexdigest()[:16]


def parse_calibration(text: str) -> int | None:
    """ "labels" -> None (all labelled), "none" -> 0, "semi:K" -> K (K >= 0)."""
    if text == "labels":
        return None
    if text == "none":
        return 0
    head, _, k = str(text).partition(":")
    if head == "semi" and k.isdigit():
        return int(k)
    raise ConfigError(
        f"calibration must be 'labels', 'none' or 'semi:K' (K labelled problems), got {text!r}"
    )


__all__ = ["ConfigError", "EvalConfig", "parse_calibration"]
