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
calibration problem (a proper scoring rule, concave in lambda), kept at 1 unless a
likelihood-ratio test rejects it. Conditionally independent scores keep lambda = 1; a signal
that mostly measures difficulty (response length: 0.02-0.10 on BoInf AIME) gets a small one.
scipy.optimize is imported when a fit runs (it costs a second of start-up).
"""

from __future__ import annotations

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
#: every problem at q = 1, a partition with one wrong answer per problem).
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


def correct_counts(pair: PairData) -> tuple[IntArray, IntArray]:
    """(correct responses, responses) per problem."""
    k = np.add.reduceat(pair.correct.astype(np.int64), pair.offsets[:-1])
    n = pair.sizes()
    k = np.where(n > 0, k, 0)
    return np.asarray(k, dtype=np.int64), np.asarray(n, dtype=np.int64)


def wrong_partitions(pair: PairData) -> list[IntArray]:
    """Per problem, the sizes of its wrong answers (incorrect responses by cluster)."""
    out = []
    for p in range(pair.n_problems):
        lo, hi = int(pair.offsets[p]), int(pair.offsets[p + 1])
        wrong = pair.cluster[lo:hi][~pair.correct[lo:hi]]
        if wrong.size:
            out.append(np.unique(wrong, return_counts=True)[1].astype(np.int64))
    return out


def fit_beta_binomial(k: npt.ArrayLike, n: npt.ArrayLike) -> tuple[float, float]:
    """Maximum-likelihood Beta(a, b) of per-problem accuracies from k correct of n."""
    from scipy import optimize

    kk = np.asarray(k, dtype=np.float64)
    nn = np.asarray(n, dtype=np.float64)
    keep = nn > 0
    kk, nn = kk[keep], nn[keep]
    if kk.size == 0:
        raise CalibrationError("no calibration problem has a response")
    lo, hi = (math.log(v) for v in BETA_BOUNDS)

    def nll(v: FloatArray) -> float:
        a, b = math.exp(v[0]), math.exp(v[1])
        return -float(np.sum(special.betaln(a + kk, b + nn - kk)) - kk.size * special.betaln(a, b))

    # method of moments start (clipped), then a bounded quasi-Newton search
    p = kk / nn
    m = float(np.clip(p.mean(), 0.02, 0.98))
    var = float(max(p.var(), 1e-4))
    s = float(np.clip(m * (1 - m) / var - 1.0, 0.1, 100.0))
    start = np.log([m * s, (1 - m) * s])
    res = optimize.minimize(nll, start, method="L-BFGS-B", bounds=[(lo, hi), (lo, hi)])
    best = res.x if res.fun <= nll(start) else start
    return float(math.exp(best[0])), float(math.exp(best[1]))


def pitman_yor_loglik(parts: list[IntArray], d: float, alpha: float) -> float:
    """Log exchangeable partition probability of every partition in `parts` under
    Pitman-Yor(d, alpha)."""
    total = 0.0
    for sizes in parts:
        n = int(sizes.sum())
        kb = sizes.size
        i = np.arange(1, kb, dtype=np.float64)
        total += float(np.sum(np.log(alpha + i * d)))
        total -= math.lgamma(alpha + n) - math.lgamma(alpha + 1.0)
        total += float(np.sum(special.gammaln(sizes - d))) - kb * math.lgamma(1.0 - d)
    return total


def fit_pitman_yor(parts: list[IntArray]) -> tuple[float, float, bool]:
    """Maximum-likelihood Pitman-Yor (discount, concentration) of the wrong-answer
    partitions, and whether the data could say anything (some problem with two or more
    wrong responses); `DEFAULT_WRONG` when not."""
    from scipy import optimize

    informative = [s for s in parts if int(s.sum()) >= 2]
    if not informative:
        return (*DEFAULT_WRONG, False)
    # flat arrays: every problem's block sizes, its block indices 1..K-1, and its n
    sizes = np.concatenate(informative).astype(np.float64)
    ks = np.asarray([s.size for s in informative], dtype=np.float64)
    ns = np.asarray([s.sum() for s in informative], dtype=np.float64)
    idx = np.concatenate([np.arange(1, s.size, dtype=np.float64) for s in informative])
    lo_a, hi_a = (math.log(v) for v in CONCENTRATION_BOUNDS)

    def nll(v: FloatArray) -> float:
        d = float(v[0])
        alpha = math.exp(float(v[1])) - d * 0.999  # alpha > -d
        ll = float(np.sum(np.log(alpha + idx * d)))
        ll -= float(np.sum(special.gammaln(alpha + ns))) - ns.size * math.lgamma(alpha + 1.0)
        ll += float(np.sum(special.gammaln(sizes - d))) - float(ks.sum()) * math.lgamma(1.0 - d)
        return -ll

    best: FloatArray | None = None
    best_f = math.inf
    for d0 in (0.1, 0.5):
        for a0 in (0.5, 3.0):
            start = np.asarray([d0, math.log(a0 + d0 * 0.999)])
            res = optimize.minimize(
                nll, start, method="L-BFGS-B", bounds=[(0.0, DISCOUNT_MAX), (lo_a, hi_a)]
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
    correct, and the start of every subset's rows."""
    rng = np.random.default_rng(seed)
    parts: list[tuple[FloatArray, FloatArray, BoolArray, IntArray]] = []
    for p in range(calib.n_problems):
        lo, hi = int(calib.offsets[p]), int(calib.offsets[p + 1])
        cl = calib.cluster[lo:hi]
        n_p = hi - lo
        k = int(cl.max()) + 1 if n_p else 0
        if n_p < 2 or k < 2:
            continue
        n = min(budget, n_p)
        idx = np.argsort(rng.random((n_subsets, n_p)), axis=1)[:, :n]  # (T, N)
        rows = (np.arange(n_subsets)[:, None] * k + cl[idx]).reshape(-1)
        counts = np.bincount(rows, minlength=n_subsets * k).reshape(n_subsets, k)
        sums = np.bincount(rows, weights=weight[lo:hi][idx].reshape(-1), minlength=n_subsets * k)
        good = np.zeros(k, dtype=bool)
        good[cl[calib.correct[lo:hi]]] = True
        present = counts > 0
        keep = (present.sum(axis=1) >= 2) & (present & good).any(axis=1)
        if not keep.any():
            continue
        t_idx, a_idx = np.nonzero(present[keep])  # row-major: grouped by subset
        cnt = counts[keep][t_idx, a_idx]
        parts.append(
            (
                sums.reshape(n_subsets, k)[keep][t_idx, a_idx],
                table[cnt, n],
                good[a_idx],
                t_idx,
            )
        )
    if not parts:
        z = np.zeros(0)
        return z, z, np.zeros(0, dtype=bool), np.zeros(0, dtype=np.int64)
    starts: list[IntArray] = []
    offset = 0
    for q in parts:  # a subset's rows begin where its index changes within its problem
        t = q[3]
        starts.append(np.flatnonzero(np.r_[True, t[1:] != t[:-1]]) + offset)
        offset += t.size
    return (
        np.concatenate([q[0] for q in parts]),
        np.concatenate([q[1] for q in parts]),
        np.concatenate([q[2] for q in parts]),
        np.concatenate(starts).astype(np.int64),
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


def fit_temper(
    calib: PairData,
    weight: FloatArray,
    prior: AnswerPrior,
    budget: int,
    n_subsets: int = 32,
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
    calibration problems' labels and answer clusters."""
    k, n = correct_counts(calib)
    a, b = fit_beta_binomial(k, n)
    d, alpha, informative = fit_pitman_yor(wrong_partitions(calib))
    return AnswerPrior(a=a, b=b, discount=d, concentration=alpha, wrong_fitted=informative)


__all__ = [
    "AnswerPrior",
    "correct_counts",
    "fit_answer_prior",
    "fit_beta_binomial",
    "fit_pitman_yor",
    "fit_temper",
    "mixture_logpdf",
    "pitman_yor_loglik",
    "temper_groups",
    "temper_loglik",
    "wrong_partitions",
]
