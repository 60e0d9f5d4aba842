"""The one cross-fitting path: folds over problems, per-fold fits, stitched vote inputs.

Every number the tool reports for a calibrated strategy is computed on problems whose
labels its weights never saw. `cross_fit` is how: the evaluated pair's problems are split
into folds; for each fold a caller-supplied function fits on the fold's calibration
problems (`Fold.train`, indices into the *calibration* pair, which is the evaluated pair
itself for ordinary cross-fitting and another pair for transfer) and returns the vote inputs
of the fold's held-out problems (`Fold.test`); the parts are stitched back into one
`VoteInputs` per strategy over the whole evaluated pair. Curves, compare, transfer,
allocation, combine and the problem explorer all go through it.

A strategy whose fit fails on some fold (`CalibrationError`: too few labels of a class...)
is dropped with the reason, and the others go on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from core.methods.params import CalibrationError
from core.types import FloatArray, IntArray, PairData, VoteInputs


@dataclass(frozen=True, eq=False)
class Fold:
    """One fold: fit on `train` (calibration pair), weight the `test` problems (evaluated
    pair)."""

    index: int
    train: IntArray
    test: IntArray


def kfold(n_problems: int, k: int, seed: int) -> tuple[Fold, ...]:
    """K folds of near-equal size over the problems of one pair (random partition, sorted
    indices); each fold calibrates on all the other problems."""
    if k < 2:
        raise CalibrationError(f"cross-fitting needs k >= 2, got {k}")
    if n_problems < k:
        raise CalibrationError(f"{n_problems} problems cannot be split into {k} folds")
    perm = np.random.default_rng(seed).permutation(n_problems)
    everything = np.arange(n_problems, dtype=np.int64)
    out = []
    for i, part in enumerate(np.array_split(perm, k)):
        test = np.sort(part).astype(np.int64)
        out.append(Fold(i, np.setdiff1d(everything, test), test))
    return tuple(out)


def transfer_folds(source: PairData, target: PairData, k: int, seed: int) -> tuple[Fold, ...]:
    """Folds for weights fitted on `source` and used on `target`.

    Disjoint problem sets: one fold, all of the source calibrates all of the target. Shared
    problems (two LLMs on one benchmark, or a pair on itself): the target's problems are
    split into K folds and each is weighted by a fit on the source problems *not* in that
    fold, so no problem's labels reach its own weights.
    """
    shared = set(source.problem_ids) & set(target.problem_ids)
    if not shared:
        return (
            Fold(
                0,
                np.arange(source.n_problems, dtype=np.int64),
                np.arange(target.n_problems, dtype=np.int64),
            ),
        )
    src_ids = np.asarray(source.problem_ids, dtype=object)
    out = []
    for f in kfold(target.n_problems, k, seed):
        held = {target.problem_ids[int(i)] for i in f.test}
        keep = np.flatnonzero([p not in held for p in src_ids]).astype(np.int64)
        if keep.size == 0:
            raise CalibrationError("no source problems left outside the held-out fold")
        out.append(Fold(f.index, keep, f.test))
    return tuple(out)


def stitch(target: PairData, parts: Sequence[tuple[IntArray, VoteInputs]]) -> VoteInputs:
    """Merge per-fold vote inputs (each over its fold's problems, in order) into one.
    Size tables are concatenated (each fold's padded with zeros to the largest) and every
    response's table index moved to its fold's tables."""
    n = target.n_responses
    weight = np.full(n, np.nan)
    first = parts[0][1]
    has_g = first.g is not None
    has_h = first.size_tables is not None
    g = np.full(n, np.nan) if has_g else None
    hidx = np.zeros(n, dtype=np.int64) if has_h else None
    tables: list[FloatArray] = []
    none_tables: list[FloatArray] = []
    has_z = first.none_tables is not None
    for problems, vi in parts:
        rows = target.rows(problems)
        if (vi.size_tables is None) != (vi.size_index is None):
            raise CalibrationError("a fold gave size tables without their index (or vice versa)")
        if (
            (vi.g is not None) != has_g
            or vi.best_of != first.best_of
            or (vi.ranked, vi.ranked_param) != (first.ranked, first.ranked_param)
            or vi.ml_q != first.ml_q
            or (vi.size_tables is not None) != has_h
            or (vi.none_tables is not None) != has_z
        ):
            raise CalibrationError("folds disagree on the vote type")
        weight[rows] = vi.weight
        if g is not None and vi.g is not None:
            g[rows] = vi.g
        if hidx is not None and vi.size_tables is not None and vi.size_index is not None:
            hidx[rows] = np.asarray(vi.size_index, dtype=np.int64) + sum(t.shape[0] for t in tables)
            tables.append(np.asarray(vi.size_tables, dtype=np.float64))
            if vi.none_tables is not None:
                none_tables.append(np.asarray(vi.none_tables, dtype=np.float64))
    if np.isnan(weight).any():
        raise CalibrationError("some problems were not covered by any fold")
    size_tables = _padded(tables)
    z_tables = _padded(none_tables)
    return VoteInputs(
        weight=weight,
        g=g,
        best_of=first.best_of,
        size_tables=size_tables,
        size_index=hidx,
        ml_q=first.ml_q,
        none_tables=z_tables,
        ranked=first.ranked,
        ranked_param=first.ranked_param,
    )


def _padded(tables: Sequence[FloatArray]) -> FloatArray | None:
    """The tables stacked, each padded with zeros to the largest."""
    if not tables:
        return None
    k = max(t.shape[1] for t in tables)
    return np.concatenate(
        [np.pad(t, ((0, 0), (0, k - t.shape[1]), (0, k - t.shape[2]))) for t in tables]
    )


@dataclass(frozen=True, eq=False)
class CrossFit:
    """Stitched vote inputs over the whole evaluated pair; `fold_of[p]` is the fold that
    held problem p out; `skipped` maps each strategy that could not be fitted to why."""

    inputs: Mapping[str, VoteInputs]
    skipped: Mapping[str, str]
    folds: tuple[Fold, ...]
    fold_of: IntArray
    notes: tuple[str, ...] = ()  # how calibration labels were obtained (label-free fits)


#: Per fold: prepare what the fold needs once, and return name -> that strategy's vote
#: inputs for the fold's test problems.
FoldFitter = Callable[[Fold], Callable[[str], VoteInputs]]
#: Progress: (stage, done, total).
ProgressFn = Callable[[str, int, int], None]


def cross_fit(
    target: PairData,
    folds: Sequence[Fold],
    names: Sequence[str],
    fit_fold: FoldFitter,
    *,
    progress: ProgressFn | None = None,
) -> CrossFit:
    """Cross-fit `names` over `folds` and stitch their inputs over `target`."""
    if len(set(names)) != len(names):
        raise CalibrationError(f"duplicate strategies: {list(names)}")
    covered = np.concatenate([f.test for f in folds]) if folds else np.zeros(0, np.int64)
    if covered.size != target.n_problems or np.unique(covered).size != target.n_problems:
        raise CalibrationError("the folds must hold out every evaluated problem exactly once")
    parts: dict[str, list[tuple[IntArray, VoteInputs]]] = {n: [] for n in names}
    skipped: dict[str, str] = {}
    fold_of = np.zeros(target.n_problems, dtype=np.int64)
    total = len(folds) * max(len(names), 1)
    for fi, fold in enumerate(folds):
        fold_of[fold.test] = fold.index
        one = fit_fold(fold)
        for si, name in enumerate(names):
            if progress is not None:
                progress(f"fold {fi + 1}/{len(folds)}: {name}", fi * len(names) + si, total)
            if name in skipped:
                continue
            try:
                parts[name].append((fold.test, one(name)))
            except CalibrationError as exc:
                skipped[name] = str(exc)
    inputs = {n: stitch(target, p) for n, p in parts.items() if n not in skipped}
    return CrossFit(inputs=inputs, skipped=skipped, folds=tuple(folds), fold_of=fold_of)


__all__ = ["CrossFit", "Fold", "FoldFitter", "cross_fit", "kfold", "stitch", "transfer_folds"]
