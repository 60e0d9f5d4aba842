"""What the compare page shows: accuracy and gain over a baseline at one budget for pairs
x strategies, with paired bootstrap intervals over the same per-problem values."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.evaluation.config import EvalConfig
from core.evaluation.executors import RunLog
from core.evaluation.stats import efficiencies, paired_difference_cis
from core.info.budget import many_curves, pair_issues
from core.info.common import Issue, ViewError, kept_per_content, pair_name
from core.methods.registry import get_strategy
from core.store import DatasetInfo, Store
from core.types import BoolArray, FloatArray

ProgressFn = Callable[[str, int, int], None]


@dataclass(frozen=True, eq=False)
class CompareView:
    """Accuracy and gain over `baseline` at `budget`, arrays (pairs, strategies).

    Gains and their intervals come from the paired per-problem differences of the same
    cross-fitted curves (one set of bootstrap resamples of problems for both strategies).
    `ratio` is the efficiency ratio: the budget at which the strategy first reaches the
    baseline's accuracy at `budget`, as a fraction of `budget` (inf: never within the
    evaluated budgets), with its bootstrap interval (`ratio_high` inf when too many
    resamples never reach it).
    """

    dataset: str
    simulated: bool
    budget: int
    baseline: str
    pairs: tuple[tuple[str, str], ...]
    strategies: tuple[str, ...]
    labels: tuple[str, ...]
    oracle: tuple[bool, ...]
    accuracy: FloatArray
    acc_low: FloatArray
    acc_high: FloatArray
    gain: FloatArray
    gain_low: FloatArray
    gain_high: FloatArray
    ratio: FloatArray
    ratio_low: FloatArray
    ratio_high: FloatArray
    level: float
    n_problems: int
    n_subsets: int
    k: int
    reduction: str
    from_cache: tuple[bool, ...]
    issues: tuple[Issue, ...] = ()

    @property
    def pair_labels(self) -> tuple[str, ...]:
        return tuple(pair_name(m, v) for m, v in self.pairs)

    def significant(self) -> BoolArray:
        """Cells whose gain interval excludes zero (False where there is no gain)."""
        with np.errstate(invalid="ignore"):
            return np.asarray((self.gain_low > 0) | (self.gain_high < 0), dtype=bool)

    def to_frame(self) -> pd.DataFrame:
        """Long table: one row per pair and strategy (accuracies and gains as fractions)."""
        rows = []
        for i, (m, v) in enumerate(self.pairs):
            for j, s in enumerate(self.strategies):
                rows.append(
                    {
                        "dataset": self.dataset,
                        "simulated": self.simulated,
                        "llm": m,
                        "verifier": v,
                        "strategy": s,
                        "label": self.labels[j],
                        "oracle": self.oracle[j],
                        "budget": self.budget,
                        "accuracy": float(self.accuracy[i, j]),
                        "accuracy_low": float(self.acc_low[i, j]),
                        "accuracy_high": float(self.acc_high[i, j]),
                        "baseline": self.baseline,
                        "gain": float(self.gain[i, j]),
                        "gain_low": float(self.gain_low[i, j]),
                        "gain_high": float(self.gain_high[i, j]),
                        "samples_ratio": float(self.ratio[i, j]),
                        "samples_ratio_low": float(self.ratio_low[i, j]),
                        "samples_ratio_high": float(self.ratio_high[i, j]),
                        "level": self.level,
                    }
                )
        return pd.DataFrame(rows)

    def display_frame(self) -> pd.DataFrame:
        """For a screen table: accuracy in %, gain in percentage points with its interval."""
        df = self.to_frame()
        pct = round(100 * self.level)
        return pd.DataFrame(
            {
                "pair": [pair_name(m, v) for m, v in zip(df["llm"], df["verifier"], strict=True)],
                "strategy": df["label"],
                "accuracy (%)": 100 * df["accuracy"],
                f"gain over {get_strategy(self.baseline).label} (points)": 100 * df["gain"],
                f"{pct}% interval (points)": [
                    # the baseline's gain over itself is 0 on every resample: no interval
                    "(the baseline)"
                    if s == self.baseline
                    else f"[{100 * lo:+.1f}, {100 * hi:+.1f}]"
                    for s, lo, hi in zip(
                        df["strategy"], df["gain_low"], df["gain_high"], strict=True
                    )
                ],
                "interval excludes 0": self.significant().reshape(-1),
                f"samples to match {get_strategy(self.baseline).short_name}@{self.budget}": [
                    # the baseline against itself matches at its own budget: nothing to say
                    "(the baseline)" if s == self.baseline else _ratio_cell(r, lo, hi)
                    for s, r, lo, hi in zip(
                        df["strategy"],
                        df["samples_ratio"],
                        df["samples_ratio_low"],
                        df["samples_ratio_high"],
                        strict=True,
                    )
                ],
            }
        )

    def to_csv(self) -> str:
        return str(self.to_frame().to_csv(index=False, float_format="%.6g"))


def _ratio_cell(r: float, lo: float, hi: float) -> str:
    """E.g. "38% [22%, 61%]" of the budget; "never" when not reached."""
    if math.isnan(r) and math.isnan(lo):
        return ""

    def pct(x: float) -> str:
        return "never" if math.isinf(x) or math.isnan(x) else f"{100 * x:.0f}%"

    return f"{pct(r)} [{pct(lo)}, {pct(hi)}]"


#: At least this share of problems whose answers all differ and majority vote is chance.
ALL_DISTINCT = 0.9


def _all_distinct(store: Store, info: DatasetInfo) -> float | None:
    """The share of problems whose answers all differ, when it makes votes meaningless."""
    share = store.all_distinct_share(info)
    return share if share == share and share >= ALL_DISTINCT else None


def default_baseline(store: Store, info: DatasetInfo) -> tuple[str, str]:
    """The baseline a comparison should default to, and why when it is not majority vote:
    where (almost) every problem's answers all differ, majority vote is a random pick and
    a gain over it means nothing; best-of-N (the reward model's own choice) is then the
    baseline."""
    share = _all_distinct(store, info)
    if share is not None:
        return "best_of_n", (
            f"In {share:.0%} of this dataset's problems the answers all differ, so majority "
            "vote is a random pick: the baseline is best-of-N (the verifier's own choice)."
        )
    return "majority", ""


def voting_note(store: Store, info: DatasetInfo) -> str:
    """Why votes over answers mean nothing on this dataset, or "" when they do: where
    (almost) every problem's answers all differ (e.g. RewardMATH's solutions, each its own
    answer), majority vote is a random pick and a weighted vote is the best-of-N choice."""
    share = _all_distinct(store, info)
    if share is not None:
        return (
            f"In {share:.0%} of this dataset's problems the answers all differ (each response "
            "is its own answer), so majority vote is a random pick and a weighted vote picks "
            "the best-scored response, as best-of-N does: read the verifiers against best-of-N "
            "here, not against majority vote."
        )
    return ""


@kept_per_content
def compare_view(
    store: Store,
    info: DatasetInfo,
    pairs: Sequence[tuple[str, str]],
    strategies: Sequence[str],
    budget: int,
    baseline: str,
    config: EvalConfig,
    *,
    progress: ProgressFn | None = None,
    run_log: RunLog | None = None,
) -> CompareView:
    """Accuracy at `budget` (clipped to the nearest evaluated budget not above it, with an
    issue saying so) and the gain over `baseline` with a paired bootstrap interval, for
    pairs x strategies. Curves are computed on ``TTSLAB_EXECUTOR`` (see `many_curves`;
    retries and lost workers go to `run_log`)."""
    strategies = tuple(strategies)
    if not strategies:
        raise ViewError("choose at least one strategy")
    results = many_curves(
        store, info, pairs, (*strategies, baseline), config, progress, run_log=run_log
    )
    n_p, n_s = len(pairs), len(strategies)
    keys = ("acc", "lo", "hi", "gain", "glo", "ghi", "ratio", "rlo", "rhi")
    arrays = {k: np.full((n_p, n_s), np.nan) for k in keys}
    used: set[int] = set()
    n_problems = 0
    issues: list[Issue] = []
    for i, res in enumerate(results):
        cb = res.curves.budgets
        below = [b for b in cb if b <= budget]
        bud = max(below) if below else min(cb)
        used.add(bud)
        bi = cb.index(bud)
        issues += pair_issues(res, (*strategies, baseline))
        have = [j for j, s in enumerate(strategies) if s in res.curves.strategies]
        sel = [res.curves.index(strategies[j]) for j in have]
        per = np.asarray(res.curves.per_problem[sel, bi, :], dtype=np.float64)  # (S', P)
        n_problems = per.shape[1]
        arrays["acc"][i, have] = res.intervals.estimate[sel, bi]
        arrays["lo"][i, have] = res.intervals.low[sel, bi]
        arrays["hi"][i, have] = res.intervals.high[sel, bi]
        if baseline not in res.curves.strategies or not have:
            continue
        base = np.asarray(res.curves.per_problem[res.curves.index(baseline), bi, :])
        diff = paired_difference_cis(
            per,
            np.broadcast_to(base, per.shape),
            n_boot=config.n_boot,
            level=config.level,
            seed=config.boot_seed,
        )
        arrays["gain"][i, have] = diff.estimate
        arrays["glo"][i, have] = diff.low
        arrays["ghi"][i, have] = diff.high
        effs = efficiencies(
            res.curves,
            [strategies[j] for j in have],
            baseline,
            bud,
            n_boot=config.n_boot,
            level=config.level,
            seed=config.boot_seed,
        )
        for j in have:
            eff = effs[strategies[j]]
            arrays["ratio"][i, j] = eff.ratio if eff.reached else math.inf
            arrays["rlo"][i, j] = eff.low
            arrays["rhi"][i, j] = eff.high
    if len(used) != 1:
        raise ViewError(f"the pairs were evaluated at different budgets: {sorted(used)}")
    used_budget = used.pop()
    if used_budget != budget:
        issues.append(Issue("budget_not_evaluated", detail=str(budget), value=float(used_budget)))
    strats = [get_strategy(s) for s in strategies]
    return CompareView(
        dataset=info.name,
        simulated=info.simulated,
        budget=used_budget,
        baseline=baseline,
        pairs=tuple((m, v) for m, v in pairs),
        strategies=strategies,
        labels=tuple(s.label for s in strats),
        oracle=tuple(s.oracle for s in strats),
        accuracy=arrays["acc"],
        acc_low=arrays["lo"],
        acc_high=arrays["hi"],
        gain=arrays["gain"],
        gain_low=arrays["glo"],
        gain_high=arrays["ghi"],
        ratio=arrays["ratio"],
        ratio_low=arrays["rlo"],
        ratio_high=arrays["rhi"],
        level=config.level,
        n_problems=n_problems,
        n_subsets=config.n_subsets,
        k=config.folds,
        reduction=config.reduction,
        from_cache=tuple(r.from_cache for r in results),
        issues=tuple(issues),
    )


__all__ = [
    "CompareView",
    "compare_view",
    "default_baseline",
]
