"""The strategy registry: every aggregation strategy is one entry, and everything else
(the evaluation engine, the CLI, the dashboard's option lists and colours, cache keys and
the default curve set) reads it.

An entry is a frozen `Strategy` that owns

* its fit: ``fit(calib, params)`` learns from calibration problems only and returns a
  `FittedWeights` (label-free strategies only resolve the transform);
* its weights: ``weights(fitted, t)`` maps transformed scores to the weight w(s) plotted
  on the weight pages; ``vote_inputs(fitted, pair)`` gives the evaluation engine every
  response's weight, the calibrated g for Theorem 3.2's q term where the strategy uses it,
  and whether the vote is best-of;
* its presentation: label, short name (for sentences), colour (fixed across pages);
* its flags: oracle (uses what no real method has: the evaluated problems' labels or the
  simulator's parameters), upper bound (a guaranteed ceiling of every strategy's expected
  accuracy; only pass@N and the simulator's Bayes-optimal vote are), needs labels (its fit
  reads calibration labels), needs truth (only simulated datasets, which record the
  simulator's parameters, have it), in the default curve set, listed on the weight pages;
* its parameter space: the `StrategyParams` fields it reads (`uses`, which is also what
  its cache keys record) and, for strategies whose weight is ``base(t) - shift(b)``, the
  `OffsetSpace` of b, which the evaluation layer tunes on calibration problems (methods
  never evaluate accuracy themselves).

A user adds a strategy from their own code with `register` (see the README for a complete
example); `load_plugins` imports such code in the CLI and the dashboard from the
``TTSLAB_PLUGINS`` environment variable (module names or ``.py`` files, separated by commas)
and from the ``ttslab.strategies`` entry-point group of installed packages.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from core.methods.fitted import FittedWeights
from core.methods.params import TRANSFORM_FIELDS, CalibrationError, StrategyParams
from core.methods.transforms import resolve_orientation, resolve_transform
from core.types import BoolArray, FloatArray, PairData, TTSLabError, VoteInputs, VoteKind

PLUGINS_ENV_VAR: Final = "TTSLAB_PLUGINS"
ENTRY_POINT_GROUP: Final = "ttslab.strategies"

#: Colours handed to registered strategies that do not choose one (after the built-ins').
_PALETTE: Final = (
    "#e6550d",
    "#3182bd",
    "#31a354",
    "#756bb1",
    "#636363",
    "#fd8d3c",
    "#6baed6",
    "#74c476",
    "#9e9ac8",
    "#969696",
)


class StrategyError(TTSLabError):
    """Unknown strategy, duplicate registration, or a fit used with the wrong strategy."""


@dataclass(frozen=True)
class OffsetSpace:
    """The offset b of a weight ``w = base(t) - shift(b)``, tuned on calibration problems.

    Candidates are `size` evenly spaced values over [lo, hi] (strictly inside when
    `open_interval`); ties of the objective go to the candidate nearest `neutral`.
    `base_uses_fit`: whether base(t) reads components fitted on the calibration problems;
    when it does not (the built-ins), the search's per-problem work is shared across folds.
    """

    lo: float
    hi: float
    neutral: float
    formula: str
    open_interval: bool = False
    shift: Callable[[float], float] = float
    base_uses_fit: bool = True

    def candidates(self, size: int) -> FloatArray:
        if self.open_interval:
            return np.asarray(np.linspace(self.lo, self.hi, size + 2)[1:-1], dtype=np.float64)
        return np.asarray(np.linspace(self.lo, self.hi, size), dtype=np.float64)

    def slider_range(self) -> tuple[float, float]:
        """The range a user may set b to by hand (kept inside an open interval)."""
        if self.open_interval:
            return (self.lo + 0.01, self.hi - 0.01)
        return (self.lo, self.hi)

    def pick(self, cands: FloatArray, objective: npt.ArrayLike) -> FloatArray:
        """Best candidate per column of `objective` (C, R); ties (within 1e-12) go to the
        candidate nearest the neutral offset."""
        obj = np.asarray(objective, dtype=np.float64)
        best = obj.max(axis=0)
        tied = obj >= best[None, :] - 1e-12
        dist = np.where(tied, np.abs(cands - self.neutral)[:, None], np.inf)
        return np.asarray(cands[np.argmin(dist, axis=0)], dtype=np.float64)


@dataclass(frozen=True, kw_only=True)
class Strategy:
    """One aggregation strategy. Subclass it and override `fit_state` / `weights` (or use
    `ScoreWeighted` with plain functions), then `register` an instance."""

    name: str
    label: str
    description: str
    short: str = ""
    color: str = ""
    vote: VoteKind = "sum"
    oracle: bool = False
    upper_bound: bool = False
    needs_labels: bool = False
    #: fits from soft labels (probabilities) when label-free calibration inferred them;
    #: other strategies fit on the most probable labels
    soft_labels: bool = False
    needs_truth: bool = False
    default: bool = False
    show_weights: bool = False
    offset: OffsetSpace | None = None
    uses: frozenset[str] = field(default=TRANSFORM_FIELDS)
    version: str = "1"

    # ---- presentation ----------------------------------------------------------------

    @property
    def short_name(self) -> str:
        """Name for sentences ("logit WV reaches majority vote@64 with ...")."""
        return self.short or self.label

    def key(self, params: StrategyParams) -> dict[str, Any]:
        """What identifies this strategy's results: name, version and the parameters it
        reads (for cache keys and exports)."""
        return {"name": self.name, "version": self.version, "params": params.to_dict(self.uses)}

    # ---- fitting -----------------------------------------------------------------------

    def fit(self, calib: PairData, params: StrategyParams) -> FittedWeights:
        """Fit on the calibration problems `calib` (their labels only if `needs_labels`).

        Resolves the transform on the calibration scores and the orientation (`params`,
        else as declared at import, else estimated on the calibration labels), then adds
        what `fit_state` returns. Offset strategies come back without b: `core.evaluation` tunes it.
        """
        if calib.n_responses == 0:
            raise CalibrationError("calibration pair has no responses")
        if not np.all(np.isfinite(calib.score)):
            raise CalibrationError("calibration scores must be finite (NaN or inf found)")
        transform = (
            resolve_transform(params.transform, calib.score)
            if "transform" in self.uses
            else "identity"
        )
        orientation = (
            resolve_orientation(params.orientation, calib)
            if "orientation" in self.uses
            else "higher"
        )
        base = FittedWeights(
            kind=self.name,
            transform=transform,
            params=params,
            orientation=orientation,
            calibration={
                "dataset_id": calib.dataset_id,
                "llm": calib.llm,
                "verifier": calib.verifier,
                "n_problems": calib.n_problems,
                "n_responses": calib.n_responses,
                "n_correct": int(np.sum(calib.correct)),
                # "inferred": label-free calibration (n_correct counts the most probable
                # labels EM inferred, not true ones)
                "labels": "given" if calib.soft is None else "inferred",
            },
        )
        t = base.transformed(calib)
        if self.soft_labels and calib.soft is not None:
            return self.fit_state(base, t, np.asarray(calib.soft, dtype=np.float64))
        return self.fit_state(base, t, np.asarray(calib.correct, dtype=bool))

    def fit_state(
        self, base: FittedWeights, t: FloatArray, correct: BoolArray | FloatArray
    ) -> FittedWeights:
        """Add the fitted components to `base` (transformed calibration scores `t` and
        their labels: bool, or soft probabilities for `soft_labels` strategies under
        label-free calibration). Default: nothing to fit."""
        return base

    # ---- weights and vote --------------------------------------------------------------

    def weights(self, fitted: FittedWeights, t: FloatArray) -> FloatArray:
        """Per-response weight from transformed scores (without any per-problem term)."""
        if self.offset is not None:
            if fitted.offset is None:
                raise CalibrationError(
                    f"{self.name} has no offset b yet: fit it with core.evaluation.fit_strategy"
                )
            return np.asarray(
                self.base_weights(fitted, t) - self.offset.shift(fitted.offset.b),
                dtype=np.float64,
            )
        raise StrategyError(f"{self.name} has no score-only weight function")

    def base_weights(self, fitted: FittedWeights, t: FloatArray) -> FloatArray:
        """For offset strategies: the part of the weight that does not depend on b."""
        raise StrategyError(f"{self.name} has no offset")

    def uses_q(self, fitted: FittedWeights) -> bool:
        """Whether the vote adds Theorem 3.2's per-problem log(q(m-1)/(1-q)) term."""
        return False

    def vote_inputs(self, fitted: FittedWeights, pair: PairData) -> VoteInputs:
        """What the evaluation engine needs for every response of `pair`."""
        self.check(fitted)
        t = fitted.transformed(pair)
        w = self.weights(fitted, t)
        g = None
        if self.uses_q(fitted):
            if fitted.calibrator is None:
                raise StrategyError(f"{self.name} fit has no calibrator for q")
            g = fitted.calibrator.predict(t)
        return VoteInputs(weight=w, g=g, best_of=self.vote == "best_of")

    def check(self, fitted: FittedWeights) -> None:
        if fitted.kind != self.name:
            raise StrategyError(f"a {fitted.kind!r} fit cannot drive strategy {self.name!r}")


