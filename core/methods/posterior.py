"""The posterior vote's answer-level model: a prior over a problem's accuracy q and a
wrong-answer process, fitted on calibration problems, and the size term they add to a vote.

Model of one problem's N sampled responses (the simulator's own generative model, and a
reasonable one for real samples):

* q ~ Beta(a, b) across problems; each response is correct with probability q;
* the wrong responses split into wrong answers by a Pitman-Yor process (discount d,
  concentration alpha): popular wrong answers repeat, instead of Theorem 3.2's uniform
  spread over m - 1 alternatives;
* scores depend on correctness only, with log likelihood ratio w(s) (calibrated elsewhere).

The posterior of "answer a (n_a of the N responses) is the correct one", against the other
answers present, is then (every factor common to all answers dropped)

    sum_{i in a} w(s_i) + betaln(a + n_a, b + N - n_a) - lgamma(alpha + N - n_a)
                        - lgamma(n_a - d)

(q integrated out: the beta-binomial probability of exactly n_a correct; the Pitman-Yor
exchangeable partition probability of the other answers, whose number of blocks is the same
for every candidate). `size_table` tabulates the last three terms as h[n_a, N] for the
evaluation engine. With a single answer present it is chosen (h[N, N] is never read).

Fits are maximum likelihood: the beta-binomial of each calibration problem's correct count,
and the Pitman-Yor partition probability of each calibration problem's wrong answers.

Tempering: summing w over a cluster is exact only when scores are conditionally
independent given correctness. Real signals can share a problem effect (every answer to a
hard problem is long), and the sum then counts it once per response. `fit_temper` scales w
by lambda in [0, 1] chosen on calibration problems: the lambda that maximises the log
probability the posterior gives the correct answer, over random budget-N subsets of each
calibration problem (a proper scoring rule, concave in lambda when each subset has one
correct answer), kept at 1 unless a
likelihood-ratio test rejects it. Conditionally independent scores keep lambda = 1; a signal
that mostly measures difficulty (response length: 0.003-0.10 on BoInf AIME) gets a small one.
scipy.optimize is imported when a fit runs (it costs a second of start-up).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from scipy import special

from core.methods.params import CalibrationError
from core.types import BoolArray, FloatArray, IntArray, PairData

#: Bounds of the fitted parameters (the likelihood can run off to a boundary: a Beta with
#: every problem at q = 1, a partition with one wrong answer per problem). The
#: concentration bounds apply to alpha + 0.999 d (the fit's parameter, > 0 iff alpha > -d).
BETA_BOUNDS: Final = (1e-3, 1e4)
DISCOUNT_MAX: Final = 0.95
CONCENTRATION_BOUNDS: Final = (1e-3, 1e4)
#: Used when the calibration problems say nothing about the wrong-answer process (no
#: problem has two wrong responses): a Dirichlet process with concentration 1.
DEFAULT_WRONG: Final = (0.0, 1.0)
#: Tempering is applied when twice its log-likelihood gain (per problem) exceeds this: the
#: 95% point of the chi-square distribution with one degree of freedom.
TEMPER_TEST: Final = 3.841458820694124


@dataclass(frozen=True)
class AnswerPrior:
    """Prior over a problem's accuracy (Beta(a, b)) and its wrong-answer process
    (Pitman-Yor discount d, concentration alpha)."""

    a: float
    b: float
    discount: float
    concentration: float
    wrong_fitted: bool = True

    def __post_init__(self) -> None:
        if not (self.a > 0 and self.b > 0):
            raise CalibrationError(f"Beta parameters must be positive, got {self.a}, {self.b}")
        if not 0.0 <= self.discount < 1.0:
            raise CalibrationError(f"Pitman-Yor discount must be in [0, 1), got {self.discount}")
        if not self.concentration > -self.discount:
            raise CalibrationError("Pitman-Yor concentration must exceed -discount")

    def to_dict(self) -> dict[str, Any]:
        return {
            "beta_a": self.a,
            "beta_b": self.b,
            "py_discount": self.discount,
            "py_concentration": self.concentration,
            "wrong_fitted": self.wrong_fitted,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AnswerPrior:
        try:
            return cls(
                a=float(d["beta_a"]),
                b=float(d["beta_b"]),
                discount=float(d["py_discount"]),
                concentration=float(d["py_concentration"]),
                wrong_fitted=bool(d.get("wrong_fitted", True)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CalibrationError(f"bad answer prior {dict(d)!r}: {exc}") from exc

    @property
    def mean_accuracy(self) -> float:
        return self.a / (self.a + self.b)

    def size_table(self, k_max: int) -> FloatArray:
        """h[n_a, N] for 1 <= n_a < N <= k_max (0 elsewhere): the answer-level terms of the
        posterior of a cluster with n_a of the subset's N responses."""
        n = np.arange(k_max + 1, dtype=np.float64)
        k = n[:, None]
        big_n = n[None, :]
        valid = (k >= 1) & (k < big_n)
        kk = np.where(valid, k, 1.0)
        wrong = np.where(valid, big_n - k, 1.0)
        h = (
            special.betaln(self.a + kk, self.b + wrong)
            - special.gammaln(self.concentration + wrong)
            - special.gammaln(kk - self.discount)
        )
        return np.asarray(np.where(valid, h, 0.0), dtype=np.float64)


