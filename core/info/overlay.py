"""Pairs from any datasets on one chart (e.g. AIME 2024 against AIME 2025): each pair's
cross-fitted accuracy-vs-budget curves with their bootstrap intervals, labelled by what
tells the pairs apart."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.evaluation.config import EvalConfig
from core.info.budget import many_curves, pair_issues
from core.info.common import Issue, ViewError
from core.info.transfer import _compact_labels
from core.methods.registry import get_strategy
from core.store import Store
from core.studies.transfer import PairRef
from core.types import FloatArray, IntArray

ProgressFn = Callable[[str, int, int], None]

#: at most this many pairs share one chart (line styles tell them apart)
MAX_OVERLAY = 4


@dataclass(frozen=True, eq=False)
class OverlayCurve:
    ref: PairRef
    pair_label: str
    strategy: str
    label: str
    oracle: bool
    budgets: IntArray
    accuracy: FloatArray
    low: FloatArray
    high: FloatArray
    n_problems: int


@dataclass(frozen=True, eq=False)
class OverlayView:
    refs: tuple[PairRef, ...]
    pair_labels: tuple[str, ...]  # what tells the pairs apart
    common: str  # what they share ("" when nothing)
    strategies: tuple[str, ...]
    curves: tuple[OverlayCurve, ...]
    level: float
    n_subsets: int
    k: int
    simulated: bool
    issues: tuple[Issue, ...] = ()

    def to_frame(self) -> pd.DataFrame:
        rows = [
            {
                "dataset": c.ref.dataset,
                "llm": c.ref.llm,
                "verifier": c.ref.verifier,
                "strategy": c.strategy,
                "budget": int(b),
                "accuracy": float(a),
                "low": float(lo),
                "high": float(hi),
                "problems": c.n_problems,
            }
            for c in self.curves
            for b, a, lo, hi in zip(c.budgets, c.accuracy, c.low, c.high, strict=True)
        ]
        return pd.DataFrame(rows)


def overlay_view(
    store: Store,
    refs: Sequence[PairRef],
    strategies: Sequence[str],
    config: EvalConfig,
    *,
    progress: ProgressFn | None = None,
) -> OverlayView:
    """The curves of `strategies` on each of `refs` (pairs of any datasets), from the one
    cross-fitting path and result cache, for one chart."""
    refs = tuple(dict.fromkeys(refs))
    if not refs:
        raise ViewError("choose at least one pair")
    if len(refs) > MAX_OVERLAY:
        raise ViewError(f"at most {MAX_OVERLAY} pairs share one chart, got {len(refs)}")
    if not strategies:
        raise ViewError("choose at least one strategy")
    strategies = tuple(strategies)
    for s in strategies:
        get_strategy(s)
    infos = {r.dataset: store.get_dataset(r.dataset) for r in refs}
    labels, common = _compact_labels(refs, [infos[r.dataset].simulated for r in refs])
    curves: list[OverlayCurve] = []
    issues: list[Issue] = []
    done = 0
    for name, info in infos.items():
        mine = [r for r in refs if r.dataset == name]

        def sub(
            stage: str, i: int, n: int, base: int = done, k: int = len(mine), ds: str = name
        ) -> None:
            if progress is not None:
                frac = i / n if n else 1.0
                progress(f"{ds}: {stage}", int(100 * (base + frac * k)), 100 * len(refs))

        results = many_curves(
            store, info, [(r.llm, r.verifier) for r in mine], strategies, config, sub
        )
        for r, res in zip(mine, results, strict=True):
            issues += pair_issues(res, strategies)
            iv = res.intervals
            for s in strategies:
                if s not in res.curves.strategies:
                    continue
                j = res.curves.index(s)
                strat = get_strategy(s)
                c = OverlayCurve(
                    ref=r,
                    pair_label=labels[refs.index(r)],
                    strategy=s,
                    label=strat.label,
                    oracle=strat.oracle,
                    budgets=np.asarray(res.curves.budgets, dtype=np.int64),
                    accuracy=np.asarray(iv.estimate[j], dtype=np.float64),
                    low=np.asarray(iv.low[j], dtype=np.float64),
                    high=np.asarray(iv.high[j], dtype=np.float64),
                    n_problems=len(res.curves.problem_ids),
                )
                curves.append(c)
        done += len(mine)
    # in the order asked: pairs, then strategies
    order = {r: i for i, r in enumerate(refs)}
    curves.sort(key=lambda c: (order[c.ref], strategies.index(c.strategy)))
    return OverlayView(
        refs=refs,
        pair_labels=tuple(labels),
        common=common,
        strategies=strategies,
        curves=tuple(curves),
        level=config.level,
        n_subsets=config.n_subsets,
        k=config.folds,
        simulated=any(i.simulated for i in infos.values()),
        issues=tuple(issues),
    )


__all__ = ["MAX_OVERLAY", "OverlayCurve", "OverlayView", "overlay_view"]
