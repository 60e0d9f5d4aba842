"""Shared pieces of the info layer: its error, the issues a result can carry, and helpers.

The info layer says *what each page (or CLI table) shows*: one pure function per view
takes the store, a resolved `DatasetInfo`, the page's choices and one `EvalConfig`, asks
the evaluation and study layers for numbers (which are cached there), and returns a frozen
result of plain arrays. It writes no cache and no prose: what a reader should be told
(a strategy that could not be fitted, a budget clipped to the samples available...) is an
`Issue`, put into words by `core.reports`.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, is_dataclass, replace
from typing import Any, Literal, ParamSpec, TypeVar, cast

import numpy as np

from core.evaluation.config import EvalConfig
from core.methods.registry import default_strategies, get_strategy, strategy_names
from core.store import DatasetInfo, Store
from core.types import FloatArray, TTSLabError

P = ParamSpec("P")
R = TypeVar("R")

#: arguments of a view function that do not change what it returns
_NOT_KEYS = frozenset({"store", "info", "progress", "run_log"})


class _Unkeyable(Exception):
    pass


def _key_part(v: Any) -> str:
    """An exact text of an argument for a memory key (never one that two different values
    share: arrays by a digest of their bytes, configs by their digest)."""
    if v is None or isinstance(v, bool | int | float | str | enum.Enum):
        return repr(v)
    if isinstance(v, EvalConfig):
        return f"config:{v.digest()}"
    if isinstance(v, np.ndarray):
        digest = hashlib.blake2b(np.ascontiguousarray(v).tobytes(), digest_size=16).hexdigest()
        return f"array:{v.dtype}:{v.shape}:{digest}"
    if isinstance(v, Mapping):
        items = sorted((_key_part(k), _key_part(x)) for k, x in v.items())
        return "{" + ",".join(f"{k}:{x}" for k, x in items) + "}"
    if isinstance(v, list | tuple):
        return "(" + ",".join(_key_part(x) for x in v) + ")"
    if is_dataclass(v) and not isinstance(v, type):
        state = {f.name: getattr(v, f.name) for f in fields(v)}
        return f"{type(v).__qualname__}{_key_part(state)}"
    raise _Unkeyable(type(v).__name__)


def _kept(view: R) -> R:
    """A view kept in memory, as a later caller gets it: its `from_cache` (whether its
    numbers were computed now or read back) says read back."""
    got = getattr(view, "from_cache", None)
    if not is_dataclass(view) or isinstance(view, type) or got is None:
        return view
    again = True if isinstance(got, bool) else tuple(True for _ in got)
    return cast(R, replace(view, from_cache=again))


def kept_per_content(fn: Callable[P, R]) -> Callable[P, R]:
    """A view function `fn(store, info, ...)` whose result is kept in memory per dataset
    content (`Store.per_content`), keyed by its name and every other argument but
    `progress` and `run_log`: a view seen before (a control set back, a page revisited,
    another visitor on the same view) is not computed again, and says it was read back
    (`from_cache`). `fn` must be pure: what it returns depends on the dataset's content
    and its arguments only. A call with an argument that has no exact key (a frame, an
    object) is computed as usual."""
    sig = inspect.signature(fn)

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        bound = sig.bind(*args, **kwargs)
        bound.apply_defaults()
        given = bound.arguments
        store, info = given["store"], given["info"]
        if not isinstance(store, Store) or not isinstance(info, DatasetInfo):
            return fn(*args, **kwargs)
        try:
            key = f"{fn.__module__}.{fn.__qualname__}:" + ",".join(
                f"{k}={_key_part(v)}" for k, v in given.items() if k not in _NOT_KEYS
            )
        except _Unkeyable:
            return fn(*args, **kwargs)
        computed: list[bool] = []

        def compute() -> R:
            computed.append(True)
            return fn(*args, **kwargs)

        result: R = store.per_content(key, info, compute)
        return result if computed else _kept(result)

    return wrapper


IssueKind = Literal[
    "unfittable",  # a strategy could not be fitted (detail: why)
    "failed",  # a cell or pair could not be computed (detail: why)
    "budget_clipped",  # a budget above the samples available (value: the budget used)
    "budget_not_evaluated",  # a budget not among the evaluated ones (value: the one shown)
    "not_candidate",  # an oracle was asked for as a candidate
    "empty_bins",  # difficulty bins without problems
    "band_widened",  # the bootstrap band missed the fitted curve at `value` grid points
    "band_failed",  # bootstrap refits that failed (value: how many)
    "q_term",  # the vote adds a per-problem q/m term not drawn in w(s)
    "few_problems",  # value: problems of the pair (intervals and ratios are anecdotes)
    "few_responses",  # value: the smaller class's responses (detail: "correct/incorrect")
    "few_fold_problems",  # value: calibration problems per fold (detail: the folds)
    "short_problems",  # value: problems with fewer responses than budget `detail`
    "small_bins",  # value: problems in the smallest bin half that chooses (detail: bins)
    "overlay_failed",  # the label-free overlay could not be fitted (detail: why)
    "label_free",  # labels were inferred by EM (detail: its report)
]

#: Fewer correct (or incorrect) responses than this and a fitted weight function, with
#: where it is negative, rests on few points: warn.
MIN_CLASS_RESPONSES = 50
#: Fewer problems than this and every interval is wide: warn.
MIN_PROBLEMS = 30
#: Fewer calibration problems per fold than this and each fold's fit rests on little: warn.
MIN_FOLD_PROBLEMS = 20
#: A bin choice made on fewer problems than this is close to a coin flip: warn.
MIN_BIN_PROBLEMS = 10


@dataclass(frozen=True)
class Issue:
    """Something the reader of a result should know, as data (`core.reports` words it)."""

    kind: IssueKind
    where: str = ""  # the pair or cell concerned ("llm × verifier", "source → target")
    strategy: str = ""
    detail: str = ""
    value: float = 0.0


class ViewError(TTSLabError):
    """A view cannot be computed for these choices (unknown pair, unusable data...)."""


def parse_llm_params(items: Sequence[str]) -> dict[str, float]:
    """Parameter counts per LLM from "NAME=BILLIONS" items (a comma-separated line may hold
    several), for FLOPs = 2 x parameters x tokens."""
    out: dict[str, float] = {}
    for part in (x.strip() for item in items for x in item.split(",")):
        if not part:
            continue
        name, sep, num = part.rpartition("=")
        try:
            billions = float(num)
        except ValueError:
            billions = float("nan")
        if not sep or not name.strip() or not math.isfinite(billions) or billions <= 0:
            raise ViewError(f"parameter counts are LLM=BILLIONS (e.g. Qwen3-4B=4), got {part!r}")
        out[name.strip()] = billions * 1e9
    return out


def sample_issues(
    where: str, n_problems: int, folds: int, budgets: Sequence[int], n_clipped: Sequence[int]
) -> list[Issue]:
    """Warnings about a pair too small for what was asked: few problems, few calibration
    problems per fold, budgets above some problems' responses (`n_clipped`, per budget)."""
    out: list[Issue] = []
    if n_problems < MIN_PROBLEMS:
        out.append(Issue("few_problems", where, value=float(n_problems)))
    per_fold = n_problems * (folds - 1) / max(folds, 1)
    if per_fold < MIN_FOLD_PROBLEMS:
        out.append(Issue("few_fold_problems", where, detail=str(folds), value=per_fold))
    clipped = [(b, c) for b, c in zip(budgets, n_clipped, strict=False) if c > 0]
    if clipped:
        b, c = clipped[0]
        out.append(Issue("short_problems", where, detail=str(b), value=float(c)))
    return out


