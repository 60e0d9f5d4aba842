"""From the store to evaluated curves: load a pair, fit strategies (tuning offsets),
cross-fit them, evaluate them on common subsets, and cache the results.

* `load_pair`: a pair with its score reduced from step scores when asked.
* `fit_strategy`: a registry entry's fit plus, for offset strategies, the tuning of b.
* `crossfit_strategies`: the one cross-fitting path for registered strategies on one pair.
* `evaluate`: accuracy at every budget on common random subsets.
* `pair_curves` / `pair_inputs`: the above for one stored pair, in the result cache.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from core.evaluation.config import EvalConfig
from core.evaluation.crossfit import CrossFit, Fold, cross_fit, kfold
from core.evaluation.engine import CurveSet, accuracy_curves, make_subsets
from core.evaluation.executors import RunLog, parse_executor, run_tasks
from core.evaluation.offsets import OffsetTuner
from core.evaluation.stats import (
    CurveIntervals,
    EfficiencyResult,
    curve_cis,
    efficiency_from_curves,
)
from core.evaluation.stopping import fixed_cost, full_majority, has_tokens
from core.methods.fitted import FittedWeights
from core.methods.latent import LatentFit, label_free_pair
from core.methods.params import CalibrationError, StrategyParams
from core.methods.reduce import reduce_steps
from core.methods.registry import Strategy, get_strategy
from core.methods.transforms import auto_once, resolve_orientation
from core.parts import Part, PartsError
from core.store import DatasetInfo, Store, read_pair_parts, read_steps_parts
from core.types import FloatArray, IntArray, PairData, TTSLabError, VoteInputs

ProgressFn = Callable[[str, int, int], None]
T = TypeVar("T")


class AnalysisError(TTSLabError):
    """An analysis cannot run on this data (no step scores, too few problems...)."""


def _notify(progress: ProgressFn | None, stage: str, done: int, total: int) -> None:
    if progress is not None:
        progress(stage, done, total)


# --------------------------------------------------------------------------------------
# loading and fitting
# --------------------------------------------------------------------------------------


def load_pair(
    store: Store, info: DatasetInfo, llm: str, verifier: str, reduction: str = "stored"
) -> PairData:
    """The pair, its score recomputed from step scores by `reduction` ("stored" keeps the
    imported score)."""
    pair = store.load_pair(info, llm, verifier)
    truth = _truth(info, llm, verifier) if reduction in _EXACT_REDUCTIONS else None
    pair = replace(pair, orientation=_declared(info, verifier), truth=truth)
    if reduction == "stored":
        return pair
    return _reduced(pair, *store.load_steps(info, llm, verifier), reduction, info.name)


def _declared(info: DatasetInfo, verifier: str) -> str:
    if verifier in info.lower_is_better:
        return "lower"
    return "higher" if verifier in info.higher_is_better else "auto"


def _reduced(
    pair: PairData, values: FloatArray, offsets: IntArray, reduction: str, dataset: str
) -> PairData:
    if offsets.size < 2 or np.any(np.diff(offsets) == 0):
        raise AnalysisError(
            f"pair ({pair.llm}, {pair.verifier}) of {dataset!r} has responses without step "
            "scores; only the stored score can be used"
        )
    return replace(pair, score=reduce_steps(values, reduction, offsets))


@dataclass(frozen=True)
class PairFiles:
    """A pair of a Parquet-stored dataset as a task carries it: its own partition files,
    read where the task runs (`materialize`), so a worker loads its pair itself and the
    driver sends a file list, not the arrays. On a cluster the workers must see the files
    at the same paths (a shared or network file system)."""

    dataset: str
    dataset_id: str
    llm: str
    verifier: str
    parts: tuple[Part, ...]
    columns: tuple[str, ...]
    orientation: str
    reduction: str
    in_place: bool


def pair_source(
    store: Store, info: DatasetInfo, llm: str, verifier: str, reduction: str = "stored"
) -> PairData | PairFiles:
    """What a task for this pair carries: its partition files when the dataset keeps its
    rows in Parquet (and no simulator truth rides along), else the loaded pair."""
    if info.storage == "table" or (info.has_truth and reduction in _EXACT_REDUCTIONS):
        return load_pair(store, info, llm, verifier, reduction)
    store.check_pair(info, llm, verifier)
    parts, columns = store.pair_parts(info, llm, verifier)
    return PairFiles(
        info.name,
        info.dataset_id,
        llm,
        verifier,
        tuple(parts),
        tuple(columns),
        _declared(info, verifier),
        reduction,
        info.storage == "in-place",
    )


def materialize(source: PairData | PairFiles) -> PairData:
    """The pair itself: loaded from its own files (the same query and arrays as
    `load_pair`) when the task carries them."""
    if isinstance(source, PairData):
        return source
    try:
        pair = read_pair_parts(
            source.parts,
            source.columns,
            dataset=source.dataset,
            dataset_id=source.dataset_id,
            llm=source.llm,
            verifier=source.verifier,
            in_place=source.in_place,
        )
        pair = replace(pair, orientation=source.orientation, truth=None)
        if source.reduction == "stored":
            return pair
        steps = read_steps_parts(
            source.parts, source.columns, dataset=source.dataset, in_place=source.in_place
        )
    except PartsError as exc:
        raise PartsError(
            f"{exc} (read on host {socket.gethostname()}: on a cluster every worker must "
            "see the dataset's files at the same paths)"
        ) from None
    return _reduced(pair, *steps, source.reduction, source.dataset)


#: Step reductions that give back the simulator's score exactly (its step paths are
#: non-increasing and end at the score), so its true densities still apply.
_EXACT_REDUCTIONS = ("stored", "last", "min")


def _truth(info: DatasetInfo, llm: str, verifier: str) -> dict[str, Any] | None:
    """The simulator's parameters of this pair, recorded with a simulated dataset."""
    truth = info.meta.get("truth") if info.simulated else None
    if not isinstance(truth, Mapping):
        return None
    pair = truth.get("pairs", {}).get(f"{llm}|{verifier}")
    model = truth.get("llms", {}).get(llm)
    if pair is None or model is None:
        return None
    return {**pair, **model}


