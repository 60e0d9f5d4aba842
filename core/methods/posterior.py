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
from core.types import BoolArray, FloatArray, IntArray, PairData, VoteInputs

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

    def none_table(self, k_max: int) -> FloatArray:
        """z[m, N] for 1 <= m <= N <= k_max: with S_a the summed log likelihood ratios of
        answer a (n_a of N responses, m distinct answers), its log posterior odds against
        "none of the subset's answers is correct" are S_a + h[n_a, N] - z[m, N]
        (h: `size_table`, which is 0 at n_a = N; z[1, N] carries that case's terms).

        Under the model: q ~ Beta(a, b); correct responses share one answer; wrong ones
        follow a Pitman-Yor(d, alpha) partition. "a is correct" has probability
        B(a + n_a, b + N - n_a) EPPF(other clusters) prod f1/f0, "none is" B(a, b + N)
        EPPF(all clusters); their ratio is the formula above."""
        n = np.arange(k_max + 1, dtype=np.float64)
        m = n[:, None]
        big_n = n[None, :]
        valid = (m >= 1) & (m <= big_n) & (big_n >= 1)
        nn = np.where(valid, big_n, 1.0)
        mm = np.where(valid, m, 1.0)
        d, alpha = self.discount, self.concentration
        common = (
            special.betaln(self.a, self.b + nn)
            - special.gammaln(alpha + nn)
            - special.gammaln(1.0 - d)
        )
        many = common + np.log(np.maximum(alpha + (mm - 1.0) * d, 1e-300))
        # m = 1: the one cluster holds all N responses; h[N, N] is 0 in the size table
        one = common - (
            special.betaln(self.a + nn, self.b)
            - special.gammaln(alpha + 1.0)
            - special.gammaln(nn - d)
        )
        z = np.where(mm == 1.0, one, many)
        return np.asarray(np.where(valid, z, 0.0), dtype=np.float64)


def size_inputs(weight: FloatArray, prior: AnswerPrior, pair: PairData) -> VoteInputs:
    """A summed vote of `weight` plus the prior's size term h[n_a, N] (and its "no answer
    is correct" term z[m, N], for the posterior stop)."""
    k_max = int(pair.sizes().max()) if pair.n_problems else 0
    return VoteInputs(
        weight=weight,
        size_tables=prior.size_table(k_max)[None, :, :],
        size_index=np.zeros(pair.n_responses, dtype=np.int64),
        none_tables=prior.none_table(k_max)[None, :, :],
    )


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


def fit_beta_binomial(
    k: npt.ArrayLike,
    n: npt.ArrayLike,
    weight: npt.ArrayLike | None = None,
    start: tuple[float, float] | None = None,
) -> tuple[float, float]:
    """Maximum-likelihood Beta(a, b) of per-problem accuracies from k correct of n (on the
    distinct (k, n) pairs with their counts, analytic gradient).

    `weight` counts each (k, n) with a weight (label-free calibration: the posterior
    probability of that correct count); `start` (a previous fit) is kept unless the search
    improves on it, so EM's M-step never lowers its objective."""
    from scipy import optimize

    kk = np.asarray(k, dtype=np.int64)
    nn = np.asarray(n, dtype=np.int64)
    ww = np.ones(kk.shape) if weight is None else np.asarray(weight, dtype=np.float64)
    keep = (nn > 0) & (ww > 0)
    kk, nn, ww = kk[keep], nn[keep], ww[keep]
    if kk.size == 0:
        raise CalibrationError("no calibration problem has a response")
    pairs, inverse = np.unique(np.stack([kk, nn], axis=1), axis=0, return_inverse=True)
    ku, nu = pairs[:, 0].astype(np.float64), pairs[:, 1].astype(np.float64)
    cnt = np.bincount(inverse.reshape(-1), weights=ww, minlength=pairs.shape[0])
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

    if start is None:
        # method of moments start (clipped), then a bounded quasi-Newton search
        p = kk / nn
        m = float(np.clip(np.average(p, weights=ww), 0.02, 0.98))
        var = float(max(np.average((p - np.average(p, weights=ww)) ** 2, weights=ww), 1e-4))
        s = float(np.clip(m * (1 - m) / var - 1.0, 0.1, 100.0))
        x0 = np.log([m * s, (1 - m) * s])
    else:
        x0 = np.clip(np.log(np.asarray(start, dtype=np.float64)), lo, hi)
    res = optimize.minimize(nll, x0, jac=True, method="L-BFGS-B", bounds=[(lo, hi), (lo, hi)])
    best = res.x if res.fun <= nll(x0)[0] else x0
    return float(math.exp(best[0])), float(math.exp(best[1]))