def check_pair(info: DatasetInfo, llm: str, verifier: str) -> None:
    if llm not in info.llms or verifier not in info.verifiers:
        raise ViewError(
            f"dataset {info.name!r} has no pair ({llm!r}, {verifier!r}); "
            f"LLMs: {', '.join(info.llms)}; verifiers: {', '.join(info.verifiers)}"
        )


def pair_name(llm: str, verifier: str) -> str:
    return f"{llm} × {verifier}"


def range_text(lo: float, hi: float, sep: str = "–") -> str:
    """A range of scores to read: "0.12–0.45", "22,251–27,209" (token counts). Decimals
    follow the size of the numbers (two below 10, one below 100, none above, with
    thousands separators), more (up to four) where both ends would otherwise read the
    same; "empty" where there is no range (NaN ends)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "empty"
    size = max(abs(lo), abs(hi))
    digits = 2 if size < 10 else 1 if size < 100 else 0
    while digits < 4 and lo != hi and f"{lo:,.{digits}f}" == f"{hi:,.{digits}f}":
        digits += 1
    return f"{lo:,.{digits}f}{sep}{hi:,.{digits}f}"


def dataset_label(name: str, simulated: bool) -> str:
    """The dataset's name, marked as simulated when it is (and its name does not say so)."""
    if simulated and "simulated" not in name.lower():
        return f"{name} (simulated)"
    return name


def curve_strategies(selected: Sequence[str], simulated: bool = True) -> tuple[str, ...]:
    """The strategy set to compute curves for: the default set when it covers the
    selection (so every page shares cached curves with ``ttslab curves``), else every
    registered strategy (on real data, without those that need a simulator's
    parameters)."""
    for s in selected:
        get_strategy(s)  # raises on unknown names
    defaults = default_strategies(simulated=simulated)
    if set(selected) <= set(defaults):
        return defaults
    return tuple(dict.fromkeys([*strategy_names(simulated=simulated), *selected]))


def negative_intervals(grid: FloatArray, w: FloatArray) -> tuple[tuple[float, float], ...]:
    """Maximal runs of the grid where w < 0, as (first, last) grid values."""
    neg = np.asarray(w) < 0
    out: list[tuple[float, float]] = []
    start: int | None = None
    for i, is_neg in enumerate(neg):
        if is_neg and start is None:
            start = i
        if not is_neg and start is not None:
            out.append((float(grid[start]), float(grid[i - 1])))
            start = None
    if start is not None:
        out.append((float(grid[start]), float(grid[-1])))
    return tuple(out)


__all__ = [
    "MIN_BIN_PROBLEMS",
    "MIN_FOLD_PROBLEMS",
    "MIN_PROBLEMS",
    "Issue",
    "IssueKind",
    "ViewError",
    "check_pair",
    "curve_strategies",
    "dataset_label",
    "negative_intervals",
    "pair_name",
    "parse_llm_params",
    "range_text",
    "sample_issues",
]
