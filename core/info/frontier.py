"""What the "Compute frontier" page and `ttslab frontier` show: for a dataset where several
LLMs answered the same problems, accuracy against cost (samples, tokens or FLOPs) of every
(LLM, strategy, N), the Pareto frontier of those points, and which LLM plus aggregation is
best at a given budget. Every point is measured on the problems all LLMs answered, with a
bootstrap interval over them."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from core.evaluation.config import EvalConfig
from core.evaluation.pipeline import load_pair, pair_curves
from core.evaluation.stats import bootstrap_mean_ci
from core.evaluation.stopping import fixed_cost, has_tokens
from core.info.common import MIN_PROBLEMS, Issue, ViewError, kept_per_content
from core.store import DatasetInfo, Store
from core.types import FloatArray

ProgressFn = Callable[[str, int, int], None]

#: strategies drawn by default: majority vote and two calibrated votes
DEFAULT_FRONTIER_STRATEGIES = ("majority", "logit_wv", "posterior_vote")
UNITS = ("samples", "tokens", "flops")


@dataclass(frozen=True)
class FrontierPoint:
    llm: str
    strategy: str
    budget: int
    cost: float  # mean per problem, in the view's unit
    accuracy: float
    low: float
    high: float
    on_frontier: bool


@dataclass(frozen=True)
class FrontierView:
    dataset: str
    verifier: str
    unit: str
    n_problems: int  # problems every LLM answered
    points: tuple[FrontierPoint, ...]
    level: float
    issues: tuple[Issue, ...]

    def frontier(self) -> list[FrontierPoint]:
        """The Pareto-optimal points, cheapest first."""
        return sorted((p for p in self.points if p.on_frontier), key=lambda p: p.cost)

    def best_at(self, budget: float) -> FrontierPoint | None:
        """The most accurate point that costs at most `budget` (None: nothing fits)."""
        fits = [p for p in self.frontier() if p.cost <= budget]
        return fits[-1] if fits else None


def pareto(cost: FloatArray, accuracy: FloatArray) -> np.ndarray:
    """Which points no other point beats (cheaper or as cheap, and more accurate; or as
    accurate and cheaper). Ties in both keep every tied point."""
    c = np.asarray(cost, dtype=np.float64)
    a = np.asarray(accuracy, dtype=np.float64)
    out = np.ones(len(c), dtype=bool)
    for i in range(len(c)):
        dominated = ((c <= c[i]) & (a > a[i])) | ((c < c[i]) & (a >= a[i]))
        out[i] = not bool(dominated.any())
    return out


@kept_per_content
def frontier_view(
    store: Store,
    info: DatasetInfo,
    verifier: str,
    config: EvalConfig,
    *,
    strategies: Sequence[str] = DEFAULT_FRONTIER_STRATEGIES,
    unit: str = "tokens",
    params: Mapping[str, float] | None = None,
    llms: Sequence[str] | None = None,
    progress: ProgressFn | None = None,
) -> FrontierView:
    """`params`: parameters per LLM (for FLOPs = 2 x parameters x tokens)."""
    if unit not in UNITS:
        raise ViewError(f"the cost unit must be one of {', '.join(UNITS)}, got {unit!r}")
    chosen = list(llms or info.llms)
    if len(chosen) < 2:
        raise ViewError("a compute frontier compares at least two LLMs")
    if verifier not in info.verifiers:
        raise ViewError(f"dataset {info.name!r} has no verifier {verifier!r}")
    issues: list[Issue] = []
    pairs = []
    for k, llm in enumerate(chosen):
        if progress is not None:
            progress(f"curves of {llm}", k, len(chosen))
        pair = load_pair(store, info, llm, verifier, config.reduction)
        if unit != "samples" and not has_tokens(pair):
            raise ViewError(f"{llm} has responses without token counts: no {unit} axis")
        if unit == "flops" and (params is None or llm not in params):
            raise ViewError(f"no parameter count for {llm}: FLOPs need one per LLM")
        res = pair_curves(store, info, llm, verifier, strategies, config)
        for name, why in res.skipped.items():
            issues.append(Issue("unfittable", llm, name, why))
        pairs.append((llm, pair, res))
    common = set(pairs[0][1].problem_ids)
    for _, pair, _ in pairs[1:]:
        common &= set(pair.problem_ids)
    if not common:
        raise ViewError("the LLMs answered no problem in common")
    ids = sorted(common)
    if any(len(p.problem_ids) != len(ids) for _, p, _ in pairs):
        issues.append(
            Issue("failed", detail=f"only the {len(ids)} problems every LLM answered are compared")
        )
    if len(ids) < MIN_PROBLEMS:
        issues.append(Issue("few_problems", value=float(len(ids))))
    rows: list[tuple[str, str, int, float, float, float, float]] = []
    for llm, pair, res in pairs:
        curves = res.curves
        index = {pid: i for i, pid in enumerate(curves.problem_ids)}
        cols = np.asarray([index[pid] for pid in ids], dtype=np.int64)
        budgets = [int(b) for b in curves.budgets]
        pidx = {pid: i for i, pid in enumerate(pair.problem_ids)}
        pcols = np.asarray([pidx[pid] for pid in ids], dtype=np.int64)
        base = "samples" if unit == "samples" else "tokens"
        cost = fixed_cost(pair, budgets, base)[:, pcols].mean(axis=1)
        if unit == "flops":
            assert params is not None
            cost = 2.0 * params[llm] * cost
        per = curves.per_problem[:, :, cols]  # (S, B, P common)
        _, lo, hi = bootstrap_mean_ci(per, config.n_boot, config.level, config.boot_seed)
        for s, name in enumerate(curves.strategies):
            for b, n in enumerate(budgets):
                rows.append(
                    (
                        llm,
                        name,
                        n,
                        float(cost[b]),
                        float(per[s, b].mean()),
                        float(lo[s, b]),
                        float(hi[s, b]),
                    )
                )
    # at N = 1 (and wherever strategies of one LLM tie) one point stands for all of them
    seen: set[tuple[str, int, float]] = set()
    unique = []
    for r in rows:
        key = (r[0], r[2], round(r[4], 12))
        if key not in seen:
            seen.add(key)
            unique.append(r)
    rows = unique
    on = pareto(np.array([r[3] for r in rows]), np.array([r[4] for r in rows]))
    points = tuple(
        FrontierPoint(m, s, n, c, acc, low, high, bool(f))
        for (m, s, n, c, acc, low, high), f in zip(rows, on, strict=True)
    )
    return FrontierView(
        dataset=info.name,
        verifier=verifier,
        unit=unit,
        n_problems=len(ids),
        points=points,
        level=config.level,
        issues=tuple(issues),
    )


__all__ = [
    "DEFAULT_FRONTIER_STRATEGIES",
    "UNITS",
    "FrontierPoint",
    "FrontierView",
    "frontier_view",
    "pareto",
]