@dataclass(frozen=True, kw_only=True)
class ScoreWeighted(Strategy):
    """A summed vote whose weight is a function of the transformed score.

    ``weight_fn(t, state)`` gives the weights; ``fit_fn(t, correct, params)`` (optional)
    returns a JSON-able `state` learned on calibration problems (then set
    ``needs_labels=True``).
    """

    weight_fn: Callable[[FloatArray, Mapping[str, Any]], npt.ArrayLike]
    fit_fn: Callable[[FloatArray, BoolArray, StrategyParams], Mapping[str, Any]] | None = None
    show_weights: bool = True

    def fit_state(
        self, base: FittedWeights, t: FloatArray, correct: BoolArray | FloatArray
    ) -> FittedWeights:
        if self.fit_fn is None:
            return base
        labels = np.asarray(correct, dtype=bool)  # never soft: soft_labels is False
        return replace(base, state=dict(self.fit_fn(t, labels, base.params)))

    def weights(self, fitted: FittedWeights, t: FloatArray) -> FloatArray:
        w = np.asarray(self.weight_fn(np.asarray(t, dtype=np.float64), fitted.state))
        if w.shape != np.shape(t):
            raise StrategyError(f"{self.name}: weight_fn returned shape {w.shape}")
        return np.asarray(w, dtype=np.float64)