def mixture_logpdf(mixture: Mapping[str, Any], x: npt.ArrayLike) -> FloatArray:
    """Log density at `x` of a 1-D Gaussian mixture ``{"weights", "means", "sds"}``."""
    xa = np.asarray(x, dtype=np.float64)[..., None]
    w = np.asarray(mixture["weights"], dtype=np.float64)
    w = w / w.sum()
    mu = np.asarray(mixture["means"], dtype=np.float64)
    sd = np.asarray(mixture["sds"], dtype=np.float64)
    with np.errstate(divide="ignore"):
        logw = np.log(w)
    comp = logw - 0.5 * ((xa - mu) / sd) ** 2 - np.log(sd) - 0.5 * math.log(2.0 * math.pi)
    return np.asarray(special.logsumexp(comp, axis=-1), dtype=np.float64)


def wrong_partitions(pair: PairData) -> list[IntArray]:
    """Per problem with a wrong response, the sizes of its wrong answers (incorrect
    responses by cluster)."""
    wrong = ~np.asarray(pair.correct, dtype=bool)
    if not wrong.any():
        return []
    prob = pair.problem_index()[wrong]
    k_max = int(pair.cluster.max()) + 1
    keys, counts = np.unique(prob * k_max + pair.cluster[wrong], return_counts=True)
    owner = keys // k_max
    cuts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
    return [c.astype(np.int64) for c in np.split(counts, cuts[1:])]


def fit_beta_binomial(k: npt.ArrayLike, n: npt.ArrayLike) -> tuple[float, float]:
    """Maximum-likelihood Beta(a, b) of per-problem accuracies from k correct of n (on the
    distinct (k, n) pairs with their counts, analytic gradient)."""
    from scipy import optimize

    kk = np.asarray(k, dtype=np.int64)
    nn = np.asarray(n, dtype=np.int64)
    keep = nn > 0
    kk, nn = kk[keep], nn[keep]
    if kk.size == 0:
        raise CalibrationError("no calibration problem has a response")
    pairs, weight = np.unique(np.stack([kk, nn], axis=1), axis=0, return_counts=True)
    ku, nu = pairs[:, 0].astype(np.float64), pairs[:, 1].astype(np.float64)
    cnt = weight.astype(np.float64)
    total = float(cnt.sum())
    lo, hi = (math.log(v) for v in BETA_BOUNDS)

    def nll(v: FloatArray) -> tuple[float, FloatArray]:
        a, b = math.exp(float(v[0])), math.exp(float(v[1]))
        ll = float(cnt @ special.betaln(a + ku, b + nu - ku)) - total * float(special.betaln(a, b))
        dg_all = special.digamma(a + b + nu)
        da = float(cnt @ (special.digamma(a + ku) - dg_all)) - total * (
            float(special.digamma(a)) - float(special.digamma(a + b))
        )
        db = float(cnt @ (special.digamma(b + nu - ku) - dg_all)) - total * (
            float(special.digamma(b)) - float(special.digamma(a + b))
        )
        return -ll, -np.array([da * a, db * b])

    # method of moments start (clipped), then a bounded quasi-Newton search
    p = kk / nn
    m = float(np.clip(p.mean(), 0.02, 0.98))
    var = float(max(p.var(), 1e-4))
    s = float(np.clip(m * (1 - m) / var - 1.0, 0.1, 100.0))
    start = np.log([m * s, (1 - m) * s])
    res = optimize.minimize(nll, start, jac=True, method="L-BFGS-B", bounds=[(lo, hi), (lo, hi)])
    best = res.x if res.fun <= nll(start)[0] else start
    return float(math.exp(best[0])), float(math.exp(best[1]))