def fit_strategy(
    strategy: Strategy,
    calib: PairData,
    params: StrategyParams,
    *,
    reduction: str = "stored",
    tuner: OffsetTuner | None = None,
    problems: IntArray | None = None,
) -> FittedWeights:
    """Fit `strategy` on the calibration pair `calib`, tuning its offset when it has one.

    `tuner` (with `problems`, the calibration problems as indices into the tuner's pair)
    shares the offset search's work across folds and targets; without it the search runs
    on `calib` alone. Both give the same b.
    """
    fitted = strategy.fit(calib, params)
    if strategy.offset is not None:
        if tuner is None:
            fitted = OffsetTuner(calib).tune(strategy, fitted)
        else:
            fitted = tuner.tune(strategy, fitted, problems)
    return replace(fitted, step_reduction=reduction)


def _strategies(names: Sequence[str]) -> list[Strategy]:
    out = [get_strategy(n) for n in names]
    if len({s.name for s in out}) != len(out):
        raise AnalysisError(f"duplicate strategies: {list(names)}")
    return out


def oriented_params(params: StrategyParams, calib: PairData) -> StrategyParams:
    """`params` with the signal's direction settled for these calibration problems (set,
    else declared at import, else estimated once here rather than by every strategy)."""
    if params.orientation != "auto":
        return params
    return replace(params, orientation=resolve_orientation("auto", calib))  # type: ignore[arg-type]