# --------------------------------------------------------------------------------------
# the registry
# --------------------------------------------------------------------------------------

REGISTRY: dict[str, Strategy] = {}


def register(strategy: Strategy) -> Strategy:
    """Add a strategy to the registry (names are unique); it gets a colour if it has none."""
    if not isinstance(strategy, Strategy):
        raise StrategyError(f"register needs a Strategy, got {type(strategy).__name__}")
    if not strategy.name or not strategy.name.replace("_", "").replace("-", "").isalnum():
        raise StrategyError(
            f"strategy names are letters, digits, '_' and '-', got {strategy.name!r}"
        )
    if strategy.name in REGISTRY:
        raise StrategyError(f"strategy {strategy.name!r} is already registered")
    if strategy.offset is not None and strategy.vote != "sum":
        raise StrategyError(f"{strategy.name}: an offset needs a summed vote")
    if not strategy.color:
        used = {s.color for s in REGISTRY.values()}
        free = [c for c in _PALETTE if c not in used] or list(_PALETTE)
        strategy = replace(strategy, color=free[0])
    REGISTRY[strategy.name] = strategy
    return strategy


def unregister(name: str) -> None:
    """Remove a registered strategy (tests and interactive sessions)."""
    REGISTRY.pop(name, None)


def get_strategy(name: str) -> Strategy:
    try:
        return REGISTRY[name]
    except KeyError:
        raise StrategyError(f"unknown strategy {name!r}; known: {', '.join(REGISTRY)}") from None


def list_strategies(*, oracles: bool = True, simulated: bool = True) -> list[Strategy]:
    """Registered strategies in registration order (without oracles, or without those
    that need a simulated dataset's parameters, when asked)."""
    return [
        s
        for s in REGISTRY.values()
        if (oracles or not s.oracle) and (simulated or not s.needs_truth)
    ]


