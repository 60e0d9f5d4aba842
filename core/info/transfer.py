"""What the transfer page shows: weights calibrated on each source pair (rows) and
evaluated on each target pair (columns), as the gain over a baseline with paired intervals
(`core.studies.transfer`, each cell cached there)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.evaluation.config import EvalConfig
from core.evaluation.executors import RunLog, parse_executor
from core.info.common import Issue, ViewError, check_pair, dataset_label
from core.methods.registry import get_strategy, short_name
from core.store import DatasetInfo, Store
from core.studies.transfer import PairRef, TransferCell, precompute_transfer, transfer_cells
from core.types import BoolArray, FloatArray, IntArray, TTSLabError

ProgressFn = Callable[[str, int, int], None]


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
    issues: tuple[Issue, ...] = ()

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


def transfer_view(
    store: Store,
    sources: Sequence[PairRef],
    targets: Sequence[PairRef],
    strategy: str,
    baseline: str,
    budget: int,
    config: EvalConfig,
    *,
    progress: ProgressFn | None = None,
    executor: str | None = None,
    run_log: RunLog | None = None,
) -> TransferView:
    """The transfer matrix of `core.studies.transfer`: every cell from the cache or
    computed (cells with a common source share one offset search). A cell that cannot be
    computed is NaN, with an issue saying why.

    ``executor`` (None: ``TTSLAB_EXECUTOR``, else serial): on ``local[:N]`` or
    ``dask://HOST:PORT`` the uncached target columns are computed there first, one task
    each (`precompute_transfer`), with the serial path's cache keys."""
    sources, targets = tuple(sources), tuple(targets)
    if not sources or not targets:
        raise ViewError("choose at least one source and one target pair")
    strat, base = get_strategy(strategy), get_strategy(baseline)
    if strat.oracle:
        raise ViewError(f"{strat.label} is an oracle: it has no weights to transfer")
    if base.oracle:
        raise ViewError(f"the baseline must not be an oracle ({base.label} is one)")
    if budget < 1:
        raise ViewError(f"the budget must be >= 1, got {budget}")
    infos: dict[str, DatasetInfo] = {}
    for r in (*sources, *targets):
        if r.dataset not in infos:
            try:
                infos[r.dataset] = store.get_dataset(r.dataset)
            except TTSLabError as exc:
                raise ViewError(str(exc)) from exc
        check_pair(infos[r.dataset], r.llm, r.verifier)
    spec = parse_executor(executor)
    src = [(infos[r.dataset], r) for r in sources]
    tgt = [(infos[r.dataset], r) for r in targets]
    try:
        if spec.kind != "serial":
            precompute_transfer(
                store,
                src,
                tgt,
                strategy,
                baseline,
                budget,
                config,
                spec.text,
                progress=progress,
                run_log=run_log,
            )
        cells = transfer_cells(
            store, src, tgt, strategy, baseline, budget, config, progress=progress
        )
    except TTSLabError as exc:
        raise ViewError(str(exc)) from exc
    n_s, n_t = len(sources), len(targets)
    out = {k: np.full((n_s, n_t), np.nan) for k in ("acc", "gain", "low", "high")}
    base_acc = np.full(n_t, np.nan)
    t_budget = np.full(n_t, budget, dtype=np.int64)
    t_problems = np.zeros(n_t, dtype=np.int64)
    shared = np.zeros((n_s, n_t), dtype=bool)
    issues: list[Issue] = []
    for (i, j), cell in cells.items():
        where = f"{sources[i].label} → {targets[j].label}"
        if not isinstance(cell, TransferCell):
            issues.append(Issue("failed", where, strategy, cell))
            continue
        out["acc"][i, j] = cell.accuracy
        out["gain"][i, j] = cell.gain
        out["low"][i, j] = cell.low
        out["high"][i, j] = cell.high
        shared[i, j] = cell.shared
        base_acc[j] = cell.baseline_accuracy
        t_budget[j] = cell.budget
        t_problems[j] = cell.n_problems
    for j, t in enumerate(targets):
        if t_budget[j] < budget:
            issues.append(
                Issue("budget_clipped", t.label, detail=str(budget), value=float(t_budget[j]))
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
        level=config.level,
        k=config.folds,
        n_subsets=config.n_subsets,
        n_boot=config.n_boot,
        n_cached=sum(isinstance(c, TransferCell) and c.from_cache for c in cells.values()),
        issues=tuple(issues),
    )


__all__ = ["TransferView", "pair_ref_label", "transfer_view"]