def _prefetch_offsets(
    tuner: OffsetTuner, strategies: list[Strategy], params: StrategyParams
) -> None:
    """Compute the offset objectives every fold will slice, for all offset strategies in
    one walk (a strategy whose fit fails here is left to fail, with its reason, per fold)."""
    items = []
    params = oriented_params(params, tuner.pair)
    for s in strategies:
        if s.offset is None:
            continue
        try:
            items.append((s, s.fit(tuner.pair, params)))
        except CalibrationError:
            continue
    tuner.prefetch(items)


def calibration_labels(
    calib: PairData,
    params: StrategyParams,
    config: EvalConfig,
    draw: int = 0,
    scores: FloatArray | None = None,
) -> tuple[PairData, LatentFit | None]:
    """The calibration pair with its labels as `config.calibration` says: its own
    ("labels"); inferred by EM from answers and scores ("none"); or K random problems
    labelled (drawn with seed (fold_seed, draw)) and the rest inferred ("semi:K"). The
    `LatentFit` tells how EM went (None when no label was inferred). `scores` (one column
    per signal) lets EM read several signals at once.

    Raises CalibrationError when EM cannot identify the model on these problems."""
    k = config.labelled_per_fold
    if k is None:
        return calib, None
    mask = np.zeros(calib.n_problems, dtype=bool)
    if k:
        rng = np.random.default_rng([config.fold_seed, draw, 17])
        mask[rng.permutation(calib.n_problems)[: min(k, calib.n_problems)]] = True
    return label_free_pair(calib, params, mask, scores)


def whole_pair_calibration(
    loaded: PairData, config: EvalConfig
) -> tuple[PairData, StrategyParams, LatentFit | None]:
    """For fits on every problem of a pair (plots, export, the calibrate table): the pair
    with its labels as `config.calibration` says, the parameters with "auto" transform and
    direction settled on it, and how EM went (None with labels)."""
    params = auto_once(config.params, loaded)
    pair, latent = calibration_labels(loaded, params, config)
    return pair, oriented_params(params, pair), latent


def _declared_or_higher(params: StrategyParams, pair: PairData) -> str:
    """The signal's direction without reading any label: as set, else as declared at
    import, else "higher"."""
    if params.orientation != "auto":
        return params.orientation
    return pair.orientation if pair.orientation in ("higher", "lower") else "higher"


def calibration_folds(n_problems: int, config: EvalConfig) -> tuple[Fold, ...]:
    """K folds over problems; one fold holding every problem out and fitting on all of
    them for label-free calibration (no label is read, so nothing can leak)."""
    if config.labelled_per_fold == 0:
        everything = np.arange(n_problems, dtype=np.int64)
        return (Fold(0, everything, everything),)
    return kfold(n_problems, config.folds, config.fold_seed)


