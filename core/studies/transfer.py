"""Calibration transfer: weights fitted on one (dataset, LLM, verifier) used on another.

The matrix answers the reviewers' doubt about calibrated aggregation: do weights learned
on benchmark X or model X still help on Y? Each cell fits a strategy on the source pair
and evaluates it on the target pair, reporting its accuracy at a budget and the gain over
a baseline strategy on the same target subsets, with a paired bootstrap interval.

Honesty: when source and target share problems (two LLMs on the same benchmark, or the
diagonal), the source's labels on a problem would reveal that problem's answer, so the
target's problems are split into K folds and each fold is weighted by a fit on the source
restricted to the *other* folds' problems (`core.evaluation.transfer_folds`). Disjoint
problem sets (AIME 2024 -> AIME 2025) fit on the whole source.

Speed: every cell with the same source shares one offset search (`OffsetTuner`), sliced
for each fold and target. Each cell is cached in the store.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from core.evaluation.config import EvalConfig
from core.evaluation.crossfit import Fold, cross_fit, transfer_folds
from core.evaluation.engine import accuracy_curves, make_subsets
from core.evaluation.executors import RunLog, parse_executor, run_tasks
from core.evaluation.offsets import OffsetTuner
from core.evaluation.pipeline import (
    PairFiles,
    calibration_labels,
    fit_strategy,
    load_pair,
    materialize,
    pair_source,
)
from core.evaluation.stats import paired_difference_cis
from core.methods.params import CalibrationError
from core.methods.registry import get_strategy
from core.methods.transforms import auto_once
from core.store import DatasetInfo, Store
from core.types import PairData, TTSLabError, VoteInputs

ProgressFn = Callable[[str, int, int], None]


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

    @classmethod
    def parse(cls, text: str) -> PairRef:
        """ "DATASET/LLM/VERIFIER" (the dataset name may itself contain '/')."""
        parts = text.rsplit("/", 2)
        if len(parts) != 3 or not all(p.strip() for p in parts):
            raise TransferError(f"expected DATASET/LLM/VERIFIER, got {text!r}")
        return cls(*(p.strip() for p in parts))


def transfer_inputs(
    source: PairData,
    target: PairData,
    strategy: str,
    config: EvalConfig,
    *,
    tuner: OffsetTuner | None = None,
) -> VoteInputs:
    """Vote inputs for `target` from `strategy` fitted on `source` (folds if they share
    problems). `tuner` (on `source`) shares offset searches across calls."""
    strat = get_strategy(strategy)
    if strat.oracle:
        raise TransferError(f"{strategy} is an oracle and cannot be transferred")
    params = auto_once(config.params, source)
    folds = transfer_folds(source, target, config.folds, config.fold_seed)
    labelled = config.labelled_per_fold is None
    # the shared offset search reads the source's labels: only with labelled calibration
    shared = (tuner or OffsetTuner(source)) if labelled else None

    def fit_fold(fold: Fold) -> Callable[[str], VoteInputs]:
        def one(name: str) -> VoteInputs:
            calib, _ = calibration_labels(source.select(fold.train), params, config, fold.index)
            fitted = fit_strategy(
                strat,
                calib,
                params,
                reduction=config.reduction,
                tuner=shared,
                problems=fold.train if shared is not None else None,
            )
            return strat.vote_inputs(fitted, target.select(fold.test))

        return one

    cf = cross_fit(target, folds, [strategy], fit_fold)
    if strategy in cf.skipped:
        raise CalibrationError(cf.skipped[strategy])
    return cf.inputs[strategy]


@dataclass(frozen=True)
class TransferCell:
    """One cell: accuracy at `budget` of the strategy calibrated on the source, the
    baseline's on the target's own subsets, and the paired gain with its interval."""

    accuracy: float
    baseline_accuracy: float
    gain: float
    low: float
    high: float
    budget: int
    n_problems: int
    shared: bool
    from_cache: bool = False


def _baseline_inputs(
    target: PairData, baseline: str, config: EvalConfig, tuner: OffsetTuner
) -> VoteInputs:
    base = get_strategy(baseline)
    if base.needs_labels:
        return transfer_inputs(target, target, baseline, config, tuner=tuner)
    params = auto_once(config.params, target)
    return base.vote_inputs(fit_strategy(base, target, params), target)


def cell_key(
    s_info: DatasetInfo,
    s_ref: PairRef,
    t_ref: PairRef,
    strategy: str,
    baseline: str,
    budget: int,
    config: EvalConfig,
) -> dict[str, Any]:
    """The result-cache parameters of one cell (cached under the target's content)."""
    return {
        "source": [s_info.content_sha256, s_ref.llm, s_ref.verifier],
        "target": [t_ref.llm, t_ref.verifier],
        "strategy": get_strategy(strategy).key(config.params),
        "baseline": get_strategy(baseline).key(config.params),
        "budget": budget,
        "config": config.key(),
    }


def cell_payload(
    source: PairData,
    target: PairData,
    baseline_inputs: VoteInputs,
    strategy: str,
    budget: int,
    config: EvalConfig,
    tuner: OffsetTuner,
) -> dict[str, Any]:
    """The cacheable result of one cell: `strategy` fitted on `source` (`tuner`: its
    shared offset search), against the baseline's inputs on `target`."""
    vi = transfer_inputs(source, target, strategy, config, tuner=tuner)
    b = min(budget, int(target.sizes().max()))
    subsets = make_subsets(target, [b], n_subsets=config.n_subsets, seed=config.subset_seed)
    curves = accuracy_curves(
        target,
        {"baseline": baseline_inputs, "transferred": vi},
        subsets=subsets,
        tie_break=config.tie_break,
    )
    per = curves.per_problem[:, 0, :]
    d = paired_difference_cis(
        per[1], per[0], n_boot=config.n_boot, level=config.level, seed=config.boot_seed
    )
    return {
        "accuracy": float(per[1].mean()),
        "baseline_accuracy": float(per[0].mean()),
        "gain": float(d.estimate),
        "low": float(d.low),
        "high": float(d.high),
        "budget": b,
        "n_problems": target.n_problems,
        "shared": bool(set(source.problem_ids) & set(target.problem_ids)),
    }


@dataclass(frozen=True)
class TransferColumnTask:
    """One target's column of cells: a self-contained task for any executor
    (`core.evaluation.executors`), its pairs loaded or as their own files."""

    target: PairData | PairFiles
    sources: tuple[PairData | PairFiles, ...]
    strategy: str
    baseline: str
    budget: int
    config: EvalConfig


def transfer_column_payload(task: TransferColumnTask) -> dict[str, Any]:
    """Every cell of the task's column, by source: its payload, or ``{"error": why}``
    (a cell that cannot be computed; the serial path reports the same)."""
    target = materialize(task.target)
    config = task.config
    cells: list[dict[str, Any]] = []
    try:
        base = _baseline_inputs(target, task.baseline, config, OffsetTuner(target))
    except TTSLabError as exc:
        return {"cells": [{"error": str(exc)} for _ in task.sources]}
    for source in task.sources:
        try:
            pair = materialize(source)
            cells.append(
                cell_payload(
                    pair, target, base, task.strategy, task.budget, config, OffsetTuner(pair)
                )
            )
        except TTSLabError as exc:
            cells.append({"error": str(exc)})
    return {"cells": cells}


def _const(payload: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    return lambda: payload


def precompute_transfer(
    store: Store,
    sources: Sequence[tuple[DatasetInfo, PairRef]],
    targets: Sequence[tuple[DatasetInfo, PairRef]],
    strategy: str,
    baseline: str,
    budget: int,
    config: EvalConfig,
    executor: str | None,
    *,
    progress: ProgressFn | None = None,
    run_log: RunLog | None = None,
) -> set[int]:
    """Fill the result cache with every uncached cell on `executor`, one task per target
    column (`transfer_column_payload`), each cell stored under the serial path's key;
    returns the targets computed. Cells that cannot be computed are not stored: the
    serial pass that reads the matrix reports them."""

    def key(i: int, j: int) -> dict[str, Any]:
        (s_info, s_ref), (_, t_ref) = sources[i], targets[j]
        return cell_key(s_info, s_ref, t_ref, strategy, baseline, budget, config)

    todo = [
        j
        for j, (t_info, _) in enumerate(targets)
        if not all(
            store.has_cached(t_info, "transfer_cell", key(i, j)) for i in range(len(sources))
        )
    ]
    if not todo:
        return set()
    spec = parse_executor(executor)

    def task_of(j: int) -> Callable[[], TransferColumnTask]:
        def make() -> TransferColumnTask:
            t_info, t_ref = targets[j]
            return TransferColumnTask(
                pair_source(store, t_info, t_ref.llm, t_ref.verifier, config.reduction),
                tuple(
                    pair_source(store, s_info, s_ref.llm, s_ref.verifier, config.reduction)
                    for s_info, s_ref in sources
                ),
                strategy,
                baseline,
                budget,
                config,
            )

        return make

    def store_column(n: int, payload: dict[str, Any]) -> None:
        j = todo[n]
        for i, cell in enumerate(payload["cells"]):
            if "error" not in cell:
                store.cached(targets[j][0], "transfer_cell", key(i, j), _const(cell))

    def tick(done: int, total: int) -> None:
        if progress is not None:
            progress(f"{done} of {total} target columns computed ({spec.text})", done, total)

    _, log = run_tasks(
        spec,
        transfer_column_payload,
        [task_of(j) for j in todo],
        [f"column {targets[j][1].label}" for j in todo],
        on_done=store_column,
        progress=tick,
    )
    if run_log is not None:
        run_log.retried.extend(log.retried)
        run_log.lost_workers.extend(log.lost_workers)
    return set(todo)


def transfer_cells(
    store: Store,
    sources: Sequence[tuple[DatasetInfo, PairRef]],
    targets: Sequence[tuple[DatasetInfo, PairRef]],
    strategy: str,
    baseline: str,
    budget: int,
    config: EvalConfig,
    *,
    progress: ProgressFn | None = None,
) -> dict[tuple[int, int], TransferCell | str]:
    """Every (source i, target j) cell, from the cache or computed; a cell that cannot be
    computed is the reason why (a string)."""
    strat, base = get_strategy(strategy), get_strategy(baseline)
    if strat.oracle:
        raise TransferError(f"{strat.label} is an oracle: it has no weights to transfer")
    if base.oracle:
        raise TransferError(f"the baseline must not be an oracle ({base.label} is one)")
    if budget < 1:
        raise TransferError(f"the budget must be >= 1, got {budget}")
    pairs: dict[PairRef, PairData] = {}
    tuners: dict[PairRef, OffsetTuner] = {}
    baselines: dict[PairRef, VoteInputs] = {}

    def pair_of(info: DatasetInfo, ref: PairRef) -> PairData:
        if ref not in pairs:
            pairs[ref] = load_pair(store, info, ref.llm, ref.verifier, config.reduction)
        return pairs[ref]

    def tuner_of(info: DatasetInfo, ref: PairRef) -> OffsetTuner:
        if ref not in tuners:
            tuners[ref] = OffsetTuner(pair_of(info, ref))
        return tuners[ref]

    out: dict[tuple[int, int], TransferCell | str] = {}
    total = len(sources) * len(targets)
    for j, (t_info, t_ref) in enumerate(targets):
        for i, (s_info, s_ref) in enumerate(sources):
            if progress is not None:
                progress(
                    f"{s_ref.llm} / {s_ref.verifier} → {t_ref.llm} / {t_ref.verifier}",
                    j * len(sources) + i,
                    total,
                )
            key = cell_key(s_info, s_ref, t_ref, strategy, baseline, budget, config)

            def compute(
                s_info: DatasetInfo = s_info,
                s_ref: PairRef = s_ref,
                t_info: DatasetInfo = t_info,
                t_ref: PairRef = t_ref,
            ) -> dict[str, Any]:
                target = pair_of(t_info, t_ref)
                if t_ref not in baselines:
                    baselines[t_ref] = _baseline_inputs(
                        target, baseline, config, tuner_of(t_info, t_ref)
                    )
                return cell_payload(
                    pair_of(s_info, s_ref),
                    target,
                    baselines[t_ref],
                    strategy,
                    budget,
                    config,
                    tuner_of(s_info, s_ref),
                )

            try:
                payload, hit = store.cached(t_info, "transfer_cell", key, compute)
            except TTSLabError as exc:
                out[(i, j)] = str(exc)
                continue
            out[(i, j)] = TransferCell(
                accuracy=float(payload["accuracy"]),
                baseline_accuracy=float(payload["baseline_accuracy"]),
                gain=float(payload["gain"]),
                low=float(payload["low"]),
                high=float(payload["high"]),
                budget=int(payload["budget"]),
                n_problems=int(payload["n_problems"]),
                shared=bool(payload["shared"]),
                from_cache=hit,
            )
    if progress is not None:
        progress("done", total, total)
    return out


__all__ = [
    "PairRef",
    "TransferCell",
    "TransferColumnTask",
    "TransferError",
    "cell_key",
    "cell_payload",
    "precompute_transfer",
    "transfer_cells",
    "transfer_column_payload",
    "transfer_inputs",
]
