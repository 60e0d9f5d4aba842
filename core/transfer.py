"""Calibration transfer: weights fitted on one (dataset, LLM, verifier) used on another.

The matrix answers the reviewers' doubt about calibrated aggregation: do weights learned
on benchmark X or model X still help on Y? Each cell fits a strategy on the source pair
and evaluates it on the target pair, reporting its accuracy at a budget and the gain over
a baseline strategy on the same target subsets, with a paired bootstrap interval.

Honesty: when source and target share problems (two LLMs on the same benchmark, or the
diagonal), the source's labels on a problem would reveal that problem's answer, so the
target's problems are split into K folds and each fold is weighted by a fit on the source
restricted to the *other* folds' problems. Disjoint problem sets (AIME 2024 -> AIME 2025)
fit on the whole source.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.budget import CurveSet, Subsets, VoteInputs, accuracy_curves, make_subsets
from core.calibration import StrategyParams, kfold_problems, select_problems, stitch_inputs
from core.stats import paired_difference_cis
from core.store import Store
from core.strategies import get_strategy
from core.types import IntArray, PairData, TTSLabError


class TransferError(TTSLabError):
    """A transfer cell cannot be computed."""


@dataclass(frozen=True)
class PairRef:
    dataset: str
    llm: str
    verifier: str

    @property
    def label(self) -> str:
        return f"{self.dataset} / {self.llm} / {self.verifier}"


def transfer_inputs(
    source: PairData,
    target: PairData,
    strategy: str,
    params: StrategyParams | None = None,
    *,
    k: int = 5,
    seed: int = 0,
) -> VoteInputs:
    """Vote inputs for `target` from `strategy` fitted on `source` (folds if they share
    problems)."""
    strat = get_strategy(strategy)
    params = params or StrategyParams()
    if strat.is_oracle:
        raise TransferError(f"{strategy} is an oracle and cannot be transferred")
    shared = set(source.problem_ids) & set(target.problem_ids)
    if not shared:
        return strat.vote_inputs(strat.fit(source, params), target)
    src_index = {p: i for i, p in enumerate(source.problem_ids)}
    parts: list[tuple[IntArray, VoteInputs]] = []
    for test in kfold_problems(target.n_problems, k, seed):
        held_ids = {target.problem_ids[int(i)] for i in test}
        keep = np.asarray([i for p, i in src_index.items() if p not in held_ids], dtype=np.int64)
        keep.sort()
        if keep.size == 0:
            raise TransferError("no source problems left outside the held-out fold")
        fitted = strat.fit(select_problems(source, keep), params)
        parts.append((test, strat.vote_inputs(fitted, select_problems(target, test))))
    return stitch_inputs(target, parts)


@dataclass(frozen=True, eq=False)
class TransferMatrix:
    strategy: str
    baseline: str
    budget: int
    sources: tuple[PairRef, ...]
    targets: tuple[PairRef, ...]
    accuracy: np.ndarray  # (n_sources, n_targets)
    baseline_accuracy: np.ndarray  # (n_targets,)
    gain: np.ndarray
    low: np.ndarray
    high: np.ndarray
    level: float

    def to_frame(self) -> pd.DataFrame:
        rows = []
        for i, s in enumerate(self.sources):
            for j, t in enumerate(self.targets):
                rows.append(
                    {
                        "calibrated on": s.label,
                        "evaluated on": t.label,
                        "accuracy": float(self.accuracy[i, j]),
                        "baseline": float(self.baseline_accuracy[j]),
                        "gain": float(self.gain[i, j]),
                        "low": float(self.low[i, j]),
                        "high": float(self.high[i, j]),
                    }
                )
        return pd.DataFrame(rows)


def transfer_matrix(
    store: Store,
    sources: Sequence[PairRef],
    targets: Sequence[PairRef],
    strategy: str = "logit_wv",
    baseline: str = "majority",
    budget: int = 16,
    params: StrategyParams | None = None,
    *,
    k: int = 5,
    seed: int = 0,
    n_subsets: int = 200,
    n_boot: int = 1000,
    level: float = 0.95,
) -> TransferMatrix:
    """Accuracy at `budget` of `strategy` calibrated on each source, evaluated on each
    target, and its gain over `baseline` (cross-fitted on the target itself when it needs
    fitting) with a paired bootstrap interval over the target's problems."""
    params = params or StrategyParams()
    base_strat = get_strategy(baseline)
    if base_strat.is_oracle:
        raise TransferError("the baseline must not be an oracle")
    pairs = {r: store.load_pair(r.dataset, r.llm, r.verifier) for r in {*sources, *targets}}
    n_s, n_t = len(sources), len(targets)
    acc = np.zeros((n_s, n_t))
    gain = np.zeros((n_s, n_t))
    low = np.zeros((n_s, n_t))
    high = np.zeros((n_s, n_t))
    base_acc = np.zeros(n_t)
    for j, t in enumerate(targets):
        target = pairs[t]
        n_max = int(target.sizes().max())
        b = min(budget, n_max)
        subsets: Subsets = make_subsets(target, [b], n_subsets=n_subsets, seed=seed)
        if base_strat.needs_fit:
            base_vi = transfer_inputs(target, target, baseline, params, k=k, seed=seed)
        else:
            base_vi = base_strat.vote_inputs(base_strat.fit(target, params), target)
        inputs = {"__baseline__": base_vi}
        for i, s in enumerate(sources):
            inputs[f"src{i}"] = transfer_inputs(pairs[s], target, strategy, params, k=k, seed=seed)
        curves: CurveSet = accuracy_curves(target, inputs, subsets=subsets)
        per = curves.per_problem[:, 0, :]  # (S, P) at the one budget
        base_acc[j] = per[0].mean()
        d = paired_difference_cis(
            per[1:], per[0][None, :].repeat(n_s, 0), n_boot=n_boot, level=level, seed=seed
        )
        acc[:, j] = per[1:].mean(axis=1)
        gain[:, j] = d.estimate
        low[:, j] = d.low
        high[:, j] = d.high
    return TransferMatrix(
        strategy,
        baseline,
        budget,
        tuple(sources),
        tuple(targets),
        acc,
        base_acc,
        gain,
        low,
        high,
        level,
    )