def fit_pitman_yor(parts: list[IntArray]) -> tuple[float, float, bool]:
    """Maximum-likelihood Pitman-Yor (discount, concentration) of the wrong-answer
    partitions, and whether the data could say anything (some problem with two or more
    wrong responses); `DEFAULT_WRONG` when not.

    The likelihood depends on the partitions through three histograms only (block sizes,
    problems with at least i + 1 blocks, wrong responses per problem), so each evaluation
    costs a few dozen terms, with an analytic gradient."""
    from scipy import optimize

    informative = [s for s in parts if int(s.sum()) >= 2]
    if not informative:
        return (*DEFAULT_WRONG, False)
    sizes = np.concatenate(informative)
    s_val, s_cnt = np.unique(sizes, return_counts=True)
    ks = np.asarray([s.size for s in informative], dtype=np.int64)
    ns = np.asarray([int(s.sum()) for s in informative], dtype=np.int64)
    n_val, n_cnt = np.unique(ns, return_counts=True)
    # blocks i = 1..K-1 of every problem: how many problems have block i
    i_val = np.arange(1, int(ks.max()), dtype=np.float64)
    i_cnt = np.asarray([(ks > i).sum() for i in range(1, int(ks.max()))], dtype=np.float64)
    s_val_f, s_cnt_f = s_val.astype(np.float64), s_cnt.astype(np.float64)
    n_val_f, n_cnt_f = n_val.astype(np.float64), n_cnt.astype(np.float64)
    n_prob, n_blocks = float(ks.size), float(ks.sum())
    lo_a, hi_a = (math.log(v) for v in CONCENTRATION_BOUNDS)

    def nll(v: FloatArray) -> tuple[float, FloatArray]:
        d = float(v[0])
        e = math.exp(float(v[1]))
        alpha = e - d * 0.999  # alpha > -d
        ai = alpha + i_val * d
        ll = float(i_cnt @ np.log(ai))
        ll -= float(n_cnt_f @ special.gammaln(alpha + n_val_f)) - n_prob * math.lgamma(alpha + 1)
        ll += float(s_cnt_f @ special.gammaln(s_val_f - d)) - n_blocks * math.lgamma(1.0 - d)
        # gradient in (alpha, d), then by the chain rule in (d, log e)
        g_alpha = float(i_cnt @ (1.0 / ai))
        g_alpha -= float(n_cnt_f @ special.digamma(alpha + n_val_f)) - n_prob * float(
            special.digamma(alpha + 1)
        )
        g_d = float(i_cnt @ (i_val / ai))
        g_d += -float(s_cnt_f @ special.digamma(s_val_f - d)) + n_blocks * float(
            special.digamma(1.0 - d)
        )
        return -ll, -np.array([g_d - 0.999 * g_alpha, g_alpha * e])

    best: FloatArray | None = None
    best_f = math.inf
    for d0, a0 in ((0.3, 1.0), (0.7, 0.3)):
        start = np.asarray([d0, math.log(a0 + d0 * 0.999)])
        res = optimize.minimize(
            nll, start, jac=True, method="L-BFGS-B", bounds=[(0.0, DISCOUNT_MAX), (lo_a, hi_a)]
        )
        if np.isfinite(res.fun) and res.fun < best_f:
            best, best_f = np.asarray(res.x, dtype=np.float64), float(res.fun)
    if best is None:
        return (*DEFAULT_WRONG, False)
    d = float(best[0])
    return d, math.exp(float(best[1])) - d * 0.999, True


