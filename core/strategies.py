"""Registry of aggregation strategies: each one a weight function plus a vote.

Every strategy is a small object typed against the `Strategy` protocol and registered by
name in `REGISTRY`, so the dashboard, the CLI and the tests list and parametrise strategies
from here (in the manner of inspect_ai's reducer registry). A strategy

* ``fit(calib, params)`` fits its weighting function on calibration problems only
  (`core.calibration.fit_weights`), returning a serialisable `FittedWeights`;
* ``vote_inputs(fitted, pair)`` turns the fit into per-response `VoteInputs` for the budget
  engine (weights, optional calibrated g for Theorem 3.2's q term, best-of flag);
* ``exact_accuracy(fitted, pair, budgets)`` returns an exact (B, P) accuracy when an
  order-statistic formula exists and it should replace sampling (pass@N), else None.
  (Best-of-N is evaluated exactly by the budget engine itself through ``best_of``.)

Strategies (definitions in ARCHITECTURE.md section 4; t = transformed score in [0, 1],
x = logit(clip(t))):

=================  ==========================================================  ==========
name               weight                                                      vote
=================  ==========================================================  ==========
majority           1                                                           sum
best_of_n          raw score (ordering only)                                   best-of
vanilla_wv         t                                                           sum
linear_wv          t - b, b grid-searched in [-1, 1]                           sum
logit_wv           logit t - logit b, b grid-searched in (0, 1)                sum
kde_wv             log f1(x)/f0(x) (KDE) + n_a log(q(m-1)/(1-q))               sum + q/m
platt_wv           logit P_platt(c|x) - logit(base rate) [+ q/m if use_qm]     sum (+ q/m)
isotonic_wv        logit P_iso(c|x) - logit(base rate) [+ q/m if use_qm]       sum (+ q/m)
oracle_optimal     ORACLE: KDE LR fitted on the evaluated problems' own        sum + q/m
                   labels, true per-problem q
pass_at_n          ORACLE: any correct response (coverage; exact formula)      best-of
=================  ==========================================================  ==========

Scores outside [0, 1] (outcome reward models) go through the recorded transform of
`StrategyParams.transform` ("auto": identity when all calibration scores lie in [0, 1],
sigmoid otherwise; "rank": mid-rank within the problem).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Protocol, runtime_checkable

import numpy as np

from core.budget import VoteInputs, exact_pass_at_n
from core.calibration import FittedWeights, StrategyParams, fit_weights, oracle_weights
from core.types import FloatArray, PairData, TTSLabError

__all__ = [
    "REGISTRY",
    "Strategy",
    "StrategyError",
    "StrategyParams",
    "get_strategy",
    "list_strategies",
    "register",
]


class StrategyError(TTSLabError):
    """Unknown strategy, duplicate registration, or a fit used with the wrong strategy."""


@runtime_checkable
class Strategy(Protocol):
    """One aggregation strategy: a weighting function plus a vote."""

    @property
    def name(self) -> str:
        """Registry key (also the strategy name in CurveSets)."""
        ...

    @property
    def label(self) -> str:
        """Human-readable label for tables and legends."""
        ...

    @property
    def description(self) -> str:
        """One line saying what the weight is."""
        ...

    @property
    def is_oracle(self) -> bool:
        """True if the weights use labels of the evaluated problems (an upper bound)."""
        ...

    @property
    def needs_fit(self) -> bool:
        """True if fitting uses calibration labels."""
        ...

    def fit(self, calib: PairData, params: StrategyParams) -> FittedWeights: ...

    def vote_inputs(self, fitted: FittedWeights, pair: PairData) -> VoteInputs: ...

    def exact_accuracy(
        self, fitted: FittedWeights | None, pair: PairData, budgets: Sequence[int]
    ) -> FloatArray | None: ...


@dataclass(frozen=True)
class _Base:
    name: str
    label: str
    description: str
    is_oracle: bool = False
    needs_fit: bool = False

    def fit(self, calib: PairData, params: StrategyParams) -> FittedWeights:
        return fit_weights(calib, self.name, params)

    def _check(self, fitted: FittedWeights) -> None:
        if fitted.kind != self.name:
            raise StrategyError(f"a {fitted.kind!r} fit cannot drive strategy {self.name!r}")

    def exact_accuracy(
        self, fitted: FittedWeights | None, pair: PairData, budgets: Sequence[int]
    ) -> FloatArray | None:
        return None


@dataclass(frozen=True)
class SummedVote(_Base):
    """Cluster sums of score-derived weights, optionally with Theorem 3.2's q/m term.

    `qm`: "always", "never", or "param" (follow `StrategyParams.use_qm`).
    """

    qm: str = "never"

    def vote_inputs(self, fitted: FittedWeights, pair: PairData) -> VoteInputs:
        self._check(fitted)
        t = fitted.transformed(pair)
        w = fitted.weights_from_transformed(t)
        use_g = self.qm == "always" or (self.qm == "param" and fitted.params.use_qm)
        g = fitted.calibrator.predict(t) if use_g and fitted.calibrator is not None else None
        if use_g and g is None:
            raise StrategyError(f"{self.name} fit has no calibrator for q")
        return VoteInputs(weight=w, g=g)


@dataclass(frozen=True)
class BestOfN(_Base):
    """The cluster of the single highest raw score (exact in the budget engine)."""

    def vote_inputs(self, fitted: FittedWeights, pair: PairData) -> VoteInputs:
        self._check(fitted)
        return VoteInputs(weight=np.asarray(pair.score, dtype=np.float64).copy(), best_of=True)


@dataclass(frozen=True)
class OracleOptimal(_Base):
    """ORACLE upper bound: Theorem 3.2 with densities and true q from the test labels."""

    def vote_inputs(self, fitted: FittedWeights, pair: PairData) -> VoteInputs:
        self._check(fitted)
        w, g = oracle_weights(pair, fitted.transform, fitted.params)
        return VoteInputs(weight=w, g=g)


@dataclass(frozen=True)
class PassAtN(_Base):
    """ORACLE upper bound: credit if any response in the subset is correct (coverage)."""

    def vote_inputs(self, fitted: FittedWeights, pair: PairData) -> VoteInputs:
        self._check(fitted)
        return VoteInputs(weight=np.asarray(pair.correct, dtype=np.float64), best_of=True)

    def exact_accuracy(
        self, fitted: FittedWeights | None, pair: PairData, budgets: Sequence[int]
    ) -> FloatArray | None:
        return np.asarray(exact_pass_at_n(pair, budgets), dtype=np.float64)


REGISTRY: dict[str, Strategy] = {}


def register(strategy: Strategy) -> Strategy:
    """Add a strategy to the registry (names are unique)."""
    if strategy.name in REGISTRY:
        raise StrategyError(f"strategy {strategy.name!r} is already registered")
    REGISTRY[strategy.name] = strategy
    return strategy


def get_strategy(name: str) -> Strategy:
    try:
        return REGISTRY[name]
    except KeyError:
        raise StrategyError(f"unknown strategy {name!r}; known: {', '.join(REGISTRY)}") from None


def list_strategies(*, include_oracles: bool = True) -> list[Strategy]:
    """Registered strategies in registration order (oracles last)."""
    return [s for s in REGISTRY.values() if include_oracles or not s.is_oracle]


_BUILTIN: Final[tuple[Strategy, ...]] = (
    SummedVote("majority", "Majority vote", "every response weighs 1"),
    BestOfN("best_of_n", "Best-of-N", "answer of the single highest-scored response"),
    SummedVote("vanilla_wv", "Weighted vote", "weight = transformed score t"),
    SummedVote(
        "linear_wv", "Linear WV", "weight = t - b, b grid-searched in [-1, 1]", needs_fit=True
    ),
    SummedVote(
        "logit_wv",
        "Logit WV",
        "weight = logit t - logit b, b grid-searched in (0, 1)",
        needs_fit=True,
    ),
    SummedVote(
        "kde_wv",
        "KDE WV (Thm 3.2)",
        "weight = KDE log likelihood ratio + per-problem log(q(m-1)/(1-q))",
        needs_fit=True,
        qm="always",
    ),
    SummedVote(
        "platt_wv",
        "Platt LR WV",
        "weight = logit Platt P(c|s) - logit base rate (+ q/m term if use_qm)",
        needs_fit=True,
        qm="param",
    ),
    SummedVote(
        "isotonic_wv",
        "Isotonic LR WV",
        "weight = logit isotonic P(c|s) - logit base rate (+ q/m term if use_qm)",
        needs_fit=True,
        qm="param",
    ),
    OracleOptimal(
        "oracle_optimal",
        "Oracle optimal (upper bound)",
        "ORACLE: Thm 3.2 with densities and true per-problem q from the test labels",
        is_oracle=True,
    ),
    PassAtN(
        "pass_at_n",
        "pass@N (upper bound)",
        "ORACLE: any correct response in the subset (exact formula)",
        is_oracle=True,
    ),
)

for _s in _BUILTIN:
    register(_s)