def crossfit_strategies(
    pair: PairData,
    names: Sequence[str],
    config: EvalConfig,
    *,
    progress: ProgressFn | None = None,
) -> CrossFit:
    """K-fold cross-fitting of registered strategies on one pair: each fold's problems
    are weighted by fits on the other folds' problems ("auto" transform resolved once for
    the pair; offset searches share one per-problem objective). Oracles use the evaluated
    problems' own labels by design.

    `config.calibration` decides where calibration labels come from: the calibration
    problems' own ("labels"); none at all ("none": EM infers them from answers and scores,
    `core.methods.latent`, on every problem of the pair at once, since no label is read;
    one fold); or K labelled problems per fold with the rest inferred ("semi:K",
    cross-fitted). Strategies that need no labels are fitted as usual."""
    strategies = {s.name: s for s in _strategies(names)}
    params = auto_once(config.params, pair)
    if pair.n_problems < config.folds:
        raise AnalysisError(
            f"{config.folds}-fold cross-fitting needs at least {config.folds} problems; "
            f"the pair has {pair.n_problems}"
        )
    n_labelled = config.labelled_per_fold
    notes: list[str] = []
    folds = calibration_folds(pair.n_problems, config)
    shared_tuner = OffsetTuner(pair) if n_labelled is None else None
    if shared_tuner is not None:
        _prefetch_offsets(shared_tuner, list(strategies.values()), params)

    def calibration(fold: Fold) -> tuple[PairData | None, str]:
        """The fold's calibration pair with its labels as `config.calibration` says (None
        and the reason when label-free calibration cannot be fitted)."""
        try:
            inferred, fit = calibration_labels(pair.select(fold.train), params, config, fold.index)
        except CalibrationError as exc:
            notes.append(f"fold {fold.index + 1}: {exc}")
            return None, str(exc)
        if fit is not None:
            where = f"fold {fold.index + 1}: " if len(folds) > 1 else ""
            notes.append(where + fit.report())
        return inferred, ""

    def fit_fold(fold: Fold) -> Callable[[str], VoteInputs]:
        calib, why = calibration(fold)
        held = pair.select(fold.test)
        plain = calib if calib is not None else pair.select(fold.train)
        if calib is None and n_labelled is not None:
            # label-free calibration failed: the strategies that need no labels still run,
            # and their direction must not be estimated from the labels either
            direction = _declared_or_higher(params, pair)
            fold_params = replace(params, orientation=direction)  # type: ignore[arg-type]
        else:
            fold_params = oriented_params(params, plain)
        tuner = shared_tuner
        if tuner is None and calib is not None and n_labelled == 0:
            tuner = OffsetTuner(calib)  # one fold over every problem: the tuner's pair

        def one(name: str) -> VoteInputs:
            s = strategies[name]
            if calib is None:
                if s.needs_labels:
                    raise CalibrationError(why)
                fitted = fit_strategy(s, plain, fold_params, reduction=config.reduction)
            else:
                fitted = fit_strategy(
                    s,
                    calib,
                    fold_params,
                    reduction=config.reduction,
                    tuner=tuner,
                    problems=fold.train if tuner is not None else None,
                )
            return s.vote_inputs(fitted, held)

        return one

    cf = cross_fit(pair, folds, list(strategies), fit_fold, progress=progress)
    return replace(cf, notes=tuple(notes))


def evaluate(
    pair: PairData, inputs: Mapping[str, VoteInputs], config: EvalConfig, iid: bool = True
) -> CurveSet:
    """Accuracy of every strategy at every budget of `config` on common subsets."""
    order = config.resolved_order(iid)
    subsets = make_subsets(
        pair, config.budgets, n_subsets=config.n_subsets, seed=config.subset_seed, order=order
    )
    return accuracy_curves(pair, inputs, subsets=subsets, tie_break=config.tie_break)


# --------------------------------------------------------------------------------------
# cached pair analyses
# --------------------------------------------------------------------------------------


def _key(
    info: DatasetInfo, llm: str, verifier: str, names: Sequence[str], config: EvalConfig
) -> dict[str, Any]:
    return {
        "llm": llm,
        "verifier": verifier,
        "strategies": [get_strategy(n).key(config.params) for n in names],
        "config": config.key(),
        "order": config.resolved_order(info.iid),  # two imports of one file may differ in iid
    }


@dataclass(frozen=True, eq=False)
class PairCurves:
    """Cross-fitted accuracy-vs-budget curves of one pair, with bootstrap intervals."""

    dataset: str
    llm: str
    verifier: str
    config: EvalConfig
    curves: CurveSet
    intervals: CurveIntervals
    from_cache: bool = False
    skipped: Mapping[str, str] = field(default_factory=dict)  # strategy -> why not fitted
    notes: tuple[str, ...] = ()  # label-free calibration: how EM went, per fold
    #: expected generated tokens per problem at each budget (None: no token counts)
    mean_tokens: FloatArray | None = None
    #: majority vote over all of each problem's responses (the Best-of-infinity asymptote)
    full_majority: float = float("nan")

    def to_frame(self) -> pd.DataFrame:
        """Long table: llm, verifier, strategy, label, oracle, exact, budget, accuracy,
        low, high."""
        rows = []
        for s, name in enumerate(self.curves.strategies):
            strat = get_strategy(name)
            for b, n in enumerate(self.curves.budgets):
                rows.append(
                    {
                        "llm": self.llm,
                        "verifier": self.verifier,
                        "strategy": name,
                        "label": strat.label,
                        "oracle": strat.oracle,
                        "exact": self.curves.exact[s],
                        "budget": n,
                        "accuracy": float(self.intervals.estimate[s, b]),
                        "low": float(self.intervals.low[s, b]),
                        "high": float(self.intervals.high[s, b]),
                    }
                )
        return pd.DataFrame(rows)

    def efficiency(self, a: str, b: str, ref_budget: int | None = None) -> EfficiencyResult:
        """Budget at which `a` reaches `b`'s accuracy at `ref_budget` (default: largest),
        with a bootstrap interval of the ratio."""
        ref = ref_budget or max(self.curves.budgets)
        c = self.config
        return efficiency_from_curves(
            self.curves, a, b, ref, n_boot=c.n_boot, level=c.level, seed=c.boot_seed
        )