def temper_groups(
    calib: PairData,
    weight: FloatArray,
    table: FloatArray,
    budget: int,
    n_subsets: int,
    seed: int,
) -> tuple[FloatArray, FloatArray, BoolArray, IntArray]:
    """Random budget-N subsets of every calibration problem (N = min(budget, n_p)) that have
    at least two answers, a correct one among them. Per (subset, answer present), in subset
    order: the answer's weight sum S, its size term H = table[n_a, N], whether it is
    correct, and the start of every subset's rows. Problems of one size are drawn together
    (random orders of their responses, cut at N), and each subset's answers are the runs of
    its sorted cluster ids."""
    n = calib.n_responses
    n_prob = calib.n_problems
    empty = (np.zeros(0), np.zeros(0), np.zeros(0, dtype=bool), np.zeros(0, dtype=np.int64))
    if n == 0 or n_subsets < 1:
        return empty
    rng = np.random.default_rng(seed)
    k = int(calib.cluster.max()) + 1
    sizes = calib.sizes()
    correct = np.asarray(calib.correct, dtype=bool)
    flat_good = np.zeros(n_prob * k, dtype=bool)
    flat_good[(calib.problem_index() * k + calib.cluster)[correct]] = True
    parts: list[tuple[FloatArray, FloatArray, BoolArray, IntArray]] = []
    n_rows = 0
    # problems of one size at once: random orders of their rows, cut at N; then each
    # subset's answers by sorting its N cluster ids (runs of equal ids)
    for m in np.unique(sizes[sizes > 0]):
        probs = np.flatnonzero(sizes == m)
        n_take = int(min(budget, m))
        rows = calib.offsets[probs][:, None] + np.arange(m)[None, :]  # (G, m)
        pick = np.argsort(rng.random((n_subsets, probs.size, int(m))), axis=2)[:, :, :n_take]
        chosen = rows[np.arange(probs.size)[None, :, None], pick].reshape(-1, n_take)  # (T*G, N)
        cid = calib.cluster[chosen]
        order = np.argsort(cid, axis=1, kind="stable")
        cid = np.take_along_axis(cid, order, axis=1)
        w = np.take_along_axis(weight[chosen], order, axis=1)
        first = np.ones(cid.shape, dtype=bool)
        first[:, 1:] = cid[:, 1:] != cid[:, :-1]
        run_start = np.flatnonzero(first.reshape(-1))  # runs never cross subsets
        run_row = run_start // n_take
        run_len = np.diff(np.r_[run_start, cid.size])
        run_sum = np.add.reduceat(w.reshape(-1), run_start)
        run_prob = probs[run_row % probs.size]
        run_good = flat_good[run_prob * k + cid.reshape(-1)[run_start]]
        n_runs = np.bincount(run_row, minlength=cid.shape[0])
        has_good = np.bincount(run_row, weights=run_good, minlength=cid.shape[0]) > 0
        usable = (n_runs >= 2) & has_good
        keep = usable[run_row]
        if not keep.any():
            continue
        kept_row = run_row[keep]
        starts = np.flatnonzero(np.r_[True, kept_row[1:] != kept_row[:-1]]) + n_rows
        parts.append(
            (
                np.asarray(run_sum[keep], dtype=np.float64),
                np.asarray(table[run_len[keep], n_take], dtype=np.float64),
                np.asarray(run_good[keep], dtype=bool),
                starts.astype(np.int64),
            )
        )
        n_rows += int(keep.sum())
    if not parts:
        return empty
    return (
        np.concatenate([q[0] for q in parts]),
        np.concatenate([q[1] for q in parts]),
        np.concatenate([q[2] for q in parts]),
        np.concatenate([q[3] for q in parts]),
    )


def _group_lse(v: FloatArray, starts: IntArray) -> FloatArray:
    """log sum exp of v over each group of rows (groups begin at `starts`); -inf for a
    group of -inf only."""
    vmax = np.maximum.reduceat(v, starts)
    safe = np.where(np.isfinite(vmax), vmax, 0.0)
    sizes = np.diff(np.r_[starts, v.size])
    with np.errstate(divide="ignore"):
        return np.asarray(
            safe + np.log(np.add.reduceat(np.exp(v - np.repeat(safe, sizes)), starts)),
            dtype=np.float64,
        )


def temper_loglik(
    lam: float, s: FloatArray, h: FloatArray, good: BoolArray, starts: IntArray
) -> float:
    """Sum over subsets of log P(a correct answer | subset) with the weights scaled by lam."""
    v = lam * s + h
    return float(np.sum(_group_lse(np.where(good, v, -np.inf), starts) - _group_lse(v, starts)))


