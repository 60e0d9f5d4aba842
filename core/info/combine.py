"""What the combine page shows: one LLM's responses weighted by several signals at once
(`core.studies.combine`) against each signal alone and majority vote."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.evaluation.config import EvalConfig
from core.evaluation.crossfit import kfold
from core.evaluation.pipeline import load_pair
from core.evaluation.stats import curve_cis, paired_difference_cis
from core.info.common import Issue, ViewError, check_pair, kept_per_content
from core.store import DatasetInfo, Store
from core.studies.combine import combined_curves
from core.types import FloatArray, IntArray, TTSLabError

ProgressFn = Callable[[str, int, int], None]


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
    issues: tuple[Issue, ...] = ()

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


def combine_obstacle(
    store: Store, info: DatasetInfo, llm: str, verifiers: Sequence[str], config: EvalConfig
) -> str | None:
    """Why combining these signals of `llm` cannot be computed, said before computing it
    (None when it can): fewer than two signals, or some cross-fitting fold whose
    calibration problems lack two correct and two incorrect responses (every labelled
    combiner fits a density per class there)."""
    vs = tuple(dict.fromkeys(verifiers))
    if len(info.verifiers) < 2:
        return (
            f"{info.name} has one signal per response ({info.verifiers[0]}): there is "
            "nothing to combine. Combining needs a dataset scored by two or more verifiers "
            "(or with other per-response signals, such as the response length, imported "
            "as verifiers)."
        )
    if len(vs) < 2:
        return "Choose at least two signals to combine."
    for v in vs:
        check_pair(info, llm, v)
    if config.labelled_per_fold is not None:
        return None  # labels are inferred; EM says itself when it cannot
    pair = load_pair(store, info, llm, vs[0], config.reduction)
    if pair.n_problems < config.folds:
        return (
            f"{llm} has {pair.n_problems} problems, fewer than the {config.folds} "
            "cross-fitting folds: choose another LLM or fewer folds."
        )
    n_correct = pair.n_correct()
    n_wrong = pair.sizes() - n_correct
    for fold in kfold(pair.n_problems, config.folds, config.fold_seed):
        c, w = int(n_correct[fold.train].sum()), int(n_wrong[fold.train].sum())
        if c < 2 or w < 2:
            return (
                f"Cannot combine signals for {llm} here: in cross-fitting fold "
                f"{fold.index + 1} of {config.folds} the calibration problems hold {c} correct "
                f"and {w} incorrect responses, and every labelled combiner needs at least 2 "
                "of each. Choose another LLM, fewer folds, or label-free calibration."
            )
    return None


@kept_per_content
def combine_view(
    store: Store,
    info: DatasetInfo,
    llm: str,
    verifiers: Sequence[str],
    config: EvalConfig,
    *,
    progress: ProgressFn | None = None,
) -> CombineView:
    """Cross-fitted curves of majority vote, each signal alone, the sum of per-signal log
    likelihood ratios and the logistic combiner, with bootstrap intervals, and each
    strategy's paired gain over the best single signal at every budget."""
    vs = tuple(dict.fromkeys(verifiers))
    if len(vs) < 2:
        raise ViewError("choose at least two signals (verifiers) to combine")
    for v in vs:
        check_pair(info, llm, v)
    try:
        res = combined_curves(store, info, llm, vs, config, progress=progress)
    except TTSLabError as exc:
        raise ViewError(
            f"cannot combine {', '.join(vs)} for {llm}: {exc}. Each signal is fitted on the "
            f"calibration problems of each of the {config.folds} cross-fitting folds; choose "
            "another LLM or other signals."
        ) from exc
    curves, labels = res.curves, res.labels
    ci = curve_cis(curves, n_boot=config.n_boot, level=config.level, seed=config.boot_seed)
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
        n_boot=config.n_boot,
        level=config.level,
        seed=config.boot_seed,
    )
    if progress is not None:
        progress("done", 1, 1)
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
        level=config.level,
        n_boot=config.n_boot,
        n_problems=len(curves.problem_ids),
        k=config.folds,
        n_subsets=config.n_subsets,
        order=curves.order,
        from_cache=res.from_cache,
    )


__all__ = [
    "CombineView",
    "combine_obstacle",
    "combine_view",
]