@dataclass(frozen=True)
class PartitionStats:
    """Weighted sufficient statistics of wrong-answer partitions for the Pitman-Yor
    likelihood: block sizes, responses per partition and blocks per partition, each as
    (values, weights). A partition of fewer than two responses has probability 1 whatever
    the parameters (its terms cancel), so only its presence in `informative` matters."""

    sizes: FloatArray
    size_w: FloatArray
    totals: FloatArray
    total_w: FloatArray
    blocks: FloatArray
    block_w: FloatArray

    @classmethod
    def of(
        cls,
        sizes: npt.ArrayLike,
        size_w: npt.ArrayLike,
        totals: npt.ArrayLike,
        total_w: npt.ArrayLike,
        blocks: npt.ArrayLike,
        block_w: npt.ArrayLike,
    ) -> PartitionStats:
        """Statistics from per-block (size, weight) and per-partition (responses, blocks,
        weight) arrays; partitions of fewer than two responses are dropped."""
        tt = np.asarray(totals, dtype=np.float64)
        tw = np.asarray(total_w, dtype=np.float64)
        bb = np.asarray(blocks, dtype=np.float64)
        bw = np.asarray(block_w, dtype=np.float64)
        use = (tt >= 2) & (tw > 0)
        return cls(
            sizes=np.asarray(sizes, dtype=np.float64),
            size_w=np.asarray(size_w, dtype=np.float64),
            totals=tt[use],
            total_w=tw[use],
            blocks=bb[use],
            block_w=bw[use],
        )

    @property
    def informative(self) -> bool:
        return bool(self.total_w.size) and float(self.total_w.sum()) > 0


def fit_pitman_yor(parts: list[IntArray]) -> tuple[float, float, bool]:
    """Maximum-likelihood Pitman-Yor (discount, concentration) of the wrong-answer
    partitions, and whether the data could say anything (some problem with two or more
    wrong responses); `DEFAULT_WRONG` when not."""
    if not parts:
        return (*DEFAULT_WRONG, False)
    sizes = np.concatenate(parts)
    ones = np.ones(len(parts))
    totals = [int(p.sum()) for p in parts]
    blocks = [p.size for p in parts]
    stats = PartitionStats.of(sizes, np.ones(sizes.size), totals, ones, blocks, ones)
    return fit_pitman_yor_stats(stats)


def _hist(values: FloatArray, weights: FloatArray) -> tuple[FloatArray, FloatArray]:
    keep = weights > 0
    u, inv = np.unique(values[keep], return_inverse=True)
    counts = np.bincount(inv.reshape(-1), weights=weights[keep], minlength=u.size)
    return np.asarray(u, dtype=np.float64), np.asarray(counts, dtype=np.float64)


