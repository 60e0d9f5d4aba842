"""What `ttslab calibrate` shows: per strategy, the weighting function fitted on every
problem of a pair and where its weights are negative."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.evaluation.config import EvalConfig
from core.evaluation.pipeline import (
    fit_strategy,
    load_pair,
    response_weights,
    whole_pair_calibration,
)
from core.info.common import check_pair, negative_intervals
from core.methods.fitted import FittedWeights
from core.methods.registry import get_strategy
from core.store import DatasetInfo, Store
from core.types import PairData

#: Grid of transformed scores on which the negative region is read off.
SUMMARY_GRID = np.linspace(0.0025, 0.9975, 400)


@dataclass(frozen=True)
class WeightSummary:
    """Where a fitted weight function is negative, in (transformed) score units."""

    kind: str
    transform: str
    negative_fraction_of_range: float
    negative_intervals: tuple[tuple[float, float], ...]
    share_of_responses_negative: float
    weight_at: dict[str, float]
    extra: dict[str, float]


def weight_summary(fitted: FittedWeights, pair: PairData) -> WeightSummary:
    strategy = get_strategy(fitted.kind)
    w = strategy.weights(fitted, SUMMARY_GRID)
    at = {f"w({q:.1f})": float(strategy.weights(fitted, np.array([q]))[0]) for q in (0.1, 0.5, 0.9)}
    extra: dict[str, float] = {}
    if fitted.offset is not None:
        extra["b"] = float(fitted.offset.b)
    if fitted.kde is not None:
        extra["bandwidth"] = float(fitted.kde.bandwidth1)
    return WeightSummary(
        kind=fitted.kind,
        transform=fitted.transform,
        negative_fraction_of_range=float(np.mean(w < 0)),
        negative_intervals=negative_intervals(SUMMARY_GRID, w),
        share_of_responses_negative=float(np.mean(response_weights(fitted, pair) < 0)),
        weight_at=at,
        extra=extra,
    )


def calibrate_table(
    store: Store,
    info: DatasetInfo,
    llm: str,
    verifier: str,
    strategies: Sequence[str],
    config: EvalConfig,
) -> pd.DataFrame:
    """One row per (non-oracle) strategy: fitted parameters and where its weights are
    negative (intervals of the transformed score), fitted on all the pair's problems."""
    check_pair(info, llm, verifier)
    pair, params, _ = whole_pair_calibration(
        load_pair(store, info, llm, verifier, config.reduction), config
    )
    rows = []
    for name in strategies:
        strat = get_strategy(name)
        if strat.oracle:
            continue
        fitted = fit_strategy(strat, pair, params, reduction=config.reduction)
        s = weight_summary(fitted, pair)
        rows.append(
            {
                "llm": llm,
                "verifier": verifier,
                "strategy": name,
                "transform": s.transform.split(":", 1)[0],
                "direction": fitted.orientation,
                **{k: round(v, 4) for k, v in s.extra.items()},
                **{k: round(v, 3) for k, v in s.weight_at.items()},
                "negative_intervals": s.negative_intervals,
                "responses with w<0": round(s.share_of_responses_negative, 3),
            }
        )
    return pd.DataFrame(rows)


__all__ = ["SUMMARY_GRID", "WeightSummary", "calibrate_table", "weight_summary"]
