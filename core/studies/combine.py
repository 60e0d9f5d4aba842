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

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from scipy import special

from core.evaluation.config import EvalConfig
from core.evaluation.crossfit import Fold, cross_fit, kfold
from core.evaluation.engine import CurveSet
from core.evaluation.pipeline import ProgressFn, evaluate, load_pair
from core.methods.fitted import FittedWeights
from core.methods.params import CalibrationError, StrategyParams
from core.methods.registry import get_strategy
from core.methods.transforms import apply_transform, auto_once, clipped_logit
from core.store import DatasetInfo, Store
from core.types import BoolArray, FloatArray, IntArray, PairData, TTSLabError, VoteInputs

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
        rows = self.base.rows(problems)
        return MultiPair(self.base.select(problems), self.verifiers, self.scores[rows])


def load_multi(
    store: Store,
    info: DatasetInfo,
    llm: str,
    verifiers: Sequence[str],
    reduction: str = "stored",
) -> MultiPair:
    """Responses of `llm` scored by every one of `verifiers` (all must score the same
    responses)."""
    if len(verifiers) < 2:
        raise CombineError("combining needs at least two signals")
    pairs = [load_pair(store, info, llm, v, reduction) for v in verifiers]
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
            clipped_logit(apply_transform(mp.scores[:, j], tr), self.clip_eps)
            for j, tr in enumerate(self.transforms)
        ]
        return np.column_stack(cols)

    def llr(self, mp: MultiPair) -> FloatArray:
        """Combined log likelihood ratio of every response."""
        if self.kind == "sum_llr":
            kde = get_strategy("kde_wv")
            total = np.zeros(mp.base.n_responses)
            for j, fw in enumerate(self.per_signal):
                total += kde.weights(fw, fw.transformed(mp.signal(j)))
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
    kde = get_strategy("kde_wv")
    singles = tuple(kde.fit(calib.signal(j), params) for j in range(len(calib.verifiers)))
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

    from scipy import optimize  # imported here: a fifth of a second every process need not pay

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
    from_cache: bool = False


def _single(name: str) -> str:
    return f"kde_wv[{name}]"


def combined_inputs(
    mp: MultiPair, config: EvalConfig, *, progress: ProgressFn | None = None
) -> dict[str, VoteInputs]:
    """Cross-fitted vote inputs: majority, KDE WV on each signal alone, sum_llr and
    logistic; every fit sees only the other folds' problems (the one cross-fitting path)."""
    base = mp.base
    params = auto_once(config.params, base)
    kde = get_strategy("kde_wv")
    names = [_single(v) for v in mp.verifiers] + list(COMBINERS)

    def fit_fold(fold: Fold) -> Callable[[str], VoteInputs]:
        calib = mp.select(fold.train)
        held = mp.select(fold.test)

        def one(name: str) -> VoteInputs:
            if name in COMBINERS:
                return fit_combined(calib, name, params).vote_inputs(held)
            j = mp.verifiers.index(name[len("kde_wv[") : -1])
            fw = kde.fit(calib.signal(j), params)
            return kde.vote_inputs(fw, held.signal(j))

        return one

    cf = cross_fit(
        base,
        kfold(base.n_problems, config.folds, config.fold_seed),
        names,
        fit_fold,
        progress=progress,
    )
    if cf.skipped:
        name, why = next(iter(cf.skipped.items()))
        raise CalibrationError(f"{name}: {why}")
    return {"majority": VoteInputs(weight=np.ones(base.n_responses)), **cf.inputs}


def combined_curves(
    store: Store,
    info: DatasetInfo,
    llm: str,
    verifiers: Sequence[str],
    config: EvalConfig,
    *,
    progress: ProgressFn | None = None,
) -> CombinedCurves:
    """Cross-fitted accuracy curves of one LLM's responses weighted by several signals at
    once, against each signal alone and majority vote, on common subsets (sampling-order
    prefixes when the dataset's samples are not independent draws). Cached in the store."""
    vs = tuple(dict.fromkeys(verifiers))
    if len(vs) < 2:
        raise CombineError("choose at least two signals (verifiers) to combine")
    labels = {"majority": "Majority vote"}
    for v in vs:
        labels[_single(v)] = f"KDE WV on {v} alone"
    labels["sum_llr"] = "Sum of per-signal LLRs"
    labels["logistic"] = "Logistic over signals"

    def compute() -> dict[str, Any]:
        mp = load_multi(store, info, llm, vs, config.reduction)
        inputs = combined_inputs(mp, config, progress=progress)
        return evaluate(mp.base, inputs, config, info.iid).to_payload()

    key = {
        "llm": llm,
        "verifiers": list(vs),
        "strategy": get_strategy("kde_wv").key(config.params),
        "config": config.key(),
        "order": config.resolved_order(info.iid),
    }
    payload, hit = store.cached(info, "combined_curves", key, compute)
    return CombinedCurves(CurveSet.from_payload(payload), labels, hit)