def temper_slope(
    lam: float, s: FloatArray, h: FloatArray, good: BoolArray, starts: IntArray
) -> float:
    """Derivative of `temper_loglik` in lambda: over subsets, the posterior mean of S over
    the correct answers minus that over all answers."""
    v = lam * s + h
    sizes = np.diff(np.r_[starts, v.size])
    p_all = np.exp(v - np.repeat(_group_lse(v, starts), sizes))
    vg = np.where(good, v, -np.inf)
    p_good = np.exp(vg - np.repeat(_group_lse(vg, starts), sizes))
    return float(np.sum((p_good - p_all) * s))


def fit_temper(
    calib: PairData,
    weight: FloatArray,
    prior: AnswerPrior,
    budget: int,
    n_subsets: int = 8,
    seed: int = 0,
) -> float:
    """The lambda in [0, 1] scaling the summed weights that maximises `temper_loglik` on
    random budget-N subsets of the calibration problems (1.0 when no subset has two answers
    with a correct one among them)."""
    from scipy import optimize

    k_max = int(calib.sizes().max()) if calib.n_problems else 0
    table = prior.size_table(k_max)
    s, h, good, starts = temper_groups(calib, weight, table, budget, n_subsets, seed)
    if s.size == 0:
        return 1.0

    def loss(lam: float) -> float:
        return -temper_loglik(lam, s, h, good, starts)

    # with one correct answer per subset the objective is concave in lambda: when it still
    # rises at lambda = 1, 1 is the maximum (several correct clusters: search anyway)
    one_correct = bool(np.all(np.add.reduceat(good.astype(np.int64), starts) == 1))
    if one_correct:
        slope = temper_slope(1.0, s, h, good, starts)
        if slope >= 0.0:
            return 1.0
        # concave: the tangent at 1 bounds the gain any lambda in [0, 1] can make by
        # |slope|, so when even that cannot pass the test below, no search is needed
        if 2.0 * abs(slope) / n_subsets <= TEMPER_TEST:
            return 1.0
    res = optimize.minimize_scalar(loss, bounds=(0.0, 1.0), method="bounded")
    cands = {0.0: loss(0.0), 1.0: loss(1.0), float(res.x): float(res.fun)}
    best = min(cands, key=lambda k: cands[k])  # the bounded search never tries the ends
    # keep lambda = 1 (the model as fitted) unless the data clearly say otherwise: a
    # likelihood-ratio test, with the gain counted per problem (its subsets are not
    # independent draws)
    gain = (cands[1.0] - cands[best]) / n_subsets
    return best if 2.0 * gain > TEMPER_TEST else 1.0


def fit_answer_prior(calib: PairData) -> AnswerPrior:
    """Beta prior over q and Pitman-Yor wrong-answer process, by maximum likelihood on the
    calibration problems' labels and answer clusters. They depend on no score, so every
    verifier of one LLM shares the fit (remembered for the last few calibration sets)."""
    key = (
        calib.offsets.tobytes(),
        calib.cluster.tobytes(),
        np.asarray(calib.correct, dtype=bool).tobytes(),
    )
    digest = hashlib.blake2b(b"|".join(key), digest_size=16).digest()
    hit = _PRIOR_MEMO.get(digest)
    if hit is not None:
        return hit
    prior = _fit_answer_prior(calib)
    _PRIOR_MEMO[digest] = prior
    while len(_PRIOR_MEMO) > _PRIOR_MEMO_SIZE:
        _PRIOR_MEMO.pop(next(iter(_PRIOR_MEMO)))
    return prior


_PRIOR_MEMO: dict[bytes, AnswerPrior] = {}
_PRIOR_MEMO_SIZE = 64


def _fit_answer_prior(calib: PairData) -> AnswerPrior:
    k, n = calib.n_correct(), calib.sizes()
    a, b = fit_beta_binomial(k, n)
    d, alpha, informative = fit_pitman_yor(wrong_partitions(calib))
    return AnswerPrior(a=a, b=b, discount=d, concentration=alpha, wrong_fitted=informative)


__all__ = [
    "AnswerPrior",
    "fit_answer_prior",
    "fit_beta_binomial",
    "fit_pitman_yor",
    "fit_temper",
    "mixture_logpdf",
    "temper_groups",
    "temper_loglik",
    "temper_slope",
    "wrong_partitions",
]
