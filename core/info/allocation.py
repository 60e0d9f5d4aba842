"""What the allocation page shows: choosing the strategy per predicted-difficulty bin and
budget (two-fold cross-validation over problems) against every fixed strategy."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.evaluation.config import EvalConfig
from core.evaluation.pipeline import load_pair, pair_curves
from core.evaluation.stats import bootstrap_mean_ci, paired_difference_cis
from core.info.common import (
    MIN_BIN_PROBLEMS,
    Issue,
    ViewError,
    check_pair,
    curve_strategies,
    kept_per_content,
    pair_name,
    range_text,
    sample_issues,
)
from core.methods.registry import get_strategy, short_name
from core.store import DatasetInfo, Store
from core.studies.allocation import (
    Allocation,
    ChoiceSupport,
    choice_support,
    pair_allocation,
    predicted_difficulty,
)
from core.types import FloatArray, IntArray, TTSLabError

ProgressFn = Callable[[str, int, int], None]


@dataclass(frozen=True, eq=False)
class AllocationView:
    """Choosing the strategy per difficulty bin and budget (two-fold CV over problems)
    against every fixed strategy, on one pair's cross-fitted per-problem accuracies.

    Attributes:
        candidates, labels: the candidate strategies (S) and their labels.
        budgets: B budgets.
        curve, curve_low, curve_high: (B,) accuracy of the per-bin choice with a
            bootstrap interval over problems (the bins, folds and choices held fixed).
        fixed, fixed_low, fixed_high: (S, B) the same for every fixed strategy (one set
            of bootstrap resamples for all curves).
        best_fixed: (B,) index of the best fixed strategy at each budget (on all problems:
            chosen in hindsight, a demanding reference).
        gain, gain_low, gain_high: (B,) per-bin choice minus the best fixed strategy,
            with a paired bootstrap interval.
        edges: inner quantile edges of the predicted difficulty (mean verifier score).
        score_low, score_high, bin_size: (n_bins,) range of the mean (raw) scores in each
            bin and its number of problems.
        choice: (2, B, n_bins) index of the candidate applied to fold f's problems of a
            bin (chosen on the other fold's problems of that bin).
        bin_choice_accuracy: (B, n_bins) accuracy of the per-bin choice within each bin.
        bin_accuracy: (S, B, n_bins) accuracy of each fixed strategy within each bin.
        support: how firmly each choice was made (`ChoiceSupport`: the share of bootstrap
            resamples of the choosing problems that pick the same candidate, and the
            chosen candidate's margin over the runner-up with its interval).
    """

    dataset: str
    simulated: bool
    llm: str
    verifier: str
    candidates: tuple[str, ...]
    labels: tuple[str, ...]
    budgets: tuple[int, ...]
    n_bins: int
    curve: FloatArray
    curve_low: FloatArray
    curve_high: FloatArray
    fixed: FloatArray
    fixed_low: FloatArray
    fixed_high: FloatArray
    best_fixed: IntArray
    gain: FloatArray
    gain_low: FloatArray
    gain_high: FloatArray
    edges: FloatArray
    score_low: FloatArray
    score_high: FloatArray
    bin_size: IntArray
    choice: IntArray
    bin_choice_accuracy: FloatArray
    bin_accuracy: FloatArray
    allocation: Allocation
    support: ChoiceSupport
    level: float
    n_boot: int
    n_problems: int
    k: int
    n_subsets: int
    seed: int
    reduction: str
    from_cache: bool
    issues: tuple[Issue, ...] = ()
    lower_is_better: bool = False  # the verifier's raw scores (e.g. a length)

    @property
    def bin_order(self) -> str:
        """Which bin is which, in the scores as imported: bin 1 is always the predicted
        hardest, which is the lowest mean score, or the highest where lower is better."""
        if self.lower_is_better:
            return "bin 1 = highest mean score (lower is better here): the predicted hardest"
        return "bin 1 = lowest mean score: the predicted hardest"

    def score_range(self, k: int, sep: str = "–") -> str:
        """Bin k's mean scores, e.g. "0.12–0.45", or "22,251–27,209" for token counts:
        as many decimals as the scores' size needs (up to 4 where the two ends would
        otherwise read the same); "empty" for a bin without problems."""
        return range_text(float(self.score_low[k]), float(self.score_high[k]), sep)

    def bin_label(self, k: int) -> str:
        """E.g. "bin 1: mean score 0.12–0.45"."""
        return f"bin {k + 1}: mean score {self.score_range(k)}"

    def chosen(self, budget_index: int, k: int) -> str:
        """The strategy chosen for bin k at a budget: one name when both folds agree,
        else "A / B" (fold 1's choice / fold 2's)."""
        a, b = (short_name(self.candidates[int(self.choice[f, budget_index, k])]) for f in (0, 1))
        return a if a == b else f"{a} / {b}"

    def support_text(self, budget_index: int, k: int) -> str:
        """E.g. "62% / 80%": per fold, the share of bootstrap resamples of the problems
        that made the choice which make the same choice."""
        a, b = (f"{100 * self.support.support[f, budget_index, k]:.0f}%" for f in (0, 1))
        return f"{a} / {b}"

    def margin_text(self, budget_index: int, k: int) -> str:
        """Fold 1's margin of the chosen candidate over the runner-up, in points, with
        its interval ("tied" when another candidate scores the same on every problem)."""
        sp = self.support
        m, lo, hi = (100 * float(x[0, budget_index, k]) for x in (sp.margin, sp.low, sp.high))
        if max(abs(m), abs(lo), abs(hi)) < 1e-9:
            return "tied"
        return f"{m:+.1f} [{lo:+.1f}, {hi:+.1f}]"

    def bin_table(self, budget: int) -> pd.DataFrame:
        """One row per bin at `budget`: score range, problems, the choice (of fold 1 /
        fold 2 when they differ) with its bootstrap support and margin over the
        runner-up, the accuracy in % of the choice and of every candidate within the
        bin."""
        if budget not in self.budgets:
            raise ViewError(f"budget {budget} is not one of {self.budgets}")
        b = self.budgets.index(budget)
        rows = []
        for k in range(self.n_bins):
            row: dict[str, object] = {
                "bin": k + 1,
                "mean score": self.score_range(k, " – "),
                "problems": int(self.bin_size[k]),
                "chosen (fold 1 / fold 2)": self.chosen(b, k),
                "support": self.support_text(b, k),
                f"margin over runner-up, fold 1 ({round(100 * self.level)}% CI, points)": (
                    self.margin_text(b, k)
                ),
                "per-bin choice": 100 * float(self.bin_choice_accuracy[b, k]),
            }
            for s, name in enumerate(self.candidates):
                row[short_name(name)] = 100 * float(self.bin_accuracy[s, b, k])
            rows.append(row)
        return pd.DataFrame(rows)

    def curve_frame(self) -> pd.DataFrame:
        """One row per budget: the per-bin choice and every fixed strategy (fractions)."""
        df = pd.DataFrame(
            {
                "budget": list(self.budgets),
                "per-bin choice": self.curve,
                "per-bin choice low": self.curve_low,
                "per-bin choice high": self.curve_high,
                "best fixed": [self.candidates[int(i)] for i in self.best_fixed],
                "gain over best fixed": self.gain,
                "gain low": self.gain_low,
                "gain high": self.gain_high,
            }
        )
        for s, name in enumerate(self.candidates):
            df[name] = self.fixed[s]
        return df

    def to_frame(self) -> pd.DataFrame:
        """`Allocation.table()`: one row per (budget, bin, fold) with the choice and the
        bin's accuracies, plus the bin's mean-score range."""
        df = self.allocation.table()
        df.insert(2, "score_low", [float(self.score_low[k - 1]) for k in df["bin"]])
        df.insert(3, "score_high", [float(self.score_high[k - 1]) for k in df["bin"]])
        return df

    def to_csv(self) -> str:
        return str(self.to_frame().to_csv(index=False, float_format="%.6g"))


@kept_per_content
def allocation_view(
    store: Store,
    info: DatasetInfo,
    llm: str,
    verifier: str,
    candidates: Sequence[str],
    config: EvalConfig,
    n_bins: int = 4,
    seed: int = 0,
    *,
    progress: ProgressFn | None = None,
) -> AllocationView:
    """`core.studies.allocation.pair_allocation` on the pair's cross-fitted curves (shared
    with the budget page's cache), with bootstrap intervals over problems and per-bin
    summaries. Oracles are not candidates (they use the test labels); a candidate that
    cannot be fitted on the pair is dropped, with an issue."""
    check_pair(info, llm, verifier)
    asked = tuple(dict.fromkeys(candidates))
    oracles = [c for c in asked if get_strategy(c).oracle]
    names = [c for c in asked if c not in oracles]
    issues = [Issue("not_candidate", strategy=c) for c in oracles]
    if not names:
        raise ViewError("choose at least one candidate strategy that is not an oracle")
    where = pair_name(llm, verifier)
    try:
        res = pair_curves(
            store,
            info,
            llm,
            verifier,
            curve_strategies(names, info.has_truth),
            config,
            progress=progress,
        )
        for c in [c for c in names if c in res.skipped]:
            issues.append(Issue("unfittable", where, c, res.skipped[c]))
            names.remove(c)
        if not names:
            raise ViewError("no candidate strategy can be fitted on this pair")
        alloc = pair_allocation(
            store,
            info,
            llm,
            verifier,
            names,
            config,
            n_bins=n_bins,
            seed=seed,
            curve_set=curve_strategies(names, info.has_truth),
        )
        pair = load_pair(store, info, llm, verifier, config.reduction)
    except ViewError:
        raise
    except TTSLabError as exc:
        raise ViewError(f"({llm}, {verifier}): {exc}") from exc
    n_b = len(alloc.budgets)
    both = np.concatenate([alloc.per_problem[None], alloc.fixed], axis=0)  # (1 + S, B, P)
    est, low, high = bootstrap_mean_ci(
        both, n_boot=config.n_boot, level=config.level, seed=config.boot_seed
    )
    best = np.argmax(est[1:], axis=0)  # (B,) first maximum
    ref = alloc.fixed[best, np.arange(n_b), :]  # (B, P)
    d = paired_difference_cis(
        alloc.per_problem,
        ref,
        n_boot=config.n_boot,
        level=config.level,
        seed=config.boot_seed,
    )
    pred = predicted_difficulty(pair)
    n_s = len(names)
    score_low = np.full(n_bins, np.nan)
    score_high = np.full(n_bins, np.nan)
    bin_size = np.zeros(n_bins, dtype=np.int64)
    bin_choice = np.full((n_b, n_bins), np.nan)
    bin_acc = np.full((n_s, n_b, n_bins), np.nan)
    for k in range(n_bins):
        in_bin = alloc.bins == k
        bin_size[k] = int(in_bin.sum())
        if not in_bin.any():
            continue
        raw = -pred[in_bin] if pair.orientation == "lower" else pred[in_bin]  # as imported
        score_low[k] = float(raw.min())
        score_high[k] = float(raw.max())
        bin_choice[:, k] = alloc.per_problem[:, in_bin].mean(axis=1)
        bin_acc[:, :, k] = alloc.fixed[:, :, in_bin].mean(axis=2)
    if np.any(bin_size == 0):
        issues.append(Issue("empty_bins", where, value=float(np.count_nonzero(bin_size == 0))))
    support = choice_support(alloc, n_boot=config.n_boot, level=config.level, seed=config.boot_seed)
    smallest = int(support.n_problems.min())
    if smallest < MIN_BIN_PROBLEMS:
        issues.append(Issue("small_bins", where, detail=str(n_bins), value=float(smallest)))
    rc = res.curves
    issues += sample_issues(where, len(rc.problem_ids), config.folds, rc.budgets, rc.n_clipped)
    return AllocationView(
        dataset=info.name,
        simulated=info.simulated,
        llm=llm,
        verifier=verifier,
        candidates=tuple(names),
        labels=tuple(get_strategy(c).label for c in names),
        budgets=tuple(alloc.budgets),
        n_bins=n_bins,
        curve=np.asarray(est[0], dtype=np.float64),
        curve_low=np.asarray(low[0], dtype=np.float64),
        curve_high=np.asarray(high[0], dtype=np.float64),
        fixed=np.asarray(est[1:], dtype=np.float64),
        fixed_low=np.asarray(low[1:], dtype=np.float64),
        fixed_high=np.asarray(high[1:], dtype=np.float64),
        best_fixed=np.asarray(best, dtype=np.int64),
        gain=np.asarray(d.estimate, dtype=np.float64),
        gain_low=np.asarray(d.low, dtype=np.float64),
        gain_high=np.asarray(d.high, dtype=np.float64),
        edges=np.asarray(alloc.edges, dtype=np.float64),
        score_low=score_low,
        score_high=score_high,
        bin_size=bin_size,
        choice=np.asarray(alloc.choice, dtype=np.int64),
        bin_choice_accuracy=bin_choice,
        bin_accuracy=bin_acc,
        allocation=alloc,
        support=support,
        level=config.level,
        n_boot=config.n_boot,
        n_problems=len(alloc.problem_ids),
        k=config.folds,
        n_subsets=config.n_subsets,
        seed=seed,
        reduction=config.reduction,
        lower_is_better=pair.orientation == "lower",
        from_cache=res.from_cache,
        issues=tuple(issues),
    )


# --------------------------------------------------------------------------------------
# combined signals
# --------------------------------------------------------------------------------------


__all__ = ["AllocationView", "allocation_view"]