@dataclass(frozen=True)
class CurvesTask:
    """Everything one pair's curves are computed from: a self-contained task that runs in
    this process or on any executor's worker (`core.evaluation.executors`)."""

    pair: PairData | PairFiles
    names: tuple[str, ...]
    config: EvalConfig
    iid: bool


def curves_payload(task: CurvesTask, progress: ProgressFn | None = None) -> dict[str, Any]:
    """The cacheable result of one pair's curves: cross-fit, evaluate on common subsets,
    and the Best-of-infinity and token figures. Deterministic for a given task."""
    pair, config = materialize(task.pair), task.config
    cf = crossfit_strategies(pair, task.names, config, progress=progress)
    if not cf.inputs:
        raise AnalysisError(
            "no strategy can be fitted on this pair: "
            + "; ".join(f"{k}: {v}" for k, v in cf.skipped.items())
        )
    _notify(progress, "evaluating on common subsets", 1, 1)
    curves = evaluate(pair, cf.inputs, config, task.iid)
    extra: dict[str, Any] = {"full_majority": full_majority(pair)}
    if has_tokens(pair):
        extra["mean_tokens"] = fixed_cost(pair, curves.budgets, "tokens").mean(axis=1)
    return {
        **curves.to_payload(),
        "skipped": dict(cf.skipped),
        "notes": list(cf.notes),
        **extra,
    }


def curves_cache_params(
    info: DatasetInfo, llm: str, verifier: str, strategies: Sequence[str], config: EvalConfig
) -> dict[str, Any]:
    """The result-cache parameters of `pair_curves` for these arguments."""
    return _key(info, llm, verifier, list(dict.fromkeys(strategies)), config)


def pair_curves(
    store: Store,
    info: DatasetInfo,
    llm: str,
    verifier: str,
    strategies: Sequence[str],
    config: EvalConfig,
    *,
    progress: ProgressFn | None = None,
) -> PairCurves:
    """Cross-fitted accuracy-vs-budget curves of one pair, with bootstrap intervals.

    Each problem is weighted by a fit that never saw its labels; every strategy is
    evaluated on the same subsets; strategies that cannot be fitted are dropped with the
    reason. Datasets whose samples are not independent draws are evaluated on prefixes in
    sampling order (``order="auto"``). Cached in the store (`precompute_curves` fills
    the cache on an executor).
    """
    names = list(dict.fromkeys(strategies))

    def compute() -> dict[str, Any]:
        _notify(progress, "loading the pair", 0, 1)
        pair = load_pair(store, info, llm, verifier, config.reduction)
        return curves_payload(CurvesTask(pair, tuple(names), config, info.iid), progress)

    payload, hit = store.cached(
        info, "pair_curves", _key(info, llm, verifier, names, config), compute
    )
    curves = CurveSet.from_payload(payload)
    intervals = curve_cis(curves, n_boot=config.n_boot, level=config.level, seed=config.boot_seed)
    _notify(progress, "done", 1, 1)
    return PairCurves(
        dataset=info.name,
        llm=llm,
        verifier=verifier,
        config=config,
        curves=curves,
        intervals=intervals,
        from_cache=hit,
        skipped={str(k): str(v) for k, v in payload["skipped"].items()},
        notes=tuple(str(n) for n in payload.get("notes", ())),
        mean_tokens=(
            np.asarray(payload["mean_tokens"], dtype=np.float64)
            if "mean_tokens" in payload
            else None
        ),
        full_majority=float(payload.get("full_majority", float("nan"))),
    )