def strategy_names(*, oracles: bool = True, simulated: bool = True) -> list[str]:
    return [s.name for s in list_strategies(oracles=oracles, simulated=simulated)]


def default_strategies(*, simulated: bool = True) -> tuple[str, ...]:
    """The default curve set (strategies flagged `default`); without `simulated`, those
    that need the simulator's parameters are left out."""
    return tuple(
        s.name for s in REGISTRY.values() if s.default and (simulated or not s.needs_truth)
    )


def calibrated_strategies() -> tuple[str, ...]:
    """Strategies whose fit reads calibration labels (they can be transferred)."""
    return tuple(s.name for s in REGISTRY.values() if s.needs_labels and not s.oracle)


def weight_strategies() -> tuple[str, ...]:
    """Strategies whose weight function the weight pages draw."""
    return tuple(s.name for s in REGISTRY.values() if s.show_weights and not s.oracle)


def display_label(name: str) -> str:
    """Label of a registered strategy, or of a parameter variant "<strategy> [<label>]"."""
    base, _, rest = name.partition(" [")
    label = get_strategy(base).label
    return f"{label} [{rest}" if rest else label


def short_name(name: str) -> str:
    base, _, rest = name.partition(" [")
    short = get_strategy(base).short_name if base in REGISTRY else base
    return f"{short} [{rest}" if rest else short


def color(name: str) -> str:
    base = name.partition(" [")[0]
    return REGISTRY[base].color if base in REGISTRY else "#444444"


# --------------------------------------------------------------------------------------
# plugins
# --------------------------------------------------------------------------------------

_LOADED: set[str] = set()


def _import_plugin(spec: str) -> None:
    if spec in _LOADED:
        return
    path = Path(spec)
    try:
        if spec.endswith(".py"):
            if not path.is_file():
                raise StrategyError(f"plugin file {spec} does not exist")
            mod_name = f"ttslab_plugin_{abs(hash(str(path.resolve())))}"
            loader = importlib.util.spec_from_file_location(mod_name, path)
            if loader is None or loader.loader is None:
                raise StrategyError(f"cannot load plugin file {spec}")
            module = importlib.util.module_from_spec(loader)
            sys.modules[mod_name] = module
            loader.loader.exec_module(module)
        else:
            importlib.import_module(spec)
    except StrategyError:
        raise
    except Exception as exc:  # a plugin's own error, reported with its name
        raise StrategyError(f"plugin {spec!r} failed to load: {exc!r}") from exc
    _LOADED.add(spec)


@functools.cache
def _entry_points() -> tuple[metadata.EntryPoint, ...]:
    """The installed ``ttslab.strategies`` entry points, scanned once per process: the
    scan reads every installed package's metadata (about 20 ms), which a dashboard that
    calls `load_plugins` on every run of a page should not pay each time. Packages
    installed while a process runs are seen by the next process."""
    return tuple(metadata.entry_points(group=ENTRY_POINT_GROUP))


def load_plugins(specs: str | None = None) -> list[str]:
    """Import strategy plugins: `specs` (or ``$TTSLAB_PLUGINS``: module names or ``.py``
    files separated by commas) and the ``ttslab.strategies`` entry points. Each is
    imported once per process; returns what was loaded."""
    raw = specs if specs is not None else os.environ.get(PLUGINS_ENV_VAR, "")
    wanted = [s.strip() for s in raw.split(",") if s.strip()]
    for spec in wanted:
        _import_plugin(spec)
    for ep in _entry_points():
        key = f"entry-point:{ep.name}"
        if key in _LOADED:
            continue
        try:
            ep.load()
        except Exception as exc:
            raise StrategyError(f"plugin entry point {ep.name!r} failed: {exc!r}") from exc
        _LOADED.add(key)
        wanted.append(key)
    return wanted


__all__ = [
    "ENTRY_POINT_GROUP",
    "PLUGINS_ENV_VAR",
    "REGISTRY",
    "OffsetSpace",
    "ScoreWeighted",
    "Strategy",
    "StrategyError",
    "calibrated_strategies",
    "color",
    "default_strategies",
    "display_label",
    "get_strategy",
    "list_strategies",
    "load_plugins",
    "register",
    "short_name",
    "strategy_names",
    "unregister",
    "weight_strategies",
]
