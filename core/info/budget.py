"""What the budget-curve page shows: cross-fitted accuracy against N with bootstrap
intervals for chosen pairs and strategies, and the efficiency ratio of one strategy
against another."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from core.evaluation.config import EvalConfig
from core.evaluation.executors import RunLog, parse_executor
from core.evaluation.pipeline import PairCurves, pair_curves, precompute_curves
from core.evaluation.stats import EfficiencyResult, paired_difference_cis
from core.info.common import (
    Issue,
    ViewError,
    check_pair,
    curve_strategies,
    kept_per_content,
    pair_name,
    sample_issues,
)
from core.methods.registry import get_strategy
from core.store import DatasetInfo, Store
from core.types import FloatArray, IntArray, TTSLabError

ProgressFn = Callable[[str, int, int], None]


#: Pairs computed at once by `many_curves` (threads: the engine's kernels and most of
#: numpy run without the GIL).
PAIR_WORKERS = max(1, min(2, os.cpu_count() or 1))


def many_curves(
    store: Store,
    info: DatasetInfo,
    pairs: Sequence[tuple[str, str]],
    strategies: Sequence[str],
    config: EvalConfig,
    progress: ProgressFn | None,
    *,
    executor: str | None = None,
    run_log: RunLog | None = None,
) -> list[PairCurves]:
    """Cross-fitted curves of several pairs (the shared strategy set, see
    `curve_strategies`), `PAIR_WORKERS` pairs at a time, with progress over pairs, folds
    and strategies (reported from the calling thread).

    ``executor`` (`core.evaluation.executors`; None: ``TTSLAB_EXECUTOR``, else serial):
    on ``local[:N]`` or ``dask://HOST:PORT`` each uncached pair is one task run there,
    progress counts finished tasks, and retries and lost workers are added to
    ``run_log``; the results are the serial ones, bit for bit."""
    if not pairs:
        raise ViewError("choose at least one (LLM, verifier) pair")
    for m, v in pairs:
        check_pair(info, m, v)
    full = curve_strategies(strategies, info.has_truth)
    spec = parse_executor(executor)
    if spec.kind != "serial":
        try:
            precompute_curves(
                store, info, pairs, full, config, spec.text, progress=progress, run_log=run_log
            )
        except TTSLabError as exc:
            raise ViewError(str(exc)) from exc
    total = len(pairs)
    done = [0.0] * total
    stage = [""] * total

    def one(i: int, live: bool = False) -> PairCurves:
        m, v = pairs[i]

        def inner(what: str, k: int, n: int) -> None:  # in a worker: just record it
            done[i] = k / n if n else 1.0
            stage[i] = f"{pair_name(m, v)}: {what}"
            if live:
                report()

        try:
            out = pair_curves(store, info, m, v, full, config, progress=inner)
        except TTSLabError as exc:
            raise ViewError(f"({m}, {v}): {exc}") from exc
        done[i] = 1.0
        if live:
            report()
        return out

    def report() -> None:
        if progress is not None:
            busy = [s for s, d in zip(stage, done, strict=True) if s and d < 1.0]
            label = busy[0] if busy else "done"
            progress(label, round(1000 * sum(done)), 1000 * total)

    if PAIR_WORKERS == 1 or total == 1:  # in this thread: progress as it comes
        return [one(i, live=True) for i in range(total)]
    with ThreadPoolExecutor(max_workers=PAIR_WORKERS) as pool:
        futures = [pool.submit(one, i) for i in range(total)]
        pending = set(futures)
        while pending:
            _, pending = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
            report()
        return [f.result() for f in futures]


def pair_issues(res: PairCurves, wanted: Sequence[str]) -> list[Issue]:
    """What a reader of a pair's curves should know: strategies of `wanted` that could not
    be fitted, and a pair too small for the folds or budgets asked for."""
    where = pair_name(res.llm, res.verifier)
    c = res.curves
    return [
        *(Issue("unfittable", where, n, why) for n, why in res.skipped.items() if n in wanted),
        *sample_issues(where, len(c.problem_ids), res.config.folds, c.budgets, c.n_clipped),
        *(Issue("label_free", where, detail=note) for note in res.notes),
    ]


@dataclass(frozen=True, eq=False)
class BudgetCurve:
    """Mean accuracy of one strategy on one pair at each budget, with its interval."""

    llm: str
    verifier: str
    strategy: str
    label: str
    oracle: bool
    exact: bool
    budgets: IntArray
    accuracy: FloatArray
    low: FloatArray
    high: FloatArray
    #: with a baseline: accuracy minus the baseline's at each budget, and its paired
    #: bootstrap interval (both strategies on the same problems and subsets)
    gain: FloatArray | None = None
    gain_low: FloatArray | None = None
    gain_high: FloatArray | None = None


@dataclass(frozen=True)
class Efficiency:
    """How many samples strategy `a` needs to match `b` at `ref_budget` on one pair."""

    llm: str
    verifier: str
    a: str
    b: str
    ref_budget: int
    result: EfficiencyResult
    missing: str = ""  # a strategy that could not be fitted on the pair
    #: expected generated tokens per problem at A's budget and at the reference budget
    #: (interpolated on log2 N like the budget itself; None without token counts)
    tokens: tuple[float, float] | None = None


@dataclass(frozen=True, eq=False)
class BudgetView:
    dataset: str
    simulated: bool
    pairs: tuple[tuple[str, str], ...]
    strategies: tuple[str, ...]
    budgets: tuple[int, ...]
    curves: tuple[BudgetCurve, ...]
    efficiencies: tuple[Efficiency, ...]
    level: float
    n_subsets: int
    k: int
    reduction: str
    n_problems: int
    from_cache: tuple[bool, ...]
    issues: tuple[Issue, ...] = ()
    calibration: str = "labels"
    #: per pair: expected generated tokens per problem at each of the pair's budgets (its
    #: curves' `budgets`; None: no counts)
    tokens: tuple[FloatArray | None, ...] = ()
    #: per pair: majority vote over all of each problem's samples (the Best-of-infinity
    #: asymptote that majority approaches as N grows)
    asymptote: tuple[float, ...] = ()
    #: the strategy every curve's `gain` is measured against (None: no gains)
    baseline: str | None = None

    def curves_of(self, llm: str, verifier: str) -> tuple[BudgetCurve, ...]:
        """The pair's curves, in the order of `strategies` (unfittable ones missing)."""
        return tuple(c for c in self.curves if (c.llm, c.verifier) == (llm, verifier))

    def curve(self, llm: str, verifier: str, strategy: str) -> BudgetCurve:
        for c in self.curves:
            if (c.llm, c.verifier, c.strategy) == (llm, verifier, strategy):
                return c
        raise KeyError((llm, verifier, strategy))


