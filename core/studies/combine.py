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

Two more read no correctness label at all, so they are fitted once on every evaluated
problem (no cross-fitting needed):

* ``latent_pv``: the posterior vote's latent model with one density pair per signal
  (conditionally independent given correctness), fitted by EM over which answer of each
  problem is correct (`core.methods.latent`); weights are the per-signal weighted-KDE log
  likelihood ratios summed, plus the fitted answer prior's size term.
* ``weak_sup``: Weaver-style weak supervision: each signal thresholded at its median into
  a vote, and a latent-class (Dawid-Skene) model of the votes of each response fitted by EM
  without labels; a response's weight is the log likelihood ratio of its votes. It ignores
  which answers agree, which is where ``latent_pv`` differs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from scipy import special

from core.evaluation.config import EvalConfig
from core.evaluation.crossfit import Fold, cross_fit
from core.evaluation.engine import CurveSet
from core.evaluation.pipeline import (
    ProgressFn,
    calibration_folds,
    calibration_labels,
    evaluate,
    load_pair,
)
from core.methods.fitted import FittedWeights
from core.methods.kde import fit_kde_params
from core.methods.latent import fit_latent, latent_scores
from core.methods.params import CalibrationError, StrategyParams
from core.methods.posterior import size_inputs
from core.methods.registry import get_strategy
from core.methods.transforms import apply_transform, auto_once, clipped_logit
from core.store import DatasetInfo, Store
from core.types import BoolArray, FloatArray, IntArray, PairData, TTSLabError, VoteInputs

COMBINERS = ("sum_llr", "logistic")
#: Combiners that read no label (fitted on every evaluated problem).
LABEL_FREE_COMBINERS = ("latent_pv", "weak_sup")


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


def _logits(mp: MultiPair, params: StrategyParams) -> FloatArray:
    return np.column_stack([latent_scores(mp.signal(j), params) for j in range(len(mp.verifiers))])


def latent_inputs(mp: MultiPair, params: StrategyParams) -> VoteInputs:
    """``latent_pv``: EM over the correct answer with one density pair per signal, no
    label read (see module doc)."""
    x = _logits(mp, params)
    fit = fit_latent(mp.base, x)
    w = np.zeros(mp.base.n_responses)
    for j in range(x.shape[1]):
        w += fit_kde_params(x[:, j], fit.soft, params).log_lr(x[:, j])
    return size_inputs(w, fit.prior, mp.base)


def weak_supervision_weights(
    votes: BoolArray, max_iter: int = 200, tol: float = 1e-10
) -> tuple[FloatArray, FloatArray, FloatArray, float]:
    """Dawid-Skene latent-class model of binary votes (rows: responses, columns: signals)
    fitted by EM without labels: (per-response log likelihood ratio of its votes, per-signal
    P(vote | correct), P(vote | incorrect), P(correct)). Started as if every signal were
    better than chance (0.7 vs 0.3), which fixes the labelling of the two classes."""
    v = np.asarray(votes, dtype=np.float64)
    if v.ndim != 2 or v.shape[0] < 2:
        raise CalibrationError("weak supervision needs votes of two or more responses")
    a = np.full(v.shape[1], 0.7)
    b = np.full(v.shape[1], 0.3)
    pi = 0.5
    prev = -np.inf
    llr = np.zeros(v.shape[0])
    for _ in range(max_iter):
        llr = v @ np.log(a / b) + (1.0 - v) @ np.log((1.0 - a) / (1.0 - b))
        eta = llr + math.log(pi / (1.0 - pi))
        p = special.expit(eta)
        ll = float(np.sum(np.logaddexp(0.0, eta) + (1.0 - v) @ np.log(1.0 - b) + v @ np.log(b)))
        ll += v.shape[0] * math.log(1.0 - pi)
        sp, sn = float(p.sum()), float((1.0 - p).sum())
        if sp < 1e-9 or sn < 1e-9:
            raise CalibrationError("weak supervision put every response in one class")
        # one pseudo-vote each way keeps the rates inside (0, 1)
        a = (p @ v + 1.0) / (sp + 2.0)
        b = ((1.0 - p) @ v + 1.0) / (sn + 2.0)
        pi = float(np.clip(sp / v.shape[0], 1e-6, 1.0 - 1e-6))
        if abs(ll - prev) <= tol * (1.0 + abs(ll)):
            break
        prev = ll
    llr = v @ np.log(a / b) + (1.0 - v) @ np.log((1.0 - a) / (1.0 - b))
    return np.asarray(llr, dtype=np.float64), a, b, pi


def weak_inputs(mp: MultiPair, params: StrategyParams) -> VoteInputs:
    """``weak_sup``: each signal thresholded at its median, a Dawid-Skene model of the
    votes fitted without labels, weight = the votes' log likelihood ratio."""
    x = _logits(mp, params)
    votes = x > np.median(x, axis=0)[None, :]
    llr, _, _, pi = weak_supervision_weights(votes)
    # the latent classes are named only by EM's start ("every signal better than chance"):
    # call correct the class whose responses more often give their problem's most common
    # answer, so that signals read the wrong way round cannot invert the vote
    p = special.expit(llr + math.log(pi / (1.0 - pi)))
    plural = _in_plurality(mp.base)
    if float(p @ plural) / max(float(p.sum()), 1e-12) < float((1.0 - p) @ plural) / max(
        float((1.0 - p).sum()), 1e-12
    ):
        llr = -llr
    return VoteInputs(weight=llr)


def _in_plurality(pair: PairData) -> FloatArray:
    """1.0 for responses in their problem's largest answer (ties: all of them), else 0."""
    prob = pair.problem_index()
    k = int(pair.cluster.max()) + 1 if pair.n_responses else 1
    key = prob * k + pair.cluster
    size = np.bincount(key, minlength=pair.n_problems * k)[key]
    top = np.zeros(pair.n_problems)
    np.maximum.at(top, prob, size)
    return np.asarray(size == top[prob], dtype=np.float64)


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
        # labels as config.calibration says, inferred from every signal at once
        inferred, _ = calibration_labels(
            calib.base, params, config, fold.index, scores=_logits(calib, params)
        )
        calib = MultiPair(inferred, calib.verifiers, calib.scores)

        def one(name: str) -> VoteInputs:
            if name in COMBINERS:
                return fit_combined(calib, name, params).vote_inputs(held)
            j = mp.verifiers.index(name[len("kde_wv[") : -1])
            fw = kde.fit(calib.signal(j), params)
            return kde.vote_inputs(fw, held.signal(j))

        return one

    cf = cross_fit(
        base, calibration_folds(base.n_problems, config), names, fit_fold, progress=progress
    )
    if cf.skipped:
        name, why = next(iter(cf.skipped.items()))
        raise CalibrationError(f"{name}: {why}")
    out = {"majority": VoteInputs(weight=np.ones(base.n_responses)), **cf.inputs}
    # label-free combiners: no label read, so one fit on every evaluated problem; dropped
    # (with the others kept) when EM cannot identify its model on these data
    for name, build in (("latent_pv", latent_inputs), ("weak_sup", weak_inputs)):
        try:
            out[name] = build(mp, params)
        except CalibrationError:
            continue
    return out


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
    labels["latent_pv"] = "Label-free posterior vote (EM, all signals)"
    labels["weak_sup"] = "Weak supervision (Weaver-style, no labels)"

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