def precompute_pairs(
    store: Store,
    info: DatasetInfo,
    pairs: Sequence[tuple[str, str]],
    kind: str,
    params_of: Callable[[str, str], dict[str, Any]],
    task_of: Callable[[str, str], T],
    fn: Callable[[T], dict[str, Any]],
    executor: str | None,
    *,
    progress: ProgressFn | None = None,
    run_log: RunLog | None = None,
) -> set[tuple[str, str]]:
    """Compute the uncached pairs' results of `kind` into the result cache, one task per
    pair (``fn(task_of(llm, verifier))``, a self-contained task) on `executor`
    (`core.evaluation.executors`: serial, local[:N], dask://HOST:PORT), stored under the
    cache parameters ``params_of(llm, verifier)`` exactly as the serial path stores them.
    A pair's data is loaded here when its task is submitted, so only a few are in memory;
    progress counts finished tasks; retries and lost workers go to `run_log`. Returns the
    pairs computed (the others were cached). An analysis error of a pair names it."""
    todo = [
        (m, v) for m, v in dict.fromkeys(pairs) if not store.has_cached(info, kind, params_of(m, v))
    ]
    if not todo:
        return set()
    spec = parse_executor(executor)

    def store_result(i: int, payload: dict[str, Any]) -> None:
        m, v = todo[i]
        store.cached(info, kind, params_of(m, v), lambda: payload)

    def tick(done: int, total: int) -> None:
        _notify(progress, f"{done} of {total} pairs computed ({spec.text})", done, total)

    def thunk(m: str, v: str) -> Callable[[], T]:
        return lambda: task_of(m, v)

    _, log = run_tasks(
        spec,
        fn,
        [thunk(m, v) for m, v in todo],
        [f"({m}, {v})" for m, v in todo],
        on_done=store_result,
        progress=tick,
    )
    if run_log is not None:
        run_log.retried.extend(log.retried)
        run_log.lost_workers.extend(log.lost_workers)
    return set(todo)


def precompute_curves(
    store: Store,
    info: DatasetInfo,
    pairs: Sequence[tuple[str, str]],
    strategies: Sequence[str],
    config: EvalConfig,
    executor: str | None,
    *,
    progress: ProgressFn | None = None,
    run_log: RunLog | None = None,
) -> set[tuple[str, str]]:
    """`precompute_pairs` of `pair_curves`: what ``ttslab curves --executor E`` runs
    before it prints."""
    names = tuple(dict.fromkeys(strategies))
    return precompute_pairs(
        store,
        info,
        pairs,
        "pair_curves",
        lambda m, v: _key(info, m, v, names, config),
        lambda m, v: CurvesTask(
            pair_source(store, info, m, v, config.reduction), names, config, info.iid
        ),
        curves_payload,
        executor,
        progress=progress,
        run_log=run_log,
    )


@dataclass(frozen=True, eq=False)
class PairInputs:
    """Cross-fitted vote inputs of every response of one pair (weights from the fold that
    held its problem out)."""

    pair: PairData
    inputs: Mapping[str, VoteInputs]
    skipped: Mapping[str, str]
    fold_of: IntArray
    n_calib: IntArray  # per fold: calibration problems
    from_cache: bool


