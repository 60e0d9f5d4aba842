"""Tuning the offset b of strategies whose weight is ``base(t) - shift(b)`` (linear and
logit WV, or any registered strategy with an `OffsetSpace`).

b is chosen on calibration problems only, by grid search: each candidate's calibration
accuracy at the objective's budget(s) (random subsets, fractional ties), ties to the
candidate nearest the neutral offset. The objective is recorded with the fit.

Fast and exact: a problem's objective value for a candidate depends only on that problem's
responses, its subsets (keyed by problem id) and the transform. So `OffsetTuner` computes
the per-problem objective of every candidate once per pair, in one walk per subset for all
candidates (`engine.offset_credits`), and slices it for any set of calibration problems (a
cross-fitting fold, a transfer source restricted to other folds, a bootstrap resample).
That holds whenever the resolved transform has no fitted parameters (identity, sigmoid)
and the strategy's base weights read nothing fitted (`OffsetSpace.base_uses_fit` False, as
for the built-ins); otherwise (zscore, rank, a custom base) the objective is computed on
the requested problems only. Either way the result equals a separate search on the
calibration pair bit for bit. `prefetch` computes several strategies' shared objectives in
one walk.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.evaluation.engine import default_budgets, make_subsets, offset_credits
from core.methods.fitted import FittedWeights, OffsetFit
from core.methods.params import CalibrationError, StrategyParams
from core.methods.registry import Strategy
from core.methods.transforms import fold_independent
from core.types import FloatArray, IntArray, PairData


def objective_budgets(n_max: int, params: StrategyParams) -> tuple[int, ...]:
    """Budgets of the offset objective for calibration problems of at most n_max responses."""
    if params.offset_objective == "budget":
        return (min(params.offset_budget, n_max),)
    raw = params.offset_budgets if params.offset_budgets is not None else default_budgets(n_max)
    return tuple(sorted({min(int(b), n_max) for b in raw}))


@dataclass(frozen=True, eq=False)
class Objective:
    """Per-problem offset objective of some calibration problems: `values[c, p]` is the
    accuracy of candidate c on problem p, averaged over `budgets`."""

    candidates: FloatArray
    budgets: tuple[int, ...]
    values: FloatArray


class OffsetTuner:
    """Offset searches on the problems of one calibration pair, sharing their work."""

    def __init__(self, pair: PairData) -> None:
        self.pair = pair
        self._sizes = pair.sizes()
        # (strategy key, transform) -> budget -> (C, P) credits on every problem of the pair
        self._full: dict[tuple[str, str], dict[int, FloatArray]] = {}

    @staticmethod
    def shared(strategy: Strategy, fitted: FittedWeights) -> bool:
        """Whether this search's per-problem work is the same whatever the calibration
        problems (so it is computed once for the pair and sliced)."""
        space = strategy.offset
        return space is not None and not space.base_uses_fit and fold_independent(fitted.transform)

    @staticmethod
    def _shifts(strategy: Strategy, params: StrategyParams) -> tuple[FloatArray, FloatArray]:
        space = strategy.offset
        assert space is not None
        cands = space.candidates(params.offset_grid_size)
        return cands, np.asarray([space.shift(float(b)) for b in cands], dtype=np.float64)

    def _compute(
        self,
        pair: PairData,
        items: list[tuple[Strategy, FittedWeights]],
        budgets: tuple[int, ...],
    ) -> list[dict[int, FloatArray]]:
        """budget -> (C, P) credits on every problem of `pair`, for each item; items that
        share their subsets (same offset_n_subsets and offset_seed) share one walk."""
        out: list[dict[int, FloatArray]] = [{} for _ in items]
        groups: dict[tuple[int, int, int], list[int]] = {}
        for i, (_, fitted) in enumerate(items):
            p = fitted.params
            n_c = p.offset_grid_size
            groups.setdefault((p.offset_n_subsets, p.offset_seed, n_c), []).append(i)
        for (n_subsets, seed, _), members in groups.items():
            bases = []
            shifts = []
            for i in members:
                strategy, fitted = items[i]
                bases.append(strategy.base_weights(fitted, fitted.transformed(pair)))
                shifts.append(self._shifts(strategy, fitted.params)[1])
            subsets = make_subsets(pair, budgets, n_subsets=n_subsets, seed=seed)
            cred = offset_credits(pair, np.stack(bases), np.stack(shifts), subsets)
            share = pair.share_correct()
            for k, i in enumerate(members):
                for bi, b in enumerate(subsets.budgets):
                    out[i][b] = np.ascontiguousarray(cred[k, :, bi, :])
                if 1 in subsets.budgets:  # N = 1 is exact, as in `accuracy_curves`
                    out[i][1] = np.ascontiguousarray(np.broadcast_to(share, out[i][1].shape))
        return out

    def prefetch(
        self, items: list[tuple[Strategy, FittedWeights]], problems: IntArray | None = None
    ) -> None:
        """Compute the shared objectives of several strategies in one walk (those that
        cannot be shared are left for `objective`)."""
        todo: list[tuple[Strategy, FittedWeights]] = []
        budgets: set[int] = set()
        for strategy, fitted in items:
            if not self.shared(strategy, fitted):
                continue
            idx = self._idx(problems)
            need = objective_budgets(int(self._sizes[idx].max()), fitted.params)
            have = self._full.get(self._key(strategy, fitted), {})
            if any(b not in have for b in need):
                todo.append((strategy, fitted))
                budgets.update(need)
        if todo:
            for (strategy, fitted), got in zip(
                todo, self._compute(self.pair, todo, tuple(sorted(budgets))), strict=True
            ):
                self._full.setdefault(self._key(strategy, fitted), {}).update(got)

    @staticmethod
    def _key(strategy: Strategy, fitted: FittedWeights) -> tuple[str, str]:
        return (repr(strategy.key(fitted.params)), fitted.transform)

    def _idx(self, problems: IntArray | None) -> IntArray:
        if problems is None:
            return np.arange(self.pair.n_problems, dtype=np.int64)
        return np.asarray(problems, dtype=np.int64)

    def _credits(
        self,
        strategy: Strategy,
        fitted: FittedWeights,
        problems: IntArray,
        budgets: tuple[int, ...],
    ) -> dict[int, FloatArray]:
        """budget -> (C, len(problems)) credits."""
        if not self.shared(strategy, fitted):
            sub = self.pair.select(problems)
            return self._compute(sub, [(strategy, fitted)], budgets)[0]
        have = self._full.setdefault(self._key(strategy, fitted), {})
        missing = tuple(b for b in budgets if b not in have)
        if missing:
            have.update(self._compute(self.pair, [(strategy, fitted)], missing)[0])
        return {b: have[b][:, problems] for b in budgets}

    def objective(
        self, strategy: Strategy, fitted: FittedWeights, problems: IntArray | None = None
    ) -> Objective:
        """The per-problem objective of `strategy`'s offset on `problems` (default: all)."""
        if strategy.offset is None:
            raise CalibrationError(f"{strategy.name} has no offset")
        idx = self._idx(problems)
        if idx.size == 0:
            raise CalibrationError("the offset search needs calibration problems")
        cands = self._shifts(strategy, fitted.params)[0]
        budgets = objective_budgets(int(self._sizes[idx].max()), fitted.params)
        credits = self._credits(strategy, fitted, idx, budgets)
        # (C, B, P) in budget order, then the mean over budgets, as a search on the
        # calibration pair alone computes it
        stacked = np.ascontiguousarray(np.stack([credits[b] for b in budgets], axis=1))
        return Objective(cands, budgets, np.asarray(stacked.mean(axis=1), dtype=np.float64))

    def tune(
        self, strategy: Strategy, fitted: FittedWeights, problems: IntArray | None = None
    ) -> FittedWeights:
        """`fitted` with b chosen on `problems` (indices into this tuner's pair)."""
        obj = self.objective(strategy, fitted, problems)
        assert strategy.offset is not None
        values = obj.values.mean(axis=1)
        b = float(strategy.offset.pick(obj.candidates, values[:, None])[0])
        p = fitted.params
        return fitted.with_offset(
            OffsetFit(
                b=b,
                candidates=obj.candidates,
                objective_values=values,
                objective=p.offset_objective,
                budgets=obj.budgets,
                n_subsets=p.offset_n_subsets,
                seed=p.offset_seed,
            )
        )


__all__ = ["Objective", "OffsetTuner", "objective_budgets"]
