"""Multi-LLM ensembles: one vote over answers pooled from several LLMs, each LLM's votes
weighted by how often it is right on calibration problems, at a fixed total budget split
evenly across the LLMs, against each LLM alone at the same total budget.

Each LLM's response counts log(p / (1 - p)), p its share of correct responses on the
calibration problems (K-fold cross-fitted over problems; shrunk as (correct + 1) / (n + 2)),
the weight of an independent voter of accuracy p. Answers are matched across LLMs by their
answer key. At total budget N each of the k LLMs contributes its first N / k responses in
its own random order (the fixed-N curves' orders); an LLM alone uses its first N.
Ties get fractional credit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.evaluation.config import EvalConfig
from core.evaluation.crossfit import kfold
from core.evaluation.engine import make_subsets
from core.evaluation.pipeline import AnalysisError, load_pair
from core.evaluation.stats import bootstrap_mean_ci, paired_difference_cis
from core.store import DatasetInfo, Store
from core.types import FloatArray, PairData

ProgressFn = Callable[[str, int, int], None]


@dataclass(frozen=True, eq=False)
class EnsembleResult:
    llms: tuple[str, ...]
    budgets: tuple[int, ...]  # total samples per problem
    n_problems: int
    ensemble: FloatArray  # (B, P) expected credit
    single: FloatArray  # (k, B, P) each LLM alone at the same total budget
    weights: FloatArray  # (K folds, k) fitted per-LLM weights
    level: float
    n_boot: int
    seed: int

    def accuracy(self) -> FloatArray:
        return np.asarray(self.ensemble.mean(axis=1), dtype=np.float64)

    def best_single(self) -> list[int]:
        """Per budget, the LLM that does best alone on these problems (an optimistic pick
        for the single model: it is chosen on the evaluated problems)."""
        return [int(np.argmax(self.single[:, b].mean(axis=1))) for b in range(len(self.budgets))]

    def table(self) -> pd.DataFrame:
        """Per total budget: the ensemble, the best single LLM and the paired gain, with
        bootstrap intervals over problems."""
        best = self.best_single()
        rows = []
        for b, n in enumerate(self.budgets):
            e, e_lo, e_hi = bootstrap_mean_ci(
                self.ensemble[b], n_boot=self.n_boot, level=self.level, seed=self.seed
            )
            s = self.single[best[b], b]
            s_est, s_lo, s_hi = bootstrap_mean_ci(
                s, n_boot=self.n_boot, level=self.level, seed=self.seed
            )
            gain = paired_difference_cis(
                self.ensemble[b], s, n_boot=self.n_boot, level=self.level, seed=self.seed
            )
            rows.append(
                {
                    "total_budget": n,
                    "per_llm": n // len(self.llms),
                    "ensemble": float(e),
                    "ensemble_low": float(e_lo),
                    "ensemble_high": float(e_hi),
                    "best_single": self.llms[best[b]],
                    "single": float(s_est),
                    "single_low": float(s_lo),
                    "single_high": float(s_hi),
                    "gain": float(gain.estimate),
                    "gain_low": float(gain.low),
                    "gain_high": float(gain.high),
                }
            )
        return pd.DataFrame(rows)


def _pooled_clusters(
    store: Store, info: DatasetInfo, pairs: Sequence[PairData], ids: Sequence[str]
) -> list[list[np.ndarray]]:
    """Per LLM and problem (in `ids` order): each response's answer cluster, numbered
    across all LLMs of that problem by answer key."""
    keys = []
    for pair in pairs:
        df = store.responses(info, pair.llm)
        k = {(r.problem_id, int(r.sample_idx)): str(r.answer_key) for r in df.itertuples()}
        keys.append(k)
    out: list[list[np.ndarray]] = [[] for _ in pairs]
    for pid in ids:
        per: list[list[str]] = []
        for li, pair in enumerate(pairs):
            p = pair.problem_ids.index(pid)
            lo, hi = int(pair.offsets[p]), int(pair.offsets[p + 1])
            per.append([keys[li][(pid, int(s))] for s in pair.sample_idx[lo:hi]])
        codes, _ = pd.factorize(pd.Series([a for part in per for a in part]))
        start = 0
        for li, part in enumerate(per):
            out[li].append(np.asarray(codes[start : start + len(part)], dtype=np.int64))
            start += len(part)
    return out


def _vote_credit(
    clusters: Sequence[np.ndarray], correct: Sequence[np.ndarray], weights: Sequence[float]
) -> float:
    """Fractional credit of the weighted vote over the pooled responses."""
    cl = np.concatenate(clusters)
    w = np.concatenate([np.full(len(c), wt) for c, wt in zip(clusters, weights, strict=True)])
    ok = np.concatenate(correct).astype(np.float64)
    k = int(cl.max()) + 1
    tot = np.bincount(cl, weights=w, minlength=k)
    n = np.bincount(cl, minlength=k)
    right = np.bincount(cl, weights=ok, minlength=k)
    present = n > 0
    best = tot[present].max()
    scale = float(np.abs(w).sum()) or 1.0
    tied = present & (tot >= best - 1e-12 * scale)
    return float(np.mean(right[tied] / n[tied]))


def ensemble_study(
    store: Store,
    info: DatasetInfo,
    llms: Sequence[str],
    verifier: str,
    config: EvalConfig,
    *,
    budgets: Sequence[int] | None = None,
    progress: ProgressFn | None = None,
) -> EnsembleResult:
    chosen = list(dict.fromkeys(llms))
    if len(chosen) < 2:
        raise AnalysisError("an ensemble needs at least two LLMs")
    for m in chosen:
        if m not in info.llms:
            raise AnalysisError(f"dataset {info.name!r} has no LLM {m!r}")
    k = len(chosen)
    pairs = [load_pair(store, info, m, verifier, config.reduction) for m in chosen]
    common = set(pairs[0].problem_ids)
    for p in pairs[1:]:
        common &= set(p.problem_ids)
    ids = sorted(common)
    if len(ids) < config.folds:
        raise AnalysisError(f"the LLMs share {len(ids)} problems: too few for the folds")
    pairs = [p.select([p.problem_ids.index(i) for i in ids]) for p in pairs]
    n_min = min(int(p.sizes().min()) for p in pairs)
    if budgets is None:
        per = [2**j for j in range(0, 12) if 2**j <= n_min]
        budgets = [k * x for x in per]
    totals = tuple(int(b) for b in budgets)
    if any(b % k for b in totals):
        raise AnalysisError(f"total budgets must be multiples of the {k} LLMs: {totals}")
    clusters = _pooled_clusters(store, info, pairs, ids)
    subsets = [make_subsets(p, n_subsets=config.n_subsets, seed=config.subset_seed) for p in pairs]
    folds = kfold(len(ids), config.folds, config.fold_seed)
    fold_of = np.zeros(len(ids), dtype=np.int64)
    weights = np.zeros((len(folds), k))
    for f in folds:
        fold_of[f.test] = f.index
        for li, p in enumerate(pairs):
            rows = p.rows(f.train)
            acc = (float(p.correct[rows].sum()) + 1.0) / (len(rows) + 2.0)
            weights[f.index, li] = np.log(acc / (1.0 - acc))
    n_b = len(totals)
    ens = np.zeros((n_b, len(ids)))
    single = np.zeros((k, n_b, len(ids)))
    for q in range(len(ids)):
        if progress is not None:
            progress(f"problem {q + 1} of {len(ids)}", q, len(ids))
        perms = [s.permutations(q) for s in subsets]
        w = weights[fold_of[q]]
        correct = [p.correct[int(p.offsets[q]) : int(p.offsets[q + 1])].astype(bool) for p in pairs]
        for t in range(config.n_subsets):
            for b, total in enumerate(totals):
                share = total // k
                parts = [perms[li][t, :share] for li in range(k)]
                ens[b, q] += _vote_credit(
                    [clusters[li][q][parts[li]] for li in range(k)],
                    [correct[li][parts[li]] for li in range(k)],
                    list(w),
                )
                for li in range(k):
                    alone = perms[li][t, : min(total, perms[li].shape[1])]
                    single[li, b, q] += _vote_credit(
                        [clusters[li][q][alone]], [correct[li][alone]], [1.0]
                    )
    ens /= config.n_subsets
    single /= config.n_subsets
    return EnsembleResult(
        llms=tuple(chosen),
        budgets=totals,
        n_problems=len(ids),
        ensemble=ens,
        single=single,
        weights=weights,
        level=config.level,
        n_boot=config.n_boot,
        seed=config.boot_seed,
    )


__all__ = ["EnsembleResult", "ensemble_study"]
