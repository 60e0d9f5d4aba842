"""What the dashboard's transfer, allocation and combine pages show, without Streamlit.

Pure view functions in the manner of `core.views`: each takes the store and the page's
parameters, calls one core analysis and returns a frozen result object of plain arrays,
which `dashboard.figures` draws and the tests check directly.

* `transfer_view`: the calibrate-on-X / evaluate-on-Y matrix of `core.transfer`, one
  cell at a time (each cell cached in the store's result table, so adding a source or a
  target computes only the new cells), with compact axis labels and simulated flags.
* `allocation_view`: the per-difficulty-bin choice of strategy of
  `core.analysis.pair_allocation` (two-fold cross-validation over problems), its
  accuracy-vs-budget curve with a bootstrap interval over problems against every fixed
  strategy, the bins' score ranges and per-bin tables.
* `combine_view`: accuracy-vs-budget curves of majority vote, each signal alone, the sum
  of per-signal log likelihood ratios and the logistic combiner (`core.combine`), with
  bootstrap intervals (`core.stats.curve_cis`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pandas as pd

from core.allocation import Allocation, predicted_difficulty
from core.analysis import AnalysisError, load_pair_reduced, pair_allocation, pair_curves
from core.budget import CurveSet, make_subsets
from core.calibration import CalibrationError
from core.combine import combined_curves, load_multi
from core.stats import bootstrap_mean_ci, curve_cis, paired_difference_cis
from core.store import DatasetInfo, Store
from core.strategies import get_strategy
from core.transfer import PairRef, transfer_matrix
from core.types import BoolArray, FloatArray, IntArray, TTSLabError
from core.views import (
    AnalysisSettings,
    ViewError,
    _cached_arrays,
    _check_pair,
    curve_strategies,
    dataset_label,
    short_name,
)

__all__ = [
    "AllocationView",
    "CombineView",
    "TransferView",
    "allocation_view",
    "combine_view",
    "pair_ref_label",
    "transfer_view",
]

ProgressFn = Callable[[str, int, int], None]

#: Bump when a change here would alter cached payloads.
BEYOND_VERSION: Final = 1
_STORED_NOTE: Final = (
    "Uses each pair's stored score: the step-reduction setting does not apply to this page."
)


def _notify(progress: ProgressFn | None, stage: str, done: int, total: int) -> None:
    if progress is not None:
        progress(stage, done, total)


def pair_ref_label(ref: PairRef, simulated: bool = False) -> str:
    """ "dataset / LLM / verifier", the dataset marked as simulated when it is."""
    return f"{dataset_label(ref.dataset, simulated)} / {ref.llm} / {ref.verifier}"


def _compact_labels(
    refs: Sequence[PairRef], simulated: Sequence[bool]
) -> tuple[tuple[str, ...], str]:
    """Axis labels that keep only the parts in which the pairs differ, and the shared
    parts as one text ("" when nothing is shared). The LLM is kept when all is shared."""
    if not refs:
        return (), ""
    parts = [
        [dataset_label(r.dataset, s) for r, s in zip(refs, simulated, strict=True)],
        [r.llm for r in refs],
        [r.verifier for r in refs],
    ]
    same = [len(set(p)) == 1 for p in parts]
    if all(same):
        same[1] = False
    labels = tuple(
        " / ".join(parts[k][i] for k in range(3) if not same[k]) for i in range(len(refs))
    )
    names = ("dataset", "LLM", "verifier")
    common = " · ".join(f"{names[k]} {parts[k][0]}" for k in range(3) if same[k])
    return labels, common


# --------------------------------------------------------------------------------------
# calibration transfer
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class TransferView:
    """`strategy` calibrated on each source pair (rows) and evaluated on each target pair
    (columns) at one budget: accuracy, and the gain over `baseline` on the same target
    subsets with a paired bootstrap interval over the target's problems.

    Arrays are (sources, targets) unless noted; a cell that could not be computed is NaN
    and explained in `notes`. `shared[i, j]`: source and target share problems, so the
    target's problems were weighted by K-fold fits on the source restricted to the other
    folds' problems (the diagonal is ordinary cross-fitting).
    """

    strategy: str
    strategy_label: str
    baseline: str
    baseline_label: str
    budget: int  # requested
    sources: tuple[PairRef, ...]
    targets: tuple[PairRef, ...]
    source_simulated: tuple[bool, ...]
    target_simulated: tuple[bool, ...]
    source_labels: tuple[str, ...]  # compact: only the parts in which the sources differ
    target_labels: tuple[str, ...]
    source_common: str
    target_common: str
    accuracy: FloatArray
    baseline_accuracy: FloatArray  # (targets,)
    gain: FloatArray
    low: FloatArray
    high: FloatArray
    shared: BoolArray
    target_budget: IntArray  # (targets,) budget used (clipped to the samples available)
    target_problems: IntArray  # (targets,)
    level: float
    k: int
    n_subsets: int
    n_boot: int
    n_cached: int
    notes: tuple[str, ...] = ()

    @property
    def simulated(self) -> bool:
        """Whether any pair of the matrix comes from simulated data."""
        return any(self.source_simulated) or any(self.target_simulated)

    @property
    def diagonal(self) -> BoolArray:
        """(sources, targets): the cell evaluates a pair on itself."""
        return np.array([[s == t for t in self.targets] for s in self.sources], dtype=bool)

    def significant(self) -> BoolArray:
        """Cells whose gain interval excludes zero (False where there is no gain)."""
        with np.errstate(invalid="ignore"):
            return np.asarray((self.low > 0) | (self.high < 0), dtype=bool)

    def to_frame(self) -> pd.DataFrame:
        """Long table: one row per (source, target) cell, fractions (not points)."""
        rows = []
        sig = self.significant()
        for i, s in enumerate(self.sources):
            for j, t in enumerate(self.targets):
                rows.append(
                    {
                        "calibrated on": pair_ref_label(s, self.source_simulated[i]),
                        "evaluated on": pair_ref_label(t, self.target_simulated[j]),
                        "source_dataset": s.dataset,
                        "source_llm": s.llm,
                        "source_verifier": s.verifier,
                        "target_dataset": t.dataset,
                        "target_llm": t.llm,
                        "target_verifier": t.verifier,
                        "simulated": self.source_simulated[i] or self.target_simulated[j],
                        "strategy": self.strategy,
                        "baseline": self.baseline,
                        "budget": int(self.target_budget[j]),
                        "accuracy": float(self.accuracy[i, j]),
                        "baseline_accuracy": float(self.baseline_accuracy[j]),
                        "gain": float(self.gain[i, j]),
                        "gain_low": float(self.low[i, j]),
                        "gain_high": float(self.high[i, j]),
                        "excludes_zero": bool(sig[i, j]),
                        "shared_problems": bool(self.shared[i, j]),
                        "level": self.level,
                    }
                )
        return pd.DataFrame(rows)

    def display_frame(self) -> pd.DataFrame:
        """For a screen table: accuracies in %, gains in points with their interval; the
        pairs named by their compact labels (the shared parts are in `source_common` and
        `target_common`)."""
        df = self.to_frame()
        pct = round(100 * self.level)
        n_t = len(self.targets)
        return pd.DataFrame(
            {
                "calibrated on": [self.source_labels[r // n_t] for r in range(len(df))],
                "evaluated on": [self.target_labels[r % n_t] for r in range(len(df))],
                "N": df["budget"],
                f"{short_name(self.strategy)} (%)": 100 * df["accuracy"],
                f"{short_name(self.baseline)} (%)": 100 * df["baseline_accuracy"],
                "gain (points)": 100 * df["gain"],
                f"{pct}% interval (points)": [
                    f"[{100 * lo:+.1f}, {100 * hi:+.1f}]" if lo == lo else ""
                    for lo, hi in zip(df["gain_low"], df["gain_high"], strict=True)
                ],
                "interval excludes 0": df["excludes_zero"],
            }
        )

    def to_csv(self) -> str:
        return str(self.to_frame().to_csv(index=False, float_format="%.6g"))


def _transfer_cell(
    store: Store,
    source: PairRef,
    target: PairRef,
    strategy: str,
    baseline: str,
    budget: int,
    settings: AnalysisSettings,
) -> dict[str, Any]:
    tgt = store.load_pair(target.dataset, target.llm, target.verifier)
    mat = transfer_matrix(
        store,
        [source],
        [target],
        strategy=strategy,
        baseline=baseline,
        budget=budget,
        params=settings.params,
        k=settings.k,
        seed=settings.fold_seed,
        n_subsets=settings.n_subsets,
        n_boot=settings.n_boot,
        level=settings.level,
    )
    return {
        "accuracy": float(mat.accuracy[0, 0]),
        "baseline_accuracy": float(mat.baseline_accuracy[0]),
        "gain": float(mat.gain[0, 0]),
        "low": float(mat.low[0, 0]),
        "high": float(mat.high[0, 0]),
        "budget": min(budget, int(tgt.sizes().max())),
        "n_problems": tgt.n_problems,
    }


def transfer_view(
    store: Store,
    sources: Sequence[PairRef],
    targets: Sequence[PairRef],
    strategy: str = "logit_wv",
    baseline: str = "majority",
    budget: int = 16,
    settings: AnalysisSettings | None = None,
    *,
    progress: ProgressFn | None = None,
) -> TransferView:
    """The transfer matrix of `core.transfer.transfer_matrix`, computed (and cached) one
    cell at a time: every cell equals the matrix's, since each uses the target's own
    subsets, folds and bootstrap resamples (all seeded by ``settings.fold_seed``).

    A cell that cannot be computed (the strategy cannot be fitted on the source...) is
    NaN, with the reason in `notes`. Scores are each pair's stored score.
    """
    settings = settings or AnalysisSettings()
    sources, targets = tuple(sources), tuple(targets)
    if not sources or not targets:
        raise ViewError("choose at least one source and one target pair")
    strat, base = get_strategy(strategy), get_strategy(baseline)
    if strat.is_oracle:
        raise ViewError(f"{strat.label} is an oracle: it has no weights to transfer")
    if base.is_oracle:
        raise ViewError(f"the baseline must not be an oracle ({base.label} is one)")
    if budget < 1:
        raise ViewError(f"the budget must be >= 1, got {budget}")
    infos: dict[str, DatasetInfo] = {}
    problem_ids: dict[str, set[str]] = {}
    for r in (*sources, *targets):
        if r.dataset not in infos:
            try:
                infos[r.dataset] = store.get_dataset(r.dataset)
            except TTSLabError as exc:
                raise ViewError(str(exc)) from exc
            problem_ids[r.dataset] = set(store.problems(r.dataset)["problem_id"].astype(str))
        _check_pair(infos[r.dataset], r.llm, r.verifier)
    n_s, n_t = len(sources), len(targets)
    out = {k: np.full((n_s, n_t), np.nan) for k in ("acc", "gain", "low", "high")}
    base_acc = np.full(n_t, np.nan)
    t_budget = np.full(n_t, budget, dtype=np.int64)
    t_problems = np.zeros(n_t, dtype=np.int64)
    shared = np.zeros((n_s, n_t), dtype=bool)
    notes: list[str] = []
    n_cached = 0
    total = n_s * n_t
    for j, t in enumerate(targets):
        t_info = infos[t.dataset]
        for i, s in enumerate(sources):
            _notify(progress, f"{s.llm} → {t.llm}", j * n_s + i, total)
            shared[i, j] = bool(problem_ids[s.dataset] & problem_ids[t.dataset])
            s_info = infos[s.dataset]
            key = {
                "beyond": BEYOND_VERSION,
                "source": [s.dataset, s_info.content_sha256, s.llm, s.verifier],
                "target": [t.dataset, t.llm, t.verifier],
                "strategy": strategy,
                "baseline": baseline,
                "budget": budget,
                "params": settings.params.to_dict(),
                "k": settings.k,
                "seed": settings.fold_seed,
                "n_subsets": settings.n_subsets,
                "n_boot": settings.n_boot,
                "level": settings.level,
            }
            try:
                cell, hit = _cached_arrays(
                    store,
                    t_info,
                    "view_transfer_cell",
                    key,
                    lambda s=s, t=t: _transfer_cell(  # type: ignore[misc]
                        store, s, t, strategy, baseline, budget, settings
                    ),
                )
            except TTSLabError as exc:
                notes.append(f"{s.label} → {t.label}: {exc}")
                continue
            n_cached += int(hit)
            out["acc"][i, j] = float(cell["accuracy"])
            out["gain"][i, j] = float(cell["gain"])
            out["low"][i, j] = float(cell["low"])
            out["high"][i, j] = float(cell["high"])
            base_acc[j] = float(cell["baseline_accuracy"])
            t_budget[j] = int(cell["budget"])
            t_problems[j] = int(cell["n_problems"])
    _notify(progress, "done", total, total)
    if settings.reduction != "stored":
        notes.append(_STORED_NOTE)
    clipped = [t.label for j, t in enumerate(targets) if t_budget[j] < budget]
    if clipped:
        notes.append(
            f"N = {budget} exceeds the samples per problem of {', '.join(clipped)}: "
            "evaluated there at the largest budget available (see the table's N)."
        )
    s_sim = tuple(infos[r.dataset].simulated for r in sources)
    t_sim = tuple(infos[r.dataset].simulated for r in targets)
    s_labels, s_common = _compact_labels(sources, s_sim)
    t_labels, t_common = _compact_labels(targets, t_sim)
    return TransferView(
        strategy=strategy,
        strategy_label=strat.label,
        baseline=baseline,
        baseline_label=base.label,
        budget=budget,
        sources=sources,
        targets=targets,
        source_simulated=s_sim,
        target_simulated=t_sim,
        source_labels=s_labels,
        target_labels=t_labels,
        source_common=s_common,
        target_common=t_common,
        accuracy=out["acc"],
        baseline_accuracy=base_acc,
        gain=out["gain"],
        low=out["low"],
        high=out["high"],
        shared=shared,
        target_budget=t_budget,
        target_problems=t_problems,
        level=settings.level,
        k=settings.k,
        n_subsets=settings.n_subsets,
        n_boot=settings.n_boot,
        n_cached=n_cached,
        notes=tuple(notes),
    )


# --------------------------------------------------------------------------------------
# compute-optimal allocation by predicted difficulty
# --------------------------------------------------------------------------------------


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
        score_low, score_high, bin_size: (n_bins,) range of the mean scores in each bin
            and its number of problems.
        choice: (2, B, n_bins) index of the candidate applied to fold f's problems of a
            bin (chosen on the other fold's problems of that bin).
        bin_choice_accuracy: (B, n_bins) accuracy of the per-bin choice within each bin.
        bin_accuracy: (S, B, n_bins) accuracy of each fixed strategy within each bin.
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
    level: float
    n_boot: int
    n_problems: int
    k: int
    n_subsets: int
    seed: int
    reduction: str
    from_cache: bool
    notes: tuple[str, ...] = ()

    def bin_label(self, k: int) -> str:
        """E.g. "bin 1: mean score 0.12-0.45"."""
        return f"bin {k + 1}: mean score {self.score_low[k]:.2f}–{self.score_high[k]:.2f}"

    def chosen(self, budget_index: int, k: int) -> str:
        """The strategy chosen for bin k at a budget: one name when both folds agree,
        else "A / B" (fold 1's choice / fold 2's)."""
        a, b = (short_name(self.candidates[int(self.choice[f, budget_index, k])]) for f in (0, 1))
        return a if a == b else f"{a} / {b}"

    def bin_table(self, budget: int) -> pd.DataFrame:
        """One row per bin at `budget`: score range, problems, the choice (of fold 1 /
        fold 2 when they differ), the accuracy in % of the choice and of every candidate
        within the bin."""
        if budget not in self.budgets:
            raise ViewError(f"budget {budget} is not one of {self.budgets}")
        b = self.budgets.index(budget)
        rows = []
        for k in range(self.n_bins):
            row: dict[str, object] = {
                "bin": k + 1,
                "mean score": f"{self.score_low[k]:.3f} – {self.score_high[k]:.3f}",
                "problems": int(self.bin_size[k]),
                "chosen (fold 1 / fold 2)": self.chosen(b, k),
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
        df.insert(2, "score_low", [float(self.score_low[k]) for k in df["bin"]])
        df.insert(3, "score_high", [float(self.score_high[k]) for k in df["bin"]])
        return df

    def to_csv(self) -> str:
        return str(self.to_frame().to_csv(index=False, float_format="%.6g"))


def allocation_view(
    store: Store,
    dataset: str,
    llm: str,
    verifier: str,
    candidates: Sequence[str] = ("majority", "best_of_n", "vanilla_wv", "logit_wv", "kde_wv"),
    n_bins: int = 4,
    settings: AnalysisSettings | None = None,
    seed: int = 0,
    *,
    progress: ProgressFn | None = None,
) -> AllocationView:
    """`core.analysis.pair_allocation` on the pair's cross-fitted curves (shared with the
    budget page's cache), with bootstrap intervals over problems and per-bin summaries.

    Oracles are not candidates (they use the test labels); a candidate that cannot be
    fitted on the pair is dropped, with a note.
    """
    settings = settings or AnalysisSettings()
    info = store.get_dataset(dataset)
    _check_pair(info, llm, verifier)
    asked = tuple(dict.fromkeys(candidates))
    oracles = [c for c in asked if get_strategy(c).is_oracle]
    names = [c for c in asked if c not in oracles]
    notes = [f"{short_name(c)} is an oracle upper bound: not a candidate" for c in oracles]
    if not names:
        raise ViewError("choose at least one candidate strategy that is not an oracle")
    spec = settings.spec(dataset, llm, verifier, curve_strategies(names))
    try:
        res = pair_curves(store, spec, progress=progress)
        for c in [c for c in names if c in res.skipped]:
            notes.append(f"{short_name(c)} could not be fitted ({res.skipped[c]})")
            names.remove(c)
        if not names:
            raise ViewError("no candidate strategy can be fitted on this pair")
        alloc = pair_allocation(store, spec, names, n_bins=n_bins, seed=seed)
        pair = load_pair_reduced(store, dataset, llm, verifier, settings.reduction)
    except (AnalysisError, CalibrationError) as exc:
        raise ViewError(f"({llm}, {verifier}): {exc}") from exc
    except TTSLabError as exc:
        if isinstance(exc, ViewError):
            raise
        raise ViewError(str(exc)) from exc
    n_b = len(alloc.budgets)
    both = np.concatenate([alloc.per_problem[None], alloc.fixed], axis=0)  # (1 + S, B, P)
    est, low, high = bootstrap_mean_ci(
        both, n_boot=settings.n_boot, level=settings.level, seed=settings.subset_seed
    )
    best = np.argmax(est[1:], axis=0)  # (B,) first maximum
    ref = alloc.fixed[best, np.arange(n_b), :]  # (B, P)
    d = paired_difference_cis(
        alloc.per_problem,
        ref,
        n_boot=settings.n_boot,
        level=settings.level,
        seed=settings.subset_seed,
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
        score_low[k] = float(pred[in_bin].min())
        score_high[k] = float(pred[in_bin].max())
        bin_choice[:, k] = alloc.per_problem[:, in_bin].mean(axis=1)
        bin_acc[:, :, k] = alloc.fixed[:, :, in_bin].mean(axis=2)
    if np.any(bin_size == 0):
        notes.append(
            "Some bins are empty (many problems share one mean score): their choice falls "
            "back to the best candidate over all problems of the other fold."
        )
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
        level=settings.level,
        n_boot=settings.n_boot,
        n_problems=len(alloc.problem_ids),
        k=settings.k,
        n_subsets=settings.n_subsets,
        seed=seed,
        reduction=settings.reduction,
        from_cache=res.from_cache,
        notes=tuple(notes),
    )


# --------------------------------------------------------------------------------------
# combined signals
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class CombineView:
    """Cross-fitted accuracy-vs-budget curves of one LLM's responses weighted by several
    signals at once, against each signal alone and majority vote (common subsets).

    `strategies` are "majority", "kde_wv[<verifier>]" per signal, "sum_llr" and
    "logistic"; `kinds` says which is which ("baseline", "single", "combined"). Arrays
    are (S, B). `gain*`: each strategy minus the best single signal at that budget (the
    best chosen in hindsight on all problems), with a paired bootstrap interval.
    """

    dataset: str
    simulated: bool
    llm: str
    verifiers: tuple[str, ...]
    strategies: tuple[str, ...]
    labels: tuple[str, ...]
    kinds: tuple[str, ...]
    budgets: tuple[int, ...]
    accuracy: FloatArray
    low: FloatArray
    high: FloatArray
    best_single: IntArray  # (B,) index into `strategies`
    gain: FloatArray
    gain_low: FloatArray
    gain_high: FloatArray
    level: float
    n_boot: int
    n_problems: int
    k: int
    n_subsets: int
    order: str
    from_cache: bool
    notes: tuple[str, ...] = ()

    def to_frame(self) -> pd.DataFrame:
        """Long table: one row per strategy and budget (fractions)."""
        rows = []
        for s, name in enumerate(self.strategies):
            for b, n in enumerate(self.budgets):
                rows.append(
                    {
                        "strategy": name,
                        "label": self.labels[s],
                        "kind": self.kinds[s],
                        "budget": n,
                        "accuracy": float(self.accuracy[s, b]),
                        "low": float(self.low[s, b]),
                        "high": float(self.high[s, b]),
                        "best single signal": self.strategies[int(self.best_single[b])],
                        "gain over best single": float(self.gain[s, b]),
                        "gain low": float(self.gain_low[s, b]),
                        "gain high": float(self.gain_high[s, b]),
                    }
                )
        return pd.DataFrame(rows)

    def display_frame(self) -> pd.DataFrame:
        """Accuracy in % with its interval, one row per strategy, one column per budget."""
        data: dict[str, list[str]] = {"strategy": list(self.labels)}
        for b, n in enumerate(self.budgets):
            data[f"N = {n}"] = [
                f"{100 * self.accuracy[s, b]:.1f} [{100 * self.low[s, b]:.1f}, "
                f"{100 * self.high[s, b]:.1f}]"
                for s in range(len(self.strategies))
            ]
        return pd.DataFrame(data)

    def to_csv(self) -> str:
        return str(self.to_frame().to_csv(index=False, float_format="%.6g"))


def _encode_curveset(curves: CurveSet, labels: dict[str, str]) -> dict[str, Any]:
    meta = {
        "budgets": list(curves.budgets),
        "strategies": list(curves.strategies),
        "problem_ids": list(curves.problem_ids),
        "exact": list(curves.exact),
        "n_subsets": curves.n_subsets,
        "seed": curves.seed,
        "n_clipped": list(curves.n_clipped),
        "order": curves.order,
        "tie_break": curves.tie_break,
        "labels": labels,
    }
    return {
        "per_problem": curves.per_problem,
        "meta": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
    }


def _decode_curveset(arrays: dict[str, Any]) -> tuple[CurveSet, dict[str, str]]:
    meta = json.loads(bytes(np.asarray(arrays["meta"], dtype=np.uint8)).decode())
    curves = CurveSet(
        budgets=tuple(int(b) for b in meta["budgets"]),
        strategies=tuple(meta["strategies"]),
        problem_ids=tuple(meta["problem_ids"]),
        per_problem=np.asarray(arrays["per_problem"], dtype=np.float64),
        exact=tuple(bool(x) for x in meta["exact"]),
        n_subsets=int(meta["n_subsets"]),
        seed=int(meta["seed"]),
        n_clipped=tuple(int(x) for x in meta["n_clipped"]),
        order=str(meta["order"]),
        tie_break=str(meta["tie_break"]),
    )
    return curves, {str(k): str(v) for k, v in meta["labels"].items()}


def combine_view(
    store: Store,
    dataset: str,
    llm: str,
    verifiers: Sequence[str],
    settings: AnalysisSettings | None = None,
    *,
    progress: ProgressFn | None = None,
) -> CombineView:
    """`core.combine.combined_curves` for `llm` and >= 2 `verifiers` (K-fold
    cross-fitted, common subsets; prefixes in sampling order when the dataset's samples
    are not independent draws), with `core.stats.curve_cis` intervals. The curves are
    cached in the store's result table."""
    settings = settings or AnalysisSettings()
    vs = tuple(dict.fromkeys(verifiers))
    if len(vs) < 2:
        raise ViewError("choose at least two signals (verifiers) to combine")
    info = store.get_dataset(dataset)
    for v in vs:
        _check_pair(info, llm, v)
    order = "random" if info.iid else "sample"
    key = {
        "beyond": BEYOND_VERSION,
        "llm": llm,
        "verifiers": list(vs),
        "params": settings.params.to_dict(),
        "k": settings.k,
        "fold_seed": settings.fold_seed,
        "n_subsets": settings.n_subsets,
        "subset_seed": settings.subset_seed,
        "order": order,
    }

    def compute() -> dict[str, Any]:
        _notify(progress, "loading the signals", 0, 3)
        mp = load_multi(store, dataset, llm, vs)
        subsets = make_subsets(
            mp.base, None, n_subsets=settings.n_subsets, seed=settings.subset_seed, order=order
        )
        _notify(progress, f"cross-fitting {len(vs)} signals and 2 combiners", 1, 3)
        res = combined_curves(
            mp, settings.params, k=settings.k, seed=settings.fold_seed, subsets=subsets
        )
        return _encode_curveset(res.curves, res.labels)

    try:
        arrays, hit = _cached_arrays(store, info, "view_combined_curves", key, compute)
    except CalibrationError as exc:
        raise ViewError(
            f"cannot combine {', '.join(vs)} for {llm}: {exc}. Each signal is fitted on the "
            f"calibration problems of each of the {settings.k} cross-fitting folds; choose "
            "another LLM or other signals."
        ) from exc
    except TTSLabError as exc:
        raise ViewError(f"cannot combine {', '.join(vs)} for {llm}: {exc}") from exc
    _notify(progress, "bootstrap intervals", 2, 3)
    curves, labels = _decode_curveset(arrays)
    ci = curve_cis(curves, n_boot=settings.n_boot, level=settings.level, seed=settings.subset_seed)
    strategies = curves.strategies
    kinds = tuple(
        "baseline" if s == "majority" else "single" if s.startswith("kde_wv[") else "combined"
        for s in strategies
    )
    singles = np.array([i for i, kd in enumerate(kinds) if kd == "single"], dtype=np.int64)
    best = singles[np.argmax(ci.estimate[singles], axis=0)]  # (B,)
    n_b = len(curves.budgets)
    ref = curves.per_problem[best, np.arange(n_b), :]  # (B, P)
    d = paired_difference_cis(
        curves.per_problem,
        np.broadcast_to(ref, curves.per_problem.shape),
        n_boot=settings.n_boot,
        level=settings.level,
        seed=settings.subset_seed,
    )
    notes: list[str] = []
    if settings.reduction != "stored":
        notes.append(_STORED_NOTE)
    _notify(progress, "done", 3, 3)
    return CombineView(
        dataset=info.name,
        simulated=info.simulated,
        llm=llm,
        verifiers=vs,
        strategies=strategies,
        labels=tuple(labels.get(s, s) for s in strategies),
        kinds=kinds,
        budgets=tuple(curves.budgets),
        accuracy=np.asarray(ci.estimate, dtype=np.float64),
        low=np.asarray(ci.low, dtype=np.float64),
        high=np.asarray(ci.high, dtype=np.float64),
        best_single=np.asarray(best, dtype=np.int64),
        gain=np.asarray(d.estimate, dtype=np.float64),
        gain_low=np.asarray(d.low, dtype=np.float64),
        gain_high=np.asarray(d.high, dtype=np.float64),
        level=settings.level,
        n_boot=settings.n_boot,
        n_problems=len(curves.problem_ids),
        k=settings.k,
        n_subsets=settings.n_subsets,
        order=order,
        from_cache=hit,
        notes=tuple(notes),
    )