def pair_inputs(
    store: Store,
    info: DatasetInfo,
    llm: str,
    verifier: str,
    strategies: Sequence[str],
    config: EvalConfig,
    *,
    progress: ProgressFn | None = None,
) -> PairInputs:
    """`crossfit_strategies` for one stored pair, cached (the problem explorer)."""
    names = list(dict.fromkeys(strategies))
    pair = load_pair(store, info, llm, verifier, config.reduction)

    def compute() -> dict[str, Any]:
        cf = crossfit_strategies(pair, names, config, progress=progress)
        out: dict[str, Any] = {
            "fold_of": cf.fold_of,
            "n_calib": np.asarray([f.train.size for f in cf.folds], dtype=np.int64),
            "skipped": dict(cf.skipped),
            "best_of": {n: bool(v.best_of) for n, v in cf.inputs.items()},
            "ml_q": {n: bool(v.ml_q) for n, v in cf.inputs.items()},
            "ranked": {n: [v.ranked, v.ranked_param] for n, v in cf.inputs.items()},
        }
        for n, vi in cf.inputs.items():
            out[f"w:{n}"] = vi.weight
            if vi.g is not None:
                out[f"g:{n}"] = vi.g
            if vi.size_tables is not None and vi.size_index is not None:
                out[f"h:{n}"] = vi.size_tables
                out[f"hi:{n}"] = vi.size_index
        return out

    payload, hit = store.cached(
        info, "pair_inputs", _key(info, llm, verifier, names, config), compute
    )
    best_of: dict[str, bool] = payload["best_of"]
    ml_q: dict[str, bool] = payload["ml_q"]
    ranked: dict[str, list[Any]] = payload.get("ranked", {})

    def arr(key: str, dtype: type) -> Any:
        return np.asarray(payload[key], dtype=dtype) if key in payload else None

    inputs = {
        n: VoteInputs(
            weight=np.asarray(payload[f"w:{n}"], dtype=np.float64),
            g=arr(f"g:{n}", np.float64),
            best_of=bool(b),
            size_tables=arr(f"h:{n}", np.float64),
            size_index=arr(f"hi:{n}", np.int64),
            ml_q=bool(ml_q[n]),
            ranked=str(ranked.get(n, ["", 0.0])[0]),
            ranked_param=float(ranked.get(n, ["", 0.0])[1]),
        )
        for n, b in best_of.items()
    }
    return PairInputs(
        pair=pair,
        inputs=inputs,
        skipped={str(k): str(v) for k, v in payload["skipped"].items()},
        fold_of=np.asarray(payload["fold_of"], dtype=np.int64),
        n_calib=np.asarray(payload["n_calib"], dtype=np.int64),
        from_cache=hit,
    )


def fit_pair(
    store: Store,
    info: DatasetInfo,
    llm: str,
    verifier: str,
    strategy: str,
    config: EvalConfig,
) -> FittedWeights:
    """A strategy's weighting function fitted on every problem of the pair (for plots and
    export; evaluation cross-fits)."""
    strat = get_strategy(strategy)
    if strat.oracle:
        raise AnalysisError(f"{strategy} is an oracle: it has no weights to export")
    pair, params, _ = whole_pair_calibration(
        load_pair(store, info, llm, verifier, config.reduction), config
    )
    return fit_strategy(strat, pair, params, reduction=config.reduction)


def response_weights(fitted: FittedWeights, pair: PairData) -> FloatArray:
    """Weight of every response of `pair` under a fit (without any per-problem term)."""
    return get_strategy(fitted.kind).weights(fitted, fitted.transformed(pair))


__all__ = [
    "AnalysisError",
    "CalibrationError",
    "CurvesTask",
    "PairCurves",
    "PairInputs",
    "calibration_folds",
    "calibration_labels",
    "crossfit_strategies",
    "curves_cache_params",
    "curves_payload",
    "evaluate",
    "fit_pair",
    "fit_strategy",
    "load_pair",
    "pair_curves",
    "pair_inputs",
    "precompute_curves",
    "precompute_pairs",
    "response_weights",
    "whole_pair_calibration",
]