def fit_pitman_yor_stats(
    stats: PartitionStats, start: tuple[float, float] | None = None
) -> tuple[float, float, bool]:
    """`fit_pitman_yor` on weighted sufficient statistics (EM's M-step passes the posterior
    weight of every candidate partition, and its previous fit as `start`, kept unless
    improved on).

    The likelihood depends on the partitions through three histograms only (block sizes,
    partitions with at least i + 1 blocks, responses per partition), so each evaluation
    costs a few dozen terms, with an analytic gradient."""
    from scipy import optimize

    if not stats.informative:
        return (*DEFAULT_WRONG, False)
    s_val_f, s_cnt_f = _hist(stats.sizes, stats.size_w)
    n_val_f, n_cnt_f = _hist(stats.totals, stats.total_w)
    k_max = int(stats.blocks.max())
    # blocks i = 1..K-1 of every partition: the weight of partitions that have block i
    i_val = np.arange(1, k_max, dtype=np.float64)
    # weight of the partitions with more than i blocks, i = 1..K-1 (a reverse cumulative sum
    # of the weight per block count: linear in the partitions)
    per_k = np.bincount(stats.blocks.astype(np.int64), weights=stats.block_w, minlength=k_max + 1)
    i_cnt = np.asarray(np.cumsum(per_k[::-1])[::-1][2 : k_max + 1], dtype=np.float64)
    n_prob, n_blocks = float(stats.total_w.sum()), float(s_cnt_f.sum())
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
    starts = [np.asarray([d0, math.log(a0 + d0 * 0.999)]) for d0, a0 in ((0.3, 1.0), (0.7, 0.3))]
    if start is not None:
        d0 = float(np.clip(start[0], 0.0, DISCOUNT_MAX))
        e0 = float(np.clip(start[1] + d0 * 0.999, *CONCENTRATION_BOUNDS))
        here = np.asarray([d0, math.log(e0)])
        starts.insert(0, here)
        f_here = nll(here)[0]
        if np.isfinite(f_here):
            best, best_f = here, float(f_here)
    for x0 in starts:
        res = optimize.minimize(
            nll, x0, jac=True, method="L-BFGS-B", bounds=[(0.0, DISCOUNT_MAX), (lo_a, hi_a)]
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


@dataclass(frozen=True, eq=False)
class AnswerStats:
    """What the answer-level model is fitted on: weighted (correct count, responses) of
    every problem for the Beta prior, and weighted wrong-answer partitions."""

    k: FloatArray
    n: FloatArray
    weight: FloatArray
    partitions: PartitionStats


def answer_stats(pair: PairData, labels: npt.ArrayLike | None = None) -> AnswerStats:
    """The answer-level fitting data of `pair` under labels that may be soft.

    `labels` are per-response probabilities of being correct (default: the pair's own
    labels, else its `soft` labels when it has them). A problem whose labels are all 0 or
    1 counts once, as labelled: k = its correct responses, its wrong partition the
    incorrect responses by cluster. Any other problem is a mixture over which of its
    answers is the correct one (or none): answer c, with posterior r_c (its responses'
    label), contributes (k = n_c, weight r_c) and the partition of the other answers;
    "none", with 1 - sum r_c, contributes (k = 0) and the partition of all answers. This
    is the M-step of label-free calibration (`core.methods.latent`)."""
    if labels is None:
        labels = pair.correct if pair.soft is None else pair.soft
    soft = np.asarray(labels, dtype=np.float64)
    if soft.shape != (pair.n_responses,):
        raise CalibrationError("answer_stats needs one label per response")
    sizes = pair.sizes()
    if pair.n_problems == 0 or pair.n_responses == 0:
        raise CalibrationError("no calibration problem has a response")
    prob = pair.problem_index()
    k_max = int(pair.cluster.max()) + 1
    keys, g_of = np.unique(prob * k_max + pair.cluster, return_inverse=True)
    g_of = g_of.reshape(-1)
    g_prob = keys // k_max
    n_g = np.bincount(g_of).astype(np.float64)
    n_p = sizes.astype(np.float64)
    k_p = np.bincount(g_prob, minlength=pair.n_problems).astype(np.float64)
    unsure = (soft > 0.0) & (soft < 1.0)
    lab_p = np.bincount(prob, weights=unsure, minlength=pair.n_problems) == 0
    lab_g = lab_p[g_prob]
    # labelled form
    good = soft > 0.5
    k_lab = np.bincount(prob, weights=good, minlength=pair.n_problems)
    wrong_g = np.bincount(g_of, weights=~good, minlength=keys.size)
    blocks_lab = np.bincount(g_prob, weights=wrong_g > 0, minlength=pair.n_problems)
    # mixture form
    r_g = np.bincount(g_of, weights=soft, minlength=keys.size) / n_g
    r_none = np.clip(1.0 - np.bincount(g_prob, weights=r_g, minlength=pair.n_problems), 0.0, 1.0)
    has = sizes > 0
    lp, up = lab_p & has, ~lab_p & has
    ug = ~lab_g
    lab_blocks = lab_g & (wrong_g > 0)
    parts = PartitionStats.of(
        sizes=np.r_[wrong_g[lab_blocks], n_g[ug]],
        size_w=np.r_[np.ones(int(lab_blocks.sum())), 1.0 - r_g[ug]],
        totals=np.r_[n_p[lp] - k_lab[lp], n_p[g_prob[ug]] - n_g[ug], n_p[up]],
        total_w=np.r_[np.ones(int(lp.sum())), r_g[ug], r_none[up]],
        blocks=np.r_[blocks_lab[lp], k_p[g_prob[ug]] - 1.0, k_p[up]],
        block_w=np.r_[np.ones(int(lp.sum())), r_g[ug], r_none[up]],
    )
    return AnswerStats(
        k=np.r_[k_lab[lp], n_g[ug], np.zeros(int(up.sum()))],
        n=np.r_[n_p[lp], n_p[g_prob[ug]], n_p[up]],
        weight=np.r_[np.ones(int(lp.sum())), r_g[ug], r_none[up]],
        partitions=parts,
    )


def fit_prior_stats(stats: AnswerStats, start: AnswerPrior | None = None) -> AnswerPrior:
    """Maximum-likelihood answer prior on (weighted) answer statistics; from `start` (a
    previous fit), never a worse one."""
    a, b = fit_beta_binomial(
        stats.k, stats.n, stats.weight, None if start is None else (start.a, start.b)
    )
    wrong_start = (
        None
        if start is None or not start.wrong_fitted
        else (
            start.discount,
            start.concentration,
        )
    )
    d, alpha, informative = fit_pitman_yor_stats(stats.partitions, wrong_start)
    return AnswerPrior(a=a, b=b, discount=d, concentration=alpha, wrong_fitted=informative)


def fit_answer_prior(calib: PairData) -> AnswerPrior:
    """Beta prior over q and Pitman-Yor wrong-answer process, by maximum likelihood on the
    calibration problems' labels (soft labels when label-free calibration inferred them)
    and answer clusters. They depend on no score, so every verifier of one LLM shares the
    fit (remembered for the last few calibration sets)."""
    labels = np.asarray(calib.correct if calib.soft is None else calib.soft, dtype=np.float64)
    key = (calib.offsets.tobytes(), calib.cluster.tobytes(), labels.tobytes())
    digest = hashlib.blake2b(b"|".join(key), digest_size=16).digest()
    hit = _PRIOR_MEMO.get(digest)
    if hit is not None:
        return hit
    prior = fit_prior_stats(answer_stats(calib, labels))
    _PRIOR_MEMO[digest] = prior
    while len(_PRIOR_MEMO) > _PRIOR_MEMO_SIZE:
        _PRIOR_MEMO.pop(next(iter(_PRIOR_MEMO)))
    return prior


_PRIOR_MEMO: dict[bytes, AnswerPrior] = {}
_PRIOR_MEMO_SIZE = 64


__all__ = [
    "AnswerPrior",
    "AnswerStats",
    "PartitionStats",
    "answer_stats",
    "fit_answer_prior",
    "fit_beta_binomial",
    "fit_pitman_yor",
    "fit_pitman_yor_stats",
    "fit_prior_stats",
    "fit_temper",
    "mixture_logpdf",
    "size_inputs",
    "temper_groups",
    "temper_loglik",
    "temper_slope",
    "wrong_partitions",
]
