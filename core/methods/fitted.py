"""A fitted weighting function: what a strategy learned on calibration problems.

`FittedWeights` is a plain container: the strategy it belongs to (`kind`), the resolved
transform, the parameters, and whichever components that strategy fitted (a KDE, the
binned calibrator g for q, Platt or isotonic models, an offset b, or a custom strategy's
JSON-able `state`). The weights themselves are computed by the registry entry of `kind`
(`core.methods.get_strategy(kind).weights(fitted, t)`), so a fit never decides what it
means.

Serialised form (``to_json``; schema_version 1), every float written with round-trip
precision so that ``from_json`` reproduces the weights bit for bit::

    {"schema_version": 1, "kind": "kde_wv", "transform": "identity",   # resolved transform
     "orientation": "higher" | "lower",    # the signal's direction (absent: "higher")
     "step_reduction": "last", "params": {...every StrategyParams field...},
     "calibration": {"dataset_id", "llm", "verifier", "n_problems", "n_responses",
                     "n_correct",
                     "labels": "given" | "inferred" (label-free calibration)},
     "kde": {"space": "logit", "grid": [...], "log_f1": [...], "log_f0": [...],
             "bandwidth1", "bandwidth0", "n1", "n0", "log_floor",
             "x_lo", "x_hi"} | null,         # the data's range (absent: no hold)
     "calibrator": {"edges": [...], "probs": [...]} | null,
     "platt": {"slope", "intercept", "base_rate"} | null,
     "isotonic": {"x": [...], "p": [...], "base_rate"} | null,
     "offset": {"b", "candidates": [...], "objective_values": [...], "objective",
                "budgets": [...], "n_subsets", "seed"} | null,
     "state": {...} (custom strategies; absent when empty)}
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from core.methods.calibrators import BinnedCalibrator, IsotonicFit, PlattFit
from core.methods.kde import KDEFit
from core.methods.params import CalibrationError, StrategyParams
from core.methods.transforms import apply_transform, oriented, parse_transform
from core.types import FloatArray, PairData

SCHEMA_VERSION: Final = 1


@dataclass(frozen=True, eq=False)
class OffsetFit:
    """The chosen offset b and the recorded search that chose it."""

    b: float
    candidates: FloatArray
    objective_values: FloatArray
    objective: str
    budgets: tuple[int, ...]
    n_subsets: int
    seed: int


def _floats(a: npt.ArrayLike) -> list[float]:
    return [float(v) for v in np.asarray(a, dtype=np.float64).reshape(-1)]


def _arr(v: Any) -> FloatArray:
    return np.asarray(v, dtype=np.float64)


@dataclass(frozen=True, eq=False)
class FittedWeights:
    """One fitted weighting function of one strategy (`kind`), ready to weight responses."""

    kind: str
    transform: str
    params: StrategyParams
    step_reduction: str = "stored"
    orientation: str = "higher"
    calibration: Mapping[str, Any] = field(default_factory=dict)
    kde: KDEFit | None = None
    calibrator: BinnedCalibrator | None = None
    platt: PlattFit | None = None
    isotonic: IsotonicFit | None = None
    offset: OffsetFit | None = None
    state: Mapping[str, Any] = field(default_factory=dict)

    def transformed(self, pair: PairData) -> FloatArray:
        """The pair's scores after this fit's (resolved) transform and orientation, in
        [0, 1], higher = more likely correct."""
        return oriented(apply_transform(pair.score, self.transform), self.orientation)

    @property
    def sign(self) -> float:
        """+1 when higher raw scores are better, -1 when lower ones are."""
        return -1.0 if self.orientation == "lower" else 1.0

    def with_offset(self, offset: OffsetFit) -> FittedWeights:
        return replace(self, offset=offset)

    # ---- serialisation ---------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "kind": self.kind,
            "transform": self.transform,
            "orientation": self.orientation,
            "step_reduction": self.step_reduction,
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
                "x_lo": k.x_lo,
                "x_hi": k.x_hi,
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
        if self.state:
            d["state"] = dict(self.state)
        return d

    def to_json(self, *, indent: int | None = None) -> str:
        """Versioned JSON; floats are written with round-trip precision."""
        try:
            return json.dumps(self.to_dict(), indent=indent, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise CalibrationError(f"fit cannot be written as JSON: {e}") from e

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FittedWeights:
        ver = d.get("schema_version")
        if ver != SCHEMA_VERSION:
            raise CalibrationError(
                f"unsupported weight-function schema_version {ver!r} (expected {SCHEMA_VERSION})"
            )
        try:
            raw = dict(d["params"])
            # files written before the reduction moved out of the parameters carry it twice
            reduction = str(raw.pop("step_reduction", d.get("step_reduction", "stored")))
            if d.get("step_reduction", reduction) != reduction:
                raise CalibrationError("step_reduction disagrees with params.step_reduction")
            params = StrategyParams.from_dict(raw)
            kind = str(d["kind"])
            transform = str(d["transform"])
            parse_transform(transform)  # raises on anything but a resolved transform
            orientation = str(d.get("orientation", "higher"))
            if orientation not in ("higher", "lower"):
                raise CalibrationError(f"orientation must be higher or lower, got {orientation!r}")
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
                    x_lo=float(k.get("x_lo", -math.inf)),
                    x_hi=float(k.get("x_hi", math.inf)),
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
            state = dict(d.get("state") or {})
        except (KeyError, TypeError, ValueError) as e:
            raise CalibrationError(f"malformed weight-function JSON: {e!r}") from e
        return cls(
            kind=kind,
            transform=transform,
            params=params,
            step_reduction=reduction,
            orientation=orientation,
            calibration=dict(d.get("calibration") or {}),
            kde=kde,
            calibrator=cal,
            platt=platt,
            isotonic=iso,
            offset=off,
            state=state,
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


__all__ = ["SCHEMA_VERSION", "FittedWeights", "OffsetFit"]
