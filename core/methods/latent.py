"""Label-free calibration: the posterior vote's model fitted without correctness labels.

Which answer of a problem is correct (if any) is latent. The model is the posterior
vote's own (`core.methods.posterior`): q ~ Beta(a, b), each response correct with
probability q, wrong responses split into answers by a Pitman-Yor process (d, alpha), and
scores drawn from f1 (correct) or f0 (incorrect), conditionally independent given
correctness. With several verifiers each has its own density pair, and they are
conditionally independent given correctness too (a naive-Bayes product).

EM alternates:

* E-step: for every problem, the posterior over "answer c is the correct one" (c any of
  its answers) and "none of them is": the sum of log f1/f0 over c's responses, plus the
  beta-binomial probability of n_c correct of N, plus the Pitman-Yor probability of the
  other answers (all answers for "none").
* M-step: the class densities from the soft labels (each response correct with its
  answer's posterior), the Beta prior and the Pitman-Yor parameters by weighted maximum
  likelihood (`core.methods.posterior.answer_stats`), each search started from the
  previous fit and never accepting a worse one (generalised EM).

The densities inside EM are histograms over fixed equal-mass bins of the pooled scores
(one set per verifier) with one pseudo-response per bin and class, so every M-step is an
exact maximiser and the penalised log likelihood of the binned scores rises at every
iteration (`LatentFit.loglik` records it). The weights the strategies use afterwards are
fitted from EM's soft labels by the same weighted KDE as the labelled fit (KDE WV, the
posterior vote), so label-free and labelled weight functions differ only in their labels.

Labelled problems (semi-supervised use) keep their labels: their part of the likelihood is
the labelled one and they enter every M-step with weight 1.

Starts: majority vote (the plurality answer correct) and a soft one (each answer correct
in proportion to its size, "none" 0.2); the majority start's fit is kept unless the other
ends clearly higher (`START_MARGIN`): the answers alone barely distinguish "the largest
answer is correct" from "it is a popular wrong answer", and majority vote's assumption
resolves the near-tie.
It is refused (`CalibrationError`) when the data cannot identify the model: too few
problems with two or more responses, or no problem with two different answers (then no
score of an answer known to be wrong exists, even latently).

Problem effects. The model assumes scores are conditionally independent given
correctness. A signal that also measures the problem (response length: every answer to a
hard problem is long; some reward models score whole problems high or low) breaks that,
and EM then reads "hard problem" as "every answer wrong". After the first fit, each
signal's intra-problem correlation within the inferred classes is measured
(`problem_effect`, no label read); signals above `ICC_MIN` are left out of the inference of
the labels. When every signal is left out, the answers alone cannot tell "the largest
answer is right" from "it is a popular wrong answer" (both fit a partition about equally
well), so the labels are majority vote's. Either way the strategies' weights are then
fitted on every signal from those labels, as from true labels.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Final

import numpy as np
import numpy.typing as npt
from scipy import special

from core.methods.params import CalibrationError, StrategyParams
from core.methods.posterior import AnswerPrior, answer_stats, fit_prior_stats
from core.methods.transforms import apply_transform, clipped_logit, resolve_transform
from core.types import BoolArray, FloatArray, IntArray, PairData

#: Problems with two or more responses needed before label-free calibration is attempted.
MIN_PROBLEMS: Final = 10
#: Pseudo-responses per histogram bin and class (a Dirichlet prior; keeps every bin's
#: density positive).
BIN_PRIOR: Final = 1.0
MAX_ITER: Final = 500
#: Stop when the penalised log likelihood rises by less than this (relative).
TOL: Final = 1e-9
#: Log likelihood by which another start must beat the majority-vote start to be kept.
START_MARGIN: Final = 3.0
#: Intra-problem correlation above which a signal is left out of the inference of the
#: labels (conditionally independent simulated scores measure <= 0.02; length and some
#: reward models on real data 0.4-0.9).
ICC_MIN: Final = 0.05


@dataclass(frozen=True, eq=False)
class LatentFit:
    """A label-free (or semi-supervised) fit of the posterior vote's model.

    Attributes:
        soft: per response, the posterior probability that it is correct (labelled
            problems: their labels).
        hard: per response, the most probable labels (the most probable answer of each
            problem correct, or none).
        p_none: per problem, the posterior probability that none of its answers is correct.
        prior: the fitted answer prior (Beta over q, Pitman-Yor wrong answers).
        loglik: penalised log likelihood after each iteration of the kept start.
        converged: whether the kept start met the tolerance within `MAX_ITER` iterations.
        start: the kept start ("majority" or "soft"); `starts` has every start's final
            log likelihood.
        n_labelled: problems whose labels were used.
        ignored: per signal, whether the final EM left it out of the inference of the
            labels (because of a problem effect).
        icc: per signal, the intra-problem correlation of scores within each inferred
            class (`problem_effect`); above `ICC_MIN` the signal is ignored.
    """

    soft: FloatArray
    hard: BoolArray
    p_none: FloatArray
    prior: AnswerPrior
    loglik: tuple[float, ...]
    converged: bool
    start: str
    starts: Mapping[str, float] = field(default_factory=dict)
    n_labelled: int = 0
    ignored: tuple[bool, ...] = ()
    icc: tuple[float, ...] = ()

    @property
    def n_iter(self) -> int:
        return len(self.loglik)

    def report(self) -> str:
        """One line for logs and notes."""
        state = "converged" if self.converged else f"stopped at {MAX_ITER} iterations"
        effect = ", ".join(f"{v:.2f}" for v, i in zip(self.icc, self.ignored, strict=True) if i)
        if self.ignored and all(self.ignored):
            return (
                f"labels taken from majority vote: the scores share a problem effect "
                f"(intra-problem correlation {effect}), which breaks the latent model's "
                "conditional independence, and the answers alone cannot tell a correct "
                f"answer from a popular wrong one; {self.n_labelled} labelled problems"
            )
        tempered = ""
        if any(self.ignored):
            tempered = (
                f"; signals with a problem effect (intra-problem correlation {effect}) "
                "were left out of the inference of the labels"
            )
        return (
            f"EM {state} after {self.n_iter} iterations from the {self.start} start "
            f"(log likelihood {self.loglik[-1]:.1f}); {self.n_labelled} labelled problems; "
            f"mean P(correct) {float(self.soft.mean()):.3f}{tempered}"
        )


@dataclass(frozen=True, eq=False)
class _Layout:
    """Answers (clusters) of every problem, densely numbered."""

    prob: IntArray  # per response: problem
    g_of: IntArray  # per response: answer
    g_prob: IntArray  # per answer: problem
    n_g: FloatArray  # per answer: responses
    n_p: FloatArray  # per problem: responses
    k_p: IntArray  # per problem: answers

    @classmethod
    def of(cls, pair: PairData) -> _Layout:
        prob = pair.problem_index()
        k_max = int(pair.cluster.max()) + 1
        keys, g_of = np.unique(prob * k_max + pair.cluster, return_inverse=True)
        g_prob = (keys // k_max).astype(np.int64)
        return cls(
            prob=prob,
            g_of=g_of.reshape(-1).astype(np.int64),
            g_prob=g_prob,
            n_g=np.bincount(g_of.reshape(-1)).astype(np.float64),
            n_p=pair.sizes().astype(np.float64),
            k_p=np.bincount(g_prob, minlength=pair.n_problems).astype(np.int64),
        )


def _bins(x: FloatArray, n_bins: int) -> IntArray:
    """Equal-mass bin of every value (ties share a bin)."""
    edges = np.unique(np.quantile(x, np.arange(1, n_bins) / n_bins, method="inverted_cdf"))
    edges = edges[edges > x.min()]
    return np.searchsorted(edges, x, side="right").astype(np.int64)


def default_bins(n: int) -> int:
    """Histogram bins for n responses: about 2 n^(1/3), between 8 and 64."""
    return int(np.clip(round(2.0 * n ** (1.0 / 3.0)), 8, 64))


class _Model:
    """The E-step and the likelihood for fixed data; parameters passed in."""

    def __init__(self, pair: PairData, bins: IntArray, labelled: BoolArray) -> None:
        self.pair = pair
        self.lay = _Layout.of(pair)
        self.bins = bins  # (n, V)
        self.n_bins = [int(bins[:, v].max()) + 1 for v in range(bins.shape[1])]
        self.labelled = labelled
        lab_r = labelled[self.lay.prob]
        self.lab_r = lab_r
        self.truth = np.asarray(pair.correct, dtype=bool)
        self.use = np.ones(bins.shape[1], dtype=bool)  # signals the E-step reads

    # ---- M-step --------------------------------------------------------------------

    def densities(self, soft: FloatArray) -> list[tuple[FloatArray, FloatArray]]:
        """Per verifier: log bin probabilities of the correct and incorrect class."""
        out = []
        for v, nb in enumerate(self.n_bins):
            b = self.bins[:, v]
            c1 = np.bincount(b, weights=soft, minlength=nb) + BIN_PRIOR
            c0 = np.bincount(b, weights=1.0 - soft, minlength=nb) + BIN_PRIOR
            out.append((np.log(c1 / c1.sum()), np.log(c0 / c0.sum())))
        return out

    def penalty(self, dens: list[tuple[FloatArray, FloatArray]]) -> float:
        return BIN_PRIOR * float(
            sum(l1.sum() + l0.sum() for u, (l1, l0) in zip(self.use, dens, strict=True) if u)
        )

    # ---- E-step --------------------------------------------------------------------

    def e_step(
        self, dens: list[tuple[FloatArray, FloatArray]], prior: AnswerPrior
    ) -> tuple[FloatArray, FloatArray, FloatArray, float]:
        """Posterior of every answer being the correct one, of "none", per-response soft
        labels, and the penalised log likelihood."""
        lay = self.lay
        n_prob = self.pair.n_problems
        llr = np.zeros(self.pair.n_responses)
        base = np.zeros(self.pair.n_responses)
        for v, (l1, l0) in enumerate(dens):
            if not self.use[v]:
                continue
            b = self.bins[:, v]
            llr += l1[b] - l0[b]
            base += l0[b]
        a, bb, d, alpha = prior.a, prior.b, prior.discount, prior.concentration
        k_max = int(lay.k_p.max()) if lay.k_p.size else 1
        i = np.arange(1, k_max + 1, dtype=np.float64)
        lcum = np.r_[0.0, 0.0, np.cumsum(np.log(alpha + i * d))]  # lcum[K] = sum_{1..K-1}
        lg1 = math.lgamma(alpha + 1.0)
        lgd = special.gammaln(lay.n_g - d) - math.lgamma(1.0 - d)
        a_p = np.bincount(lay.g_prob, weights=lgd, minlength=n_prob)
        n_gp = lay.n_p[lay.g_prob]
        k_gp = lay.k_p[lay.g_prob]
        rest = n_gp - lay.n_g
        eppf_c = np.where(
            rest > 0,
            lcum[np.maximum(k_gp - 1, 0)]
            - special.gammaln(alpha + rest)
            + lg1
            + a_p[lay.g_prob]
            - lgd,
            0.0,
        )
        eppf_none = lcum[lay.k_p] - special.gammaln(alpha + lay.n_p) + lg1 + a_p
        bab = special.betaln(a, bb)
        j_c = (
            np.bincount(lay.g_of, weights=llr, minlength=lay.n_g.size)
            + special.betaln(a + lay.n_g, bb + rest)
            - bab
            + eppf_c
        )
        j_none = special.betaln(a, bb + lay.n_p) - bab + eppf_none
        # log sum exp over each problem's candidates (its answers and "none")
        top = np.maximum(np.full(n_prob, -np.inf), j_none)
        np.maximum.at(top, lay.g_prob, j_c)
        tot = np.exp(j_none - top) + np.bincount(
            lay.g_prob, weights=np.exp(j_c - top[lay.g_prob]), minlength=n_prob
        )
        log_z = top + np.log(tot)
        r_g = np.exp(j_c - log_z[lay.g_prob])
        r_none = np.exp(j_none - log_z)
        ll_p = np.bincount(lay.prob, weights=base, minlength=n_prob) + log_z
        soft = r_g[lay.g_of]
        # labelled problems: their labels, and the labelled likelihood
        if self.labelled.any():
            soft = np.where(self.lab_r, self.truth.astype(np.float64), soft)
            ll_p = np.where(self.labelled, self._labelled_ll(llr, base, prior, lcum, lg1), ll_p)
            r_none = np.where(self.labelled, 0.0, r_none)
        return r_g, r_none, soft, float(ll_p[self.pair.sizes() > 0].sum())

    def _labelled_ll(
        self,
        llr: FloatArray,
        base: FloatArray,
        prior: AnswerPrior,
        lcum: FloatArray,
        lg1: float,
    ) -> FloatArray:
        lay, n_prob, d = self.lay, self.pair.n_problems, prior.discount
        good = self.truth
        k = np.bincount(lay.prob, weights=good, minlength=n_prob)
        wrong_g = np.bincount(lay.g_of, weights=~good, minlength=lay.n_g.size)
        blocks = np.bincount(lay.g_prob, weights=wrong_g > 0, minlength=n_prob).astype(np.int64)
        lgd = np.where(
            wrong_g > 0,
            special.gammaln(np.maximum(wrong_g, 1.0) - d) - math.lgamma(1.0 - d),
            0.0,
        )
        nw = lay.n_p - k
        eppf = np.where(
            nw > 0,
            lcum[blocks]
            - special.gammaln(prior.concentration + nw)
            + lg1
            + np.bincount(lay.g_prob, weights=lgd, minlength=n_prob),
            0.0,
        )
        bb = special.betaln(prior.a + k, prior.b + nw) - special.betaln(prior.a, prior.b)
        dens = np.bincount(lay.prob, weights=base + np.where(good, llr, 0.0), minlength=n_prob)
        return np.asarray(dens + bb + eppf, dtype=np.float64)


def problem_effect(pair: PairData, x: FloatArray, soft: FloatArray) -> float:
    """Intra-problem correlation of the scores `x` within each class (weighted by the
    soft labels `soft`), pooled over the two classes: the share of a class's score
    variance that is between problems beyond what sampling noise explains (one-way
    random-effects ANOVA). 0 when scores are conditionally independent given
    correctness; 0.4-0.9 for response length and some reward models on real data."""
    prob = pair.problem_index()
    out, mass = [], []
    for w in (np.asarray(soft, dtype=np.float64), 1.0 - np.asarray(soft, dtype=np.float64)):
        sw = np.bincount(prob, weights=w, minlength=pair.n_problems)
        keep = sw >= 2.0
        if int(keep.sum()) < 2:
            continue
        m = np.bincount(prob, weights=w * x, minlength=pair.n_problems) / np.maximum(sw, 1e-12)
        within = float(np.sum(w * (x - m[prob]) ** 2)) / max(float(w.sum()) - keep.sum(), 1.0)
        mu = float(np.average(m[keep], weights=sw[keep]))
        between = float(np.average((m[keep] - mu) ** 2, weights=sw[keep]))
        noise = float(np.average(within / sw[keep], weights=sw[keep]))
        tau2 = max(0.0, between - noise)
        out.append(tau2 / (tau2 + within) if tau2 + within > 0 else 0.0)
        mass.append(float(w.sum()))
    return float(np.average(out, weights=mass)) if out else 0.0


def _start(model: _Model, kind: str) -> FloatArray:
    """Initial soft labels: the plurality answer correct ("majority", ties shared), or
    each answer correct in proportion to its size with 0.2 left for "none" ("soft")."""
    lay = model.lay
    if kind == "majority":
        best = np.zeros(model.pair.n_problems)
        np.maximum.at(best, lay.g_prob, lay.n_g)
        top = lay.n_g == best[lay.g_prob]
        n_top = np.bincount(lay.g_prob, weights=top, minlength=model.pair.n_problems)
        r_g = np.where(top, 1.0 / np.maximum(n_top[lay.g_prob], 1.0), 0.0)
    else:
        r_g = 0.8 * lay.n_g / lay.n_p[lay.g_prob]
    soft = r_g[lay.g_of]
    return np.where(model.lab_r, model.truth.astype(np.float64), soft)


def _run(
    model: _Model, soft: FloatArray, max_iter: int, tol: float
) -> tuple[FloatArray, FloatArray, FloatArray, AnswerPrior, list[float], bool]:
    prior: AnswerPrior | None = None
    trace: list[float] = []
    converged = False
    r_g = r_none = np.zeros(0)
    for _ in range(max_iter):
        dens = model.densities(soft)
        prior = fit_prior_stats(answer_stats(model.pair, soft), prior)
        r_g, r_none, soft, ll = model.e_step(dens, prior)
        ll += model.penalty(dens)
        if trace and abs(ll - trace[-1]) <= tol * (1.0 + abs(ll)):
            trace.append(ll)
            converged = True
            break
        trace.append(ll)
    assert prior is not None
    return r_g, r_none, soft, prior, trace, converged


_Run = tuple[FloatArray, FloatArray, FloatArray, AnswerPrior, list[float], bool]


def _best_of(
    model: _Model, starts: Sequence[tuple[str, FloatArray]], max_iter: int, tol: float
) -> tuple[tuple[str, _Run], dict[str, float]]:
    """Run EM from every start; keep the first (majority vote's) unless another ends with a
    likelihood higher by more than `START_MARGIN`. The answers alone barely tell "the
    largest answer is correct" from "it is a popular wrong answer and no answer is
    correct" (the two fit a partition almost equally well), so near-ties are resolved by
    majority vote's own assumption: the largest answer is more often right."""
    runs = [(kind, _run(model, start, max_iter, tol)) for kind, start in starts]
    finals = {kind: out[4][-1] for kind, out in runs}
    best = runs[0]
    for kind, out in runs[1:]:
        if out[4][-1] > best[1][4][-1] + START_MARGIN:
            best = (kind, out)
    return best, finals


def check_identifiable(pair: PairData, labelled: BoolArray) -> None:
    """Refuse data from which the latent model cannot be fitted (see module doc)."""
    sizes = pair.sizes()
    free = ~labelled
    # labelled problems anchor the densities; unlabelled ones need two responses to say
    # anything through their answers
    multi = int(np.sum(free & (sizes >= 2))) + int(np.sum(labelled & (sizes >= 1)))
    if multi < MIN_PROBLEMS:
        raise CalibrationError(
            f"label-free calibration needs at least {MIN_PROBLEMS} problems that are labelled "
            f"or have two or more responses (this pair has {multi}): with one sample per "
            "problem nothing tells correct answers from wrong ones"
        )
    lay = _Layout.of(pair)
    if not np.any(free & (lay.k_p >= 2)) and not np.any(labelled):
        raise CalibrationError(
            "label-free calibration cannot run: in every problem all responses give the "
            "same answer, so no response is known (even probably) to be wrong"
        )


def fit_latent(
    pair: PairData,
    x: npt.ArrayLike,
    labelled: npt.ArrayLike | None = None,
    *,
    n_bins: int | None = None,
    max_iter: int = MAX_ITER,
    tol: float = TOL,
) -> LatentFit:
    """EM fit of the posterior vote's model on `pair` without its labels (except those of
    the `labelled` problems, a bool mask over problems; default none).

    `x` holds the (transformed) scores: one column per verifier, or a 1-D array for one.
    The labels of unlabelled problems are never read."""
    if max_iter < 1:
        raise CalibrationError(f"EM needs at least one iteration, got max_iter={max_iter}")
    xs = np.asarray(x, dtype=np.float64)
    if xs.ndim == 1:
        xs = xs[:, None]
    if xs.shape[0] != pair.n_responses or xs.ndim != 2 or xs.shape[1] < 1:
        raise CalibrationError("label-free calibration needs one score per response and verifier")
    if not np.all(np.isfinite(xs)):
        raise CalibrationError("label-free calibration needs finite scores")
    lab = (
        np.zeros(pair.n_problems, dtype=bool)
        if labelled is None
        else np.asarray(labelled, dtype=bool).reshape(-1)
    )
    if lab.shape != (pair.n_problems,):
        raise CalibrationError("the labelled mask needs one entry per problem")
    check_identifiable(pair, lab)
    nb = n_bins or default_bins(pair.n_responses)
    bins = np.stack([_bins(xs[:, v], nb) for v in range(xs.shape[1])], axis=1)
    # the labels of unlabelled problems must never reach the fit: blank them
    lab_r = lab[pair.problem_index()]
    blind = replace(pair, correct=np.asarray(pair.correct, dtype=bool) & lab_r, soft=None)
    model = _Model(blind, bins, lab)
    best, finals = _best_of(
        model,
        (("majority", _start(model, "majority")), ("soft", _start(model, "soft"))),
        max_iter,
        tol,
    )
    # a problem effect shared by every response of a problem (length: hard problems get
    # long answers, right or wrong) breaks conditional independence: summed over an
    # answer's responses it says "hard problem" many times over, and EM then calls the
    # answers of hard problems wrong. It is measured on EM's own soft labels (the
    # intra-problem correlation within each class); a signal that has one is left out of
    # the inference of the labels, which then rests on the answers (and the other
    # signals). The strategies' weights are still fitted on that signal, from the labels
    # so inferred, exactly as they would be from true labels.
    icc = np.asarray(
        [problem_effect(pair, xs[:, v], best[1][2]) for v in range(xs.shape[1])], dtype=np.float64
    )
    dropped = icc > ICC_MIN
    if dropped.all():
        # nothing left to separate "the largest answer is right" from "it is a popular
        # wrong answer" (the answers alone fit both about equally): majority vote's
        # labels, the assumption every self-consistency method makes
        model.use = ~dropped
        soft = _start(model, "majority")
        lay = model.lay
        r_g_maj = np.bincount(lay.g_of, weights=soft, minlength=lay.n_g.size) / lay.n_g
        prior_maj = fit_prior_stats(answer_stats(blind, soft))
        none = np.zeros(pair.n_problems)
        best = ("majority vote", (r_g_maj, none, soft, prior_maj, [], True))
        finals = {}
    elif dropped.any():
        model.use = ~dropped
        starts = (("majority", _start(model, "majority")), ("previous", best[1][2]))
        best, finals = _best_of(model, starts, max_iter, tol)
    kind, (r_g, r_none, soft, prior, trace, converged) = best
    # most probable labels: per unlabelled problem, its most probable answer (or none)
    lay = model.lay
    top = r_none.copy()
    np.maximum.at(top, lay.g_prob, r_g)
    is_top = (r_g >= top[lay.g_prob]) & (r_g > r_none[lay.g_prob])
    # one answer per problem even when two tie exactly
    first = np.full(pair.n_problems, lay.n_g.size, dtype=np.int64)
    cand = np.flatnonzero(is_top)
    np.minimum.at(first, lay.g_prob[cand], cand)  # the first of tied answers
    chosen = np.zeros(lay.n_g.size, dtype=bool)
    chosen[first[first < lay.n_g.size]] = True
    hard = np.where(lab_r, model.truth, chosen[lay.g_of])
    if float(soft.sum()) < 2.0 or float((1.0 - soft).sum()) < 2.0:
        raise CalibrationError(
            "label-free calibration found (almost) no "
            + ("correct" if float(soft.sum()) < 2.0 else "incorrect")
            + " responses: the scores and answers do not identify the two classes"
        )
    return LatentFit(
        soft=np.asarray(soft, dtype=np.float64),
        hard=np.asarray(hard, dtype=bool),
        p_none=np.where(lab, 0.0, r_none),
        prior=prior,
        loglik=tuple(trace),
        converged=converged,
        start=kind,
        starts=finals,
        n_labelled=int(lab.sum()),
        ignored=tuple(bool(v) for v in dropped),
        icc=tuple(float(v) for v in icc),
    )


def pseudo_labelled(pair: PairData, fit: LatentFit) -> PairData:
    """`pair` as a calibration pair with inferred labels: `correct` the most probable
    labels, `soft` the posterior probabilities."""
    return replace(pair, correct=fit.hard, soft=fit.soft)


def latent_scores(pair: PairData, params: StrategyParams) -> FloatArray:
    """The scores EM sees: logit of the transformed score, as every KDE fit sees them
    (the direction does not matter to a density ratio)."""
    tr = resolve_transform(params.transform, pair.score)
    return clipped_logit(apply_transform(pair.score, tr), params.clip_eps)


def label_free_pair(
    pair: PairData,
    params: StrategyParams,
    labelled: npt.ArrayLike | None = None,
    scores: FloatArray | None = None,
) -> tuple[PairData, LatentFit | None]:
    """`pair` as a calibration pair whose labels are inferred by EM, except those of the
    `labelled` problems; with every problem labelled, the pair itself (no fit). `scores`
    (one column per signal, as EM sees them) replaces the pair's own score, for several
    signals at once."""
    lab = (
        np.zeros(pair.n_problems, dtype=bool)
        if labelled is None
        else np.asarray(labelled, dtype=bool).reshape(-1)
    )
    if lab.size and lab.all():
        return pair, None
    x = np.asarray(latent_scores(pair, params) if scores is None else scores, dtype=np.float64)
    # the same calibration problems recur (a transfer source against every target, the
    # weight page after the curves): remember the last few fits
    parts = [pair.offsets.tobytes(), pair.cluster.tobytes(), x.tobytes(), lab.tobytes()]
    parts.append(np.asarray(pair.correct, dtype=bool)[np.repeat(lab, pair.sizes())].tobytes())
    digest = hashlib.blake2b(b"|".join(parts), digest_size=16).digest()
    fit = _FIT_MEMO.get(digest)
    if fit is None:
        fit = fit_latent(pair, x, lab)
        _FIT_MEMO[digest] = fit
        while len(_FIT_MEMO) > _FIT_MEMO_SIZE:
            _FIT_MEMO.pop(next(iter(_FIT_MEMO)))
    return pseudo_labelled(pair, fit), fit


_FIT_MEMO: dict[bytes, LatentFit] = {}
_FIT_MEMO_SIZE = 32


__all__ = [
    "MIN_PROBLEMS",
    "LatentFit",
    "check_identifiable",
    "default_bins",
    "fit_latent",
    "label_free_pair",
    "latent_scores",
    "problem_effect",
    "pseudo_labelled",
]
