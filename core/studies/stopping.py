"""Early stopping on one stored pair: every rule's replay next to the fixed-N curves of
majority vote and the calibrated strategies, on the same problems and the same random
orders. The replays are cached per dataset content, pair, rules, cap and config; the
fixed-N curves are the pair's budget curves (`pair_curves` with the default strategy
set: the one result the budget pages, ``ttslab curves`` and the dashboard's background
warm-up share)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.evaluation.config import EvalConfig
from core.evaluation.engine import CurveSet, make_subsets
from core.evaluation.executors import RunLog
from core.evaluation.pipeline import (
    PairFiles,
    _key,
    crossfit_strategies,
    load_pair,
    materialize,
    pair_curves,
    pair_source,
    precompute_curves,
    precompute_pairs,
)
from core.evaluation.stopping import RULES, StopCurve, get_rule, replay
from core.methods.params import CalibrationError
from core.methods.registry import calibrated_strategies, default_strategies
from core.store import DatasetInfo, Store
from core.types import PairData

ProgressFn = Callable[[str, int, int], None]

#: the calibrated strategy whose cross-fitted inputs drive the posterior stop
POSTERIOR_SOURCE = "posterior_vote"


@dataclass(frozen=True, eq=False)
class PairStopping:
    """Replays of the rules and fixed-N curves of one pair (same problems, same orders)."""

    pair: PairData
    curves: tuple[StopCurve, ...]
    fixed: CurveSet  # majority and the calibrated strategies that could be fitted
    skipped: dict[str, str]  # rule or strategy -> why it was left out
    notes: tuple[str, ...]
    from_cache: bool


@dataclass(frozen=True)
class StoppingTask:
    """Everything one pair's early-stopping replay is computed from (a self-contained
    task for any executor, `core.evaluation.executors`)."""

    pair: PairData | PairFiles
    names: tuple[str, ...]  # rules
    strategies: tuple[str, ...]
    config: EvalConfig
    cap: int | None
    iid: bool


def stopping_payload(task: StoppingTask, progress: ProgressFn | None = None) -> dict[str, Any]:
    """The cacheable result of one pair's replays (the posterior stop reads the
    cross-fitted posterior vote, fitted here)."""
    pair, names, config, cap = materialize(task.pair), task.names, task.config, task.cap
    skipped: dict[str, str] = {}
    notes: list[str] = []
    step = [0]
    total = len(names) + 1

    def note(stage: str) -> None:
        if progress is not None:
            progress(stage, step[0], total)
        step[0] += 1

    calibrated = None
    if task.strategies:
        note("fitting the posterior vote")
        try:
            cf = crossfit_strategies(pair, list(task.strategies), config)
            calibrated = cf.inputs.get(POSTERIOR_SOURCE)
            skipped.update(cf.skipped)
            notes.extend(cf.notes)
        except CalibrationError as exc:
            skipped[POSTERIOR_SOURCE] = str(exc)
            notes.append(str(exc))
    subsets = make_subsets(
        pair,
        config.budgets,
        n_subsets=config.n_subsets,
        seed=config.subset_seed,
        order=config.resolved_order(task.iid),
    )
    out: dict[str, Any] = {"skipped": skipped, "notes": notes, "rules": []}
    for name in names:
        note(f"replaying {RULES[name].label}")
        if name == "posterior" and calibrated is None:
            skipped[name] = skipped.get(POSTERIOR_SOURCE, "the posterior vote was not fitted")
            continue

        def tick(done: int, n: int, label: str = RULES[name].label) -> None:
            if progress is not None:
                progress(f"replaying {label}: {done} of {n} problems", step[0] - 1, total)

        c = replay(pair, name, subsets, cap=cap, calibrated=calibrated, progress=tick)
        out["rules"].append(name)
        out[f"c:{name}"] = c.credit
        out[f"s:{name}"] = c.samples
        out[f"t:{name}"] = c.tokens
        out[f"thr:{name}"] = np.asarray(c.thresholds)
        out[f"cap:{name}"] = c.cap
    return out


def curve_set(info: DatasetInfo) -> tuple[str, ...]:
    """The strategies of the pair's budget curves the fixed-N references come from (the
    default set, as the budget pages compute it)."""
    return default_strategies(simulated=info.has_truth)


def fixed_strategies(info: DatasetInfo) -> tuple[str, ...]:
    """Majority vote and the calibrated strategies of `curve_set`: the fixed-N
    references of a replay."""
    shown = curve_set(info)
    return ("majority", *(s for s in calibrated_strategies() if s in shown))


def stopping_params(
    info: DatasetInfo,
    llm: str,
    verifier: str,
    rules: Sequence[str],
    config: EvalConfig,
    cap: int | None,
) -> dict[str, Any]:
    """The result-cache parameters of the replays of `pair_stopping`."""
    names = [get_rule(r).name for r in dict.fromkeys(rules)]
    return _key(info, llm, verifier, _fitted(names), config) | {"rules": names, "cap": cap}


def _fitted(names: Sequence[str]) -> tuple[str, ...]:
    """The strategies a replay fits: the posterior vote, when the posterior stop is one."""
    return (POSTERIOR_SOURCE,) if "posterior" in names else ()


def stopping_task(
    store: Store,
    info: DatasetInfo,
    llm: str,
    verifier: str,
    rules: Sequence[str],
    config: EvalConfig,
    cap: int | None,
    *,
    remote: bool = False,
) -> StoppingTask:
    """The pair's task; `remote`: it carries the pair's files where the dataset keeps
    them in Parquet (`pair_source`), for a worker to read its own partition."""
    names = tuple(get_rule(r).name for r in dict.fromkeys(rules))
    load = pair_source if remote else load_pair
    pair = load(store, info, llm, verifier, config.reduction)
    return StoppingTask(pair, names, _fitted(names), config, cap, info.iid)


def pair_stopping(
    store: Store,
    info: DatasetInfo,
    llm: str,
    verifier: str,
    rules: Sequence[str],
    config: EvalConfig,
    *,
    cap: int | None = None,
    progress: ProgressFn | None = None,
) -> PairStopping:
    """Replay `rules` on one pair, beside majority vote and every calibrated strategy of
    the pair's budget curves at fixed N (same problems, same subsets and orders)."""
    fixed = pair_curves(store, info, llm, verifier, curve_set(info), config, progress=progress)
    task = stopping_task(store, info, llm, verifier, rules, config, cap)
    pair = materialize(task.pair)

    def compute() -> dict[str, Any]:
        return stopping_payload(task, progress)

    key = stopping_params(info, llm, verifier, rules, config, cap)
    payload, hit = store.cached(info, "stopping", key, compute)
    curves = tuple(
        StopCurve(
            rule=str(n),
            thresholds=tuple(float(x) for x in np.asarray(payload[f"thr:{n}"])),
            cap=int(payload[f"cap:{n}"]),
            credit=np.asarray(payload[f"c:{n}"], dtype=np.float64),
            samples=np.asarray(payload[f"s:{n}"], dtype=np.float64),
            tokens=np.asarray(payload[f"t:{n}"], dtype=np.float64),
        )
        for n in payload["rules"]
    )
    references = fixed_strategies(info)
    skipped = {s: why for s, why in fixed.skipped.items() if s in references}
    skipped.update({str(k): str(v) for k, v in payload["skipped"].items()})
    return PairStopping(
        pair=pair,
        curves=curves,
        fixed=fixed.curves.only(references),
        skipped=skipped,
        notes=tuple(dict.fromkeys([*fixed.notes, *(str(n) for n in payload["notes"])])),
        from_cache=hit and fixed.from_cache,
    )


def precompute_stopping(
    store: Store,
    info: DatasetInfo,
    pairs: Sequence[tuple[str, str]],
    rules: Sequence[str],
    config: EvalConfig,
    executor: str | None,
    *,
    cap: int | None = None,
    progress: ProgressFn | None = None,
    run_log: RunLog | None = None,
) -> set[tuple[str, str]]:
    """`precompute_pairs` of `pair_stopping` (its budget curves first, `precompute_curves`):
    what ``ttslab stopping --executor E`` runs before it prints."""
    curves = precompute_curves(
        store, info, pairs, curve_set(info), config, executor, progress=progress, run_log=run_log
    )
    return curves | precompute_pairs(
        store,
        info,
        pairs,
        "stopping",
        lambda m, v: stopping_params(info, m, v, rules, config, cap),
        lambda m, v: stopping_task(store, info, m, v, rules, config, cap, remote=True),
        stopping_payload,
        executor,
        progress=progress,
        run_log=run_log,
    )


__all__ = [
    "POSTERIOR_SOURCE",
    "PairStopping",
    "StoppingTask",
    "pair_stopping",
    "precompute_stopping",
    "stopping_payload",
]
