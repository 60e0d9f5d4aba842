"""Weights from several per-response signals at once (several verifiers, length, ...).

Two combiners, each fitted on calibration problems only and evaluated by K-fold
cross-fitting over problems, against every signal alone (KDE WV on that signal) and
majority vote, on common subsets:

* ``sum_llr``: the sum of per-signal log likelihood ratios (each a KDE of the logit of the
  transformed signal for correct vs incorrect responses). Under conditional independence of
  the signals given correctness this is the exact joint log likelihood ratio (naive Bayes).
* ``logistic``: a logistic regression of correctness on the signals' logit-transformed
  values (L2-penalised, standardised features); its log likelihood ratio is
  logit p(c | x) - logit(base rate). It can learn correlated signals' redundancy.

Both add Theorem 3.2's per-problem term with g = the combiner's own P(correct | signals).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy import optimize, special

from core.budget import CurveSet, Subsets, VoteInputs, accuracy_curves, make_subsets
from core.calibration import (
    CalibrationError,
    FittedWeights,
    StrategyParams,
    apply_transform,
    clipped_logit,
    fit_weights,
    kfold_problems,
    response_rows,
    select_problems,
    stitch_inputs,
)
from core.store import Store
from core.types import BoolArray, FloatArray, IntArray, PairData, TTSLabError

COMBINERS = ("sum_llr", "logistic")


class CombineError(TTSLabError):
    """Signals cannot be combined (misaligned responses, fewer than two signals...)."""


@dataclass(frozen=True, eq=False)
class MultiPair:
    """One LLM's responses with several signals: `scores[:, j]` is signal `verifiers[j]`.

    `base` carries the responses (clusters, correctness, problems); its `score` is the
    first signal's.
    """

    base: PairData
    verifiers: tuple[str, ...]
    scores: FloatArray  # (R, V)

    def signal(self, j: int) -> PairData:
        return replace(self.base, verifier=self.verifiers[j], score=self.scores[:, j].copy())

    def select(self, problems: IntArray) -> MultiPair:
        rows = response_rows(self.base, problems)
        return MultiPair(select_problems(self.base, problems), self.verifiers, self.scores[rows])


def load_multi(store: Store, dataset: str, llm: str, verifiers: Sequence[str]) -> MultiPair:
    """Responses of `llm` scored by every one of `verifiers` (all must score the same
    responses)."""
    if len(verifiers) < 2:
        raise CombineError("combining needs at least two signals")
    pairs = [store.load_pair(dataset, llm, v) for v in verifiers]
    base = pairs[0]
    for v, p in zip(verifiers[1:], pairs[1:], strict=True):
        if (
            p.problem_ids != base.problem_ids
            or not np.array_equal(p.offsets, base.offsets)
            or not np.array_equal(p.sample_idx, base.sample_idx)
        ):
            raise CombineError(
                f"verifier {v!r} does not score the same responses of {llm!r} as "
                f"{verifiers[0]!r}: combine signals only over a common set of responses"
            )
    return MultiPair(base, tuple(verifiers), np.column_stack([p.score for p in pairs]))


@dataclass(frozen=True, eq=False)
class CombinedFit:
    kind: str
    verifiers: tuple[str, ...]
    transforms: tuple[str, ...]
    per_signal: tuple[FittedWeights, ...]  # sum_llr: the per-signal KDE fits
    beta: FloatArray | None  # logistic: coefficients on standardised logits
    intercept: float
    mean: FloatArray | None
    scale: FloatArray | None
    prior_logit: float
    clip_eps: float

    def features(self, mp: MultiPair) -> FloatArray:
        cols = [
            clipped_logit(apply_transform(mp.scores[:, j], tr, mp.base.offsets), self.clip_eps)
            for j, tr in enumerate(self.transforms)
        ]
        return np.column_stack(cols)

    def llr(self, mp: MultiPair) -> FloatArray:
        """Combined log likelihood ratio of every response."""
        if self.kind == "sum_llr":
            total = np.zeros(mp.base.n_responses)
            for j, fw in enumerate(self.per_signal):
                total += fw.response_weights(mp.signal(j))
            return total
        assert self.beta is not None and self.mean is not None and self.scale is not None
        z = (self.features(mp) - self.mean) / self.scale
        return np.asarray(z @ self.beta + self.intercept - self.prior_logit, dtype=np.float64)

    def vote_inputs(self, mp: MultiPair) -> VoteInputs:
        w = self.llr(mp)
        g = special.expit(w + self.prior_logit)
        g = np.clip(g, 1e-6, 1 - 1e-6)
        return VoteInputs(weight=w, g=np.asarray(g, dtype=np.float64))


def _prior_logit(correct: BoolArray) -> float:
    p = (float(correct.sum()) + 1.0) / (correct.size + 2.0)
    return float(np.log(p / (1 - p)))


def fit_combined(calib: MultiPair, kind: str, params: StrategyParams | None = None) -> CombinedFit:
    """Fit a combiner on calibration problems only."""
    if kind not in COMBINERS:
        raise CombineError(f"unknown combiner {kind!r}; use one of {COMBINERS}")
    params = params or StrategyParams()
    singles = tuple(
        fit_weights(calib.signal(j), "kde_wv", params) for j in range(len(calib.verifiers))
    )
    transforms = tuple(f.transform for f in singles)
    correct = calib.base.correct
    prior = _prior_logit(correct)
    if kind == "sum_llr":
        return CombinedFit(
            kind,
            calib.verifiers,
            transforms,
            singles,
            None,
            0.0,
            None,
            None,
            prior,
            params.clip_eps,
        )
    probe = CombinedFit(
        kind, calib.verifiers, transforms, singles, None, 0.0, None, None, prior, params.clip_eps
    )
    x = probe.features(calib)
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale <= 0] = 1.0
    z = (x - mean) / scale
    y = correct.astype(np.float64)
    lam = 1e-3 * len(y)

    def loss(theta: FloatArray) -> tuple[float, FloatArray]:
        eta = z @ theta[1:] + theta[0]
        nll = float(np.sum(np.logaddexp(0.0, eta) - y * eta))
        p = special.expit(eta)
        grad = np.concatenate([[np.sum(p - y)], z.T @ (p - y)])
        nll += 0.5 * lam * float(theta[1:] @ theta[1:])
        grad[1:] += lam * theta[1:]
        return nll, grad

    res = optimize.minimize(loss, np.zeros(z.shape[1] + 1), jac=True, method="L-BFGS-B")
    if not np.all(np.isfinite(res.x)):
        raise CalibrationError("logistic combiner did not converge")
    return CombinedFit(
        kind,
        calib.verifiers,
        transforms,
        singles,
        res.x[1:].copy(),
        float(res.x[0]),
        mean,
        scale,
        prior,
        params.clip_eps,
    )


@dataclass(frozen=True, eq=False)
class CombinedCurves:
    curves: CurveSet
    labels: dict[str, str]


def combined_curves(
    mp: MultiPair,
    params: StrategyParams | None = None,
    *,
    k: int = 5,
    seed: int = 0,
    budgets: Sequence[int] | None = None,
    n_subsets: int = 200,
    subset_seed: int = 0,
    subsets: Subsets | None = None,
) -> CombinedCurves:
    """Cross-fitted accuracy curves: majority, KDE WV on each signal alone, sum_llr and
    logistic, all on the same subsets; every fit sees only the other folds' problems."""
    params = params or StrategyParams()
    base = mp.base
    n = base.n_responses
    folds = kfold_problems(base.n_problems, k, seed)
    all_idx = np.arange(base.n_problems, dtype=np.int64)
    single_parts: list[list[tuple[IntArray, VoteInputs]]] = [[] for _ in mp.verifiers]
    comb_parts: dict[str, list[tuple[IntArray, VoteInputs]]] = {c: [] for c in COMBINERS}
    for test in folds:
        train = np.setdiff1d(all_idx, test)
        calib = mp.select(train)
        held = mp.select(test)
        for j in range(len(mp.verifiers)):
            fw = fit_weights(calib.signal(j), "kde_wv", params)
            assert fw.calibrator is not None
            t_held = held.signal(j)
            vi = VoteInputs(weight=fw.response_weights(t_held), g=fw.response_g(t_held))
            single_parts[j].append((test, vi))
        for c in COMBINERS:
            comb_parts[c].append((test, fit_combined(calib, c, params).vote_inputs(held)))
    inputs: dict[str, VoteInputs] = {"majority": VoteInputs(weight=np.ones(n))}
    labels = {"majority": "Majority vote"}
    for j, v in enumerate(mp.verifiers):
        name = f"kde_wv[{v}]"
        inputs[name] = stitch_inputs(base, single_parts[j])
        labels[name] = f"KDE WV on {v} alone"
    for c in COMBINERS:
        inputs[c] = stitch_inputs(base, comb_parts[c])
    labels["sum_llr"] = "Sum of per-signal LLRs"
    labels["logistic"] = "Logistic over signals"
    subs = subsets or make_subsets(base, budgets, n_subsets=n_subsets, seed=subset_seed)
    return CombinedCurves(accuracy_curves(base, inputs, subsets=subs), labels)