@kept_per_content
def budget_view(
    store: Store,
    info: DatasetInfo,
    pairs: Sequence[tuple[str, str]],
    strategies: Sequence[str],
    config: EvalConfig,
    *,
    efficiency: tuple[str, str] | None = ("logit_wv", "vanilla_wv"),
    ref_budget: int | None = None,
    baseline: str | None = None,
    progress: ProgressFn | None = None,
) -> BudgetView:
    """Cross-fitted accuracy-vs-budget curves with bootstrap intervals (from the cache
    when present), and for each pair the budget at which ``efficiency[0]`` reaches
    ``efficiency[1]``'s accuracy at `ref_budget` (default: the largest budget). With a
    `baseline`, every curve also carries its gain over the baseline at each budget with a
    paired bootstrap interval over problems."""
    if not strategies:
        raise ViewError("choose at least one strategy")
    strategies = tuple(strategies)
    eff_names = tuple(efficiency) if efficiency is not None else ()
    extra = (baseline,) if baseline is not None else ()
    results = many_curves(store, info, pairs, (*strategies, *eff_names, *extra), config, progress)
    curves: list[BudgetCurve] = []
    effs: list[Efficiency] = []
    issues: list[Issue] = []
    for (m, v), res in zip(pairs, results, strict=True):
        iv = res.intervals
        b_arr = np.asarray(res.curves.budgets, dtype=np.int64)
        issues += pair_issues(res, (*strategies, *eff_names))
        base_pp = None
        if baseline is not None and baseline in res.curves.strategies:
            base_pp = np.asarray(
                res.curves.per_problem[res.curves.index(baseline)], dtype=np.float64
            )  # (B, P)
        for s in strategies:
            if s not in res.curves.strategies:
                continue
            j = res.curves.index(s)
            strat = get_strategy(s)
            gains: dict[str, FloatArray] = {}
            if base_pp is not None:
                own = np.asarray(res.curves.per_problem[j], dtype=np.float64)
                diff = paired_difference_cis(
                    own, base_pp, n_boot=config.n_boot, level=config.level, seed=config.boot_seed
                )
                gains = {
                    "gain": np.asarray(diff.estimate, dtype=np.float64),
                    "gain_low": np.asarray(diff.low, dtype=np.float64),
                    "gain_high": np.asarray(diff.high, dtype=np.float64),
                }
            curves.append(
                BudgetCurve(
                    llm=m,
                    verifier=v,
                    strategy=s,
                    label=strat.label,
                    oracle=strat.oracle,
                    exact=res.curves.exact[j],
                    budgets=b_arr,
                    accuracy=np.asarray(iv.estimate[j], dtype=np.float64),
                    low=np.asarray(iv.low[j], dtype=np.float64),
                    high=np.asarray(iv.high[j], dtype=np.float64),
                    **gains,
                )
            )
        if efficiency is not None:
            a, b = efficiency
            ref = ref_budget if ref_budget in res.curves.budgets else max(res.curves.budgets)
            missing = [x for x in (a, b) if x not in res.curves.strategies]
            if missing:
                r = EfficiencyResult(math.nan, None, math.nan, ref, False, "not fitted")
                effs.append(Efficiency(m, v, a, b, ref, r, missing=missing[0]))
                continue
            effs.append(Efficiency(m, v, a, b, ref, res.efficiency(a, b, ref)))
    tokens = [res.mean_tokens for res in results]
    asymptote = [res.full_majority for res in results]
    if any(t is not None for t in tokens):
        # each pair's tokens follow its own budgets (a pair with fewer samples has fewer)
        by_pair = {(m, v): res for (m, v), res in zip(pairs, results, strict=True)}
        effs = [
            _with_tokens(
                e,
                by_pair[(e.llm, e.verifier)].mean_tokens,
                [int(b) for b in by_pair[(e.llm, e.verifier)].curves.budgets],
            )
            for e in effs
        ]
    return BudgetView(
        dataset=info.name,
        simulated=info.simulated,
        pairs=tuple((m, v) for m, v in pairs),
        strategies=strategies,
        budgets=tuple(results[0].curves.budgets),
        curves=tuple(curves),
        efficiencies=tuple(effs),
        level=config.level,
        n_subsets=config.n_subsets,
        k=config.folds,
        reduction=config.reduction,
        n_problems=len(results[0].curves.problem_ids),
        from_cache=tuple(r.from_cache for r in results),
        issues=tuple(issues),
        calibration=config.calibration,
        tokens=tuple(tokens),
        asymptote=tuple(asymptote),
        baseline=baseline,
    )


def _with_tokens(e: Efficiency, tok: FloatArray | None, budgets: Sequence[int]) -> Efficiency:
    """`e` with the tokens at its budgets, interpolated on log2 N."""
    res = e.result
    if tok is None or e.missing or not res.reached or res.budget is None:
        return e
    logs = np.log2(np.asarray(budgets, dtype=np.float64))

    def at(n: float) -> float:
        return float(np.interp(np.log2(n), logs, tok))

    return replace(e, tokens=(at(float(res.budget)), at(float(e.ref_budget))))


def common_budgets(
    store: Store, info: DatasetInfo, llms: Sequence[str] | None = None
) -> tuple[int, ...]:
    """The budgets whose curves every one of `llms` (default: all of the dataset's) holds:
    1, 2, 4, ... and an LLM's own sample count, from each LLM's samples per problem (with
    80 samples for one LLM and 100 for another: 1 to 64; the mean, 90, is neither's)."""
    from core.evaluation import default_budgets

    chosen = [m for m in (llms if llms is not None else info.llms) if m in info.llms]

    def samples_per_llm() -> dict[str, Any]:
        summary = store.pair_summary(info)
        firsts = summary.groupby("llm")[["responses", "problems"]].first()
        return {
            str(m): max(1, math.ceil(float(r["responses"]) / float(r["problems"])))
            for m, r in firsts.iterrows()
        }

    # the one result cache (a page asks on every run; the query scans every score)
    per_llm, _ = store.cached(info, "samples_per_llm", {}, samples_per_llm)
    sizes = {int(per_llm[m]) for m in (chosen or info.llms) if m in per_llm}
    if not sizes:
        per = info.n_responses / max(info.n_problems * max(len(info.llms), 1), 1)
        sizes = {max(1, math.ceil(per))}
    common = set(default_budgets(min(sizes)))
    for n in sizes:
        common &= set(default_budgets(n))
    return tuple(sorted(common)) or (1,)


def warm_curves(
    store: Store,
    info: DatasetInfo,
    config: EvalConfig,
    *,
    llm_first: str | None = None,
    stop: Callable[[], bool] | None = None,
    progress: ProgressFn | None = None,
) -> int:
    """Compute into the result cache the cross-fitted curves of every pair of `info` with
    the default strategy set (what Compare, Budget curves and the explorer's contrasts
    read with default settings), one pair at a time in the order the pages open on:
    `llm_first`'s pairs (Compare, Budget curves, Adaptive sampling), then every LLM's
    pair with the first verifier (Compute frontier), then the rest; `stop()` is asked
    between pairs, `progress` is called within each pair (per fold and strategy; the
    dashboard's warm-up pauses there while a page opens). Returns how many pairs were
    computed (not already cached)."""
    from core.methods.registry import default_strategies

    strategies = default_strategies(simulated=info.has_truth)
    first_verifier = info.verifiers[0] if info.verifiers else None
    computed = 0
    for pair in sorted(info.pairs, key=lambda p: (p[0] != llm_first, p[1] != first_verifier)):
        if stop is not None and stop():
            break
        (res,) = many_curves(store, info, [pair], strategies, config, progress)
        computed += not res.from_cache
    return computed


__all__ = [
    "BudgetCurve",
    "BudgetView",
    "Efficiency",
    "budget_view",
    "common_budgets",
    "many_curves",
    "pair_issues",
    "warm_curves",
]
