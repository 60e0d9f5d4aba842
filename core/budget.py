"""Accuracy-vs-budget engine: sampled weighted voting with common random numbers, exact
best-of-N and pass@N estimators.

Accuracy at budget N on one problem is the expectation, over random size-N subsets of its
responses drawn without replacement, of the credit the strategy earns on the subset. The
sampled estimate uses T random permutations per problem; budget N looks at the first N
entries of each permutation, so the subsets are nested across budgets and identical for
every strategy (common random numbers).

Permutations are never stored: they are regenerated inside the compiled kernel from a
counter-based generator keyed by (seed, problem key, permutation index), so they cost no
memory, no ``argsort`` pass, and the same seed gives the same subsets in every call (and
for every pair sharing the problem ids and response order). :meth:`Subsets.permutations`
materialises them on demand, e.g. for the plain-Python reference in :mod:`core.reference`.

Tie rule (shared verbatim by :mod:`core.reference`):
    *Weighted votes* - the cluster totals are v_a = S_a (+ n_a * c with the q-term). Let
    ``best = max_a v_a`` and ``scale = sum_i |w_i|`` over the subset (plus ``N * |c|`` with
    the q-term), i.e. the magnitude that bounds the rounding error of the sums. Every cluster
    with ``v_a >= best - TIE_RTOL * scale`` is tied for first; the credit is the mean, over
    the tied clusters, of each cluster's correctness.
    *Best-of-N* - responses whose weight equals the subset maximum exactly are tied; the
    credit is the fraction of them that are correct.
    A cluster's correctness is the fraction of its responses in the subset marked correct
    (0 or 1 whenever grading is consistent within clusters).
That is ``tie_break="fractional"`` (the default). ``tie_break="first"`` decides what is tied
in exactly the same way but then credits only one candidate: among the tied clusters, the
one whose earliest response in the subset's draw order comes first (best-of: the earliest
tied response in draw order), as ``Counter(preds[:k]).most_common(1)`` and
``rm_score.index(max(rm_score))`` do in scripts such as Qwen2.5-Math's
``evaluation/rm_maj_eval.py``. With the q-term the rule applies to the adjusted totals;
with m == 1 there is nothing to break.

Subset order (``order`` of :func:`make_subsets`):
    ``"random"`` (default) - T random orders per problem, as described above.
    ``"sample"`` - one order per problem, the identity over its rows as stored in PairData
    (sorted by ``sample_idx``), so budget N evaluates the first N samples in sampling order
    (``preds[:N]``; what non-iid data such as beam search needs). T is 1.

Exact estimators: :func:`exact_best_of_n` and :func:`exact_pass_at_n` are expectations over
*random* subsets. They are therefore never used with ``order="sample"``: there
:func:`accuracy_curves` evaluates best-of strategies with the kernel (as with
``exact_best_of=False``) and flags them ``exact=False``; pass@N in sampling order is the
kernel's best-of over ``weight = correct`` (``VoteInputs(correct.astype(float),
best_of=True)``), not :func:`exact_pass_at_n`. With ``order="random"`` the exact best-of
formula stays valid for both tie rules: the draw order is uniformly random, so the earliest
of the tied maxima is a uniform pick among them and its expected credit is the fraction of
them that are correct. (This does *not* carry over to cluster votes: under ``"first"`` a
tied cluster wins with probability proportional to its number of responses in the subset.)
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numba
import numpy as np
import numpy.typing as npt
from scipy.special import gammaln

from core.types import FloatArray, IntArray, PairData, TTSLabError

U64Array = npt.NDArray[np.uint64]

#: Relative tolerance of the weighted-vote tie rule (see module docstring).
TIE_RTOL: float = 1e-12
#: q = mean of g over the subset is clipped to [Q_EPS, 1 - Q_EPS] before the log-odds term.
Q_EPS: float = 1e-6
#: Largest stacked (strategies x responses) weight matrix handed to the kernel at once.
_MAX_MATRIX_ENTRIES = 4_000_000
#: Accepted values of ``order`` (subset order) and ``tie_break`` (see module docstring).
ORDERS: tuple[str, ...] = ("random", "sample")
TIE_BREAKS: tuple[str, ...] = ("fractional", "first")

__all__ = [
    "ORDERS",
    "Q_EPS",
    "TIE_BREAKS",
    "TIE_RTOL",
    "BudgetError",
    "CurveSet",
    "Subsets",
    "VoteInputs",
    "accuracy_curves",
    "default_budgets",
    "exact_best_of_n",
    "exact_pass_at_n",
    "make_subsets",
    "subset_credits",
]


class BudgetError(TTSLabError, ValueError):
    """Raised for malformed budgets, subsets or vote inputs."""


# --------------------------------------------------------------------------------------
# value types
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class VoteInputs:
    """What one strategy feeds the vote.

    Attributes:
        weight: per response (aligned with PairData rows), additive weight w_i; a cluster's
            total is the sum of w_i over its responses in the subset.
        g: optional per-response calibrated P(correct | s) in [0, 1]. If given, each cluster
            total also gets ``n_a * log(q (m - 1) / (1 - q))`` with
            ``q = clip(mean of g over the subset, Q_EPS, 1 - Q_EPS)`` and m the number of
            distinct clusters in the subset; if m == 1 that single cluster is chosen
            (Theorem 3.2 of Kuang et al.).
        best_of: best-of-N: choose the cluster of the single highest ``weight`` in the
            subset instead of cluster sums (``g`` must then be None).
    """

    weight: FloatArray
    g: FloatArray | None = None
    best_of: bool = False


def default_budgets(n_max: int) -> tuple[int, ...]:
    """1, 2, 4, ... up to ``n_max``, plus ``n_max`` itself if it is not a power of two."""
    n_max = int(n_max)
    if n_max < 1:
        raise BudgetError(f"n_max must be >= 1, got {n_max}")
    out: list[int] = []
    b = 1
    while b <= n_max:
        out.append(b)
        b *= 2
    if out[-1] != n_max:
        out.append(n_max)
    return tuple(out)


def _normalise_budgets(budgets: Sequence[int] | None, n_max: int) -> tuple[int, ...]:
    if budgets is None:
        return default_budgets(max(n_max, 1))
    try:
        vals = [int(b) for b in budgets]
    except (TypeError, ValueError) as exc:
        raise BudgetError(f"budgets must be integers, got {budgets!r}") from exc
    if any(float(b) != int(b) for b in budgets):
        raise BudgetError(f"budgets must be integers, got {budgets!r}")
    if not vals:
        raise BudgetError("budgets must not be empty")
    if min(vals) < 1:
        raise BudgetError(f"budgets must be >= 1, got {sorted(vals)}")
    return tuple(sorted(set(vals)))


def _problem_keys(problem_ids: Sequence[str]) -> U64Array:
    keys = np.empty(len(problem_ids), dtype=np.uint64)
    for i, pid in enumerate(problem_ids):
        digest = hashlib.blake2b(str(pid).encode("utf-8"), digest_size=8).digest()
        keys[i] = np.uint64(int.from_bytes(digest, "little"))
    return keys


def _check_order(order: str) -> str:
    if order not in ORDERS:
        raise BudgetError(f"order must be one of {', '.join(ORDERS)}, got {order!r}")
    return order


def _check_tie_break(tie_break: str) -> str:
    if tie_break not in TIE_BREAKS:
        raise BudgetError(f"tie_break must be one of {', '.join(TIE_BREAKS)}, got {tie_break!r}")
    return tie_break


@dataclass(frozen=True, eq=False)
class Subsets:
    """Common random numbers: T nested random orders of each problem's responses.

    Budget N uses the first ``min(N, n_p)`` entries of each order. The orders are defined
    by (seed, problem key, t) and regenerated on demand; see :meth:`permutations`. With
    ``order="sample"`` there is one order per problem (T = 1), the identity over its rows
    (sampling order).

    Attributes:
        budgets: sorted distinct budgets.
        n_subsets: T, the number of random orders per problem.
        seed: generator seed.
        sizes: n_p per problem.
        keys: per-problem generator key (a hash of the problem id when built from a pair,
            else the problem index).
        problem_ids: ids the subsets were built for (None when built from sizes).
        n_clipped: per budget, how many problems have fewer than N responses (their
            subsets at that budget are the full response set).
        order: ``"random"`` (random orders drawn from the seed) or ``"sample"`` (the
            identity: budget N is the first N rows of the problem; ``seed`` is unused).
    """

    budgets: tuple[int, ...]
    n_subsets: int
    seed: int
    sizes: IntArray
    keys: U64Array
    problem_ids: tuple[str, ...] | None = None
    n_clipped: tuple[int, ...] = field(default=())
    order: str = "random"

    def __post_init__(self) -> None:
        _check_order(self.order)

    @property
    def n_problems(self) -> int:
        return len(self.sizes)

    def permutations(self, p: int, n_take: int | None = None) -> IntArray:
        """The T orders of problem ``p`` as a (T, n_take) int64 array of local indices.

        ``n_take`` defaults to n_p; any prefix equals the prefix of the full order.
        """
        n = int(self.sizes[p])
        k = n if n_take is None else min(int(n_take), n)
        if self.order == "sample":
            return np.tile(np.arange(k, dtype=np.int64), (self.n_subsets, 1))
        out = np.empty((self.n_subsets, k), dtype=np.int64)
        _fill_permutations(n, k, self.keys[p], _seed_key(self.seed), out)
        return out

    def subset(self, p: int, t: int, budget: int) -> IntArray:
        """Local row indices (in draw order) of subset ``t`` of problem ``p`` at ``budget``."""
        n = int(self.sizes[p])
        k = min(int(budget), n)
        if self.order == "sample":
            return np.arange(k, dtype=np.int64)
        perm = np.empty(n, dtype=np.int64)
        state = np.uint64(_stream_state(_seed_key(self.seed), self.keys[p], int(t)))
        _draw_prefix(perm, n, k, state)
        return perm[:k].copy()


def make_subsets(
    pair_or_sizes: PairData | Sequence[int] | IntArray,
    budgets: Sequence[int] | None = None,
    n_subsets: int = 200,
    seed: int = 0,
    *,
    order: str = "random",
) -> Subsets:
    """Define T nested random subsets per problem (common random numbers).

    Args:
        pair_or_sizes: a PairData (keys are hashes of its problem ids, so every pair over
            the same problems and response order gets the same subsets) or the per-problem
            sizes n_p (keys are the problem indices).
        budgets: budgets to evaluate; default :func:`default_budgets` of the largest n_p.
            Budgets larger than a problem's n_p are clipped to n_p (counted in
            ``n_clipped``).
        n_subsets: T, random orders per problem (with ``order="sample"`` forced to 1).
        seed: generator seed; same seed -> same subsets (recorded but unused with
            ``order="sample"``).
        order: ``"random"`` (default): T random orders per problem. ``"sample"``: one
            order per problem, the identity over its rows as stored in PairData (sorted by
            ``sample_idx``), so budget N evaluates the first N samples in sampling order
            (for non-iid data such as beam search, and to reproduce scripts that take
            ``preds[:N]``). Exact best-of / pass@N formulas do not apply to it (see the
            module docstring).
    """
    if isinstance(pair_or_sizes, PairData):
        sizes = np.asarray(pair_or_sizes.sizes(), dtype=np.int64)
        ids: tuple[str, ...] | None = tuple(pair_or_sizes.problem_ids)
        keys = _problem_keys(pair_or_sizes.problem_ids)
    else:
        sizes = np.array(pair_or_sizes, dtype=np.int64).reshape(-1)  # a copy: frozen below
        ids = None
        keys = np.arange(len(sizes), dtype=np.uint64)
    if len(sizes) and int(sizes.min()) < 1:
        raise BudgetError("every problem needs at least one response")
    n_subsets = int(n_subsets)
    if n_subsets < 1:
        raise BudgetError(f"n_subsets must be >= 1, got {n_subsets}")
    if _check_order(order) == "sample":
        n_subsets = 1
    b = _normalise_budgets(budgets, int(sizes.max()) if len(sizes) else 1)
    n_clipped = tuple(int(np.count_nonzero(sizes < x)) for x in b)
    sizes.setflags(write=False)
    keys.setflags(write=False)
    return Subsets(
        budgets=b,
        n_subsets=n_subsets,
        seed=int(seed),
        sizes=sizes,
        keys=keys,
        problem_ids=ids,
        n_clipped=n_clipped,
        order=order,
    )


@dataclass(frozen=True, eq=False)
class CurveSet:
    """Per-problem expected accuracy of several strategies at several budgets.

    Attributes:
        budgets: B budgets (sorted).
        strategies: S strategy names.
        problem_ids: P evaluated problems.
        per_problem: (S, B, P) expected accuracy (mean over subsets; exact for exact
            strategies).
        exact: per strategy, True if computed by an exact formula rather than sampling.
        n_subsets: T used for the sampled strategies.
        seed: subset seed.
        n_clipped: per budget, number of evaluated problems with fewer than N responses.
        order: subset order the curves were computed with (``"random"`` / ``"sample"``).
        tie_break: tie rule the curves were computed with (``"fractional"`` / ``"first"``).
    """

    budgets: tuple[int, ...]
    strategies: tuple[str, ...]
    problem_ids: tuple[str, ...]
    per_problem: FloatArray
    exact: tuple[bool, ...]
    n_subsets: int
    seed: int
    n_clipped: tuple[int, ...] = ()
    order: str = "random"
    tie_break: str = "fractional"

    def __post_init__(self) -> None:
        shape = (len(self.strategies), len(self.budgets), len(self.problem_ids))
        if self.per_problem.shape != shape:
            raise BudgetError(f"per_problem has shape {self.per_problem.shape}, expected {shape}")
        if len(self.exact) != len(self.strategies):
            raise BudgetError("exact must have one flag per strategy")

    def mean(self) -> FloatArray:
        """(S, B) mean accuracy over problems."""
        return np.asarray(self.per_problem.mean(axis=-1), dtype=np.float64)

    def index(self, strategy: str) -> int:
        try:
            return self.strategies.index(strategy)
        except ValueError:
            raise BudgetError(
                f"unknown strategy {strategy!r}; have {', '.join(self.strategies)}"
            ) from None

    def curve(self, strategy: str) -> FloatArray:
        """(B,) mean accuracy of one strategy."""
        return np.asarray(self.per_problem[self.index(strategy)].mean(axis=-1), dtype=np.float64)

    def with_strategy(self, name: str, per_problem: FloatArray, exact: bool = True) -> CurveSet:
        """A new CurveSet with one more strategy, e.g. ``exact_pass_at_n`` output (B, P)
        (exact formulas only fit ``order="random"`` curves)."""
        if name in self.strategies:
            raise BudgetError(f"strategy {name!r} already present")
        arr = np.asarray(per_problem, dtype=np.float64)
        if arr.shape != self.per_problem.shape[1:]:
            raise BudgetError(f"expected shape {self.per_problem.shape[1:]}, got {arr.shape}")
        return CurveSet(
            budgets=self.budgets,
            strategies=(*self.strategies, name),
            problem_ids=self.problem_ids,
            per_problem=np.concatenate([self.per_problem, arr[None]], axis=0),
            exact=(*self.exact, bool(exact)),
            n_subsets=self.n_subsets,
            seed=self.seed,
            n_clipped=self.n_clipped,
            order=self.order,
            tie_break=self.tie_break,
        )


# --------------------------------------------------------------------------------------
# counter-based generator (splitmix64) and permutation drawing
# --------------------------------------------------------------------------------------

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_C_T = np.uint64(0xD1B54A32D192ED03)
_MASK32 = np.uint64(0xFFFFFFFF)
_TWO32 = np.uint64(0x100000000)
_SH30 = np.uint64(30)
_SH27 = np.uint64(27)
_SH31 = np.uint64(31)
_SH32 = np.uint64(32)


def _seed_key(seed: int) -> np.uint64:
    return np.uint64(int(seed) & 0xFFFFFFFFFFFFFFFF)


@numba.njit(cache=True, inline="always")  # type: ignore[misc]
def _mix(z: Any) -> Any:
    z = (z ^ (z >> _SH30)) * _M1
    z = (z ^ (z >> _SH27)) * _M2
    return z ^ (z >> _SH31)


@numba.njit(cache=True)  # type: ignore[misc]
def _stream_state(seed_key: Any, pkey: Any, t: int) -> Any:
    s = _mix(seed_key * _GOLDEN + _M2)
    s = _mix(s ^ pkey)
    return _mix(s ^ (np.uint64(t) * _C_T + _GOLDEN))


@numba.njit(cache=True)  # type: ignore[misc]
def _draw_prefix(perm: Any, n: int, k: int, state: Any) -> Any:
    """Partial Fisher-Yates: perm[:k] becomes a uniform random ordered k-subset of 0..n-1.

    The draws are sequential, so the first k entries do not depend on how far one goes.
    """
    for i in range(n):
        perm[i] = i
    for i in range(k):
        bound = np.uint64(n - i)
        state = state + _GOLDEN
        x = _mix(state) >> _SH32
        m = x * bound
        low = m & _MASK32
        if low < bound:  # Lemire's unbiased bounded integer: reject the short range
            thresh = (_TWO32 - bound) % bound
            while low < thresh:
                state = state + _GOLDEN
                x = _mix(state) >> _SH32
                m = x * bound
                low = m & _MASK32
        j = i + np.int64(m >> _SH32)
        tmp = perm[i]
        perm[i] = perm[j]
        perm[j] = tmp
    return state


@numba.njit(cache=True)  # type: ignore[misc]
def _fill_permutations(n: int, k: int, pkey: Any, seed_key: Any, out: Any) -> None:
    perm = np.empty(n, dtype=np.int64)
    for t in range(out.shape[0]):
        _draw_prefix(perm, n, k, _stream_state(seed_key, pkey, t))
        for i in range(k):
            out[t, i] = perm[i]


# --------------------------------------------------------------------------------------
# the prefix kernel
# --------------------------------------------------------------------------------------


@numba.njit(cache=True)  # type: ignore[misc]
def _credits_kernel(
    offsets: Any,
    cluster: Any,
    correct: Any,
    weights: Any,
    gmat: Any,
    gidx: Any,
    best_of: Any,
    problems: Any,
    keys: Any,
    seed_key: Any,
    budgets: Any,
    n_subsets: int,
    keep: bool,
    tie_rtol: float,
    q_eps: float,
    identity: bool,
    tie_first: bool,
    out: Any,
) -> None:
    """Add each strategy's credit on each subset to ``out[s, b, q, t]`` (t = 0 unless keep).

    ``identity``: the order is the identity (``order="sample"``) instead of a drawn
    permutation. ``tie_first``: ``tie_break="first"`` - credit the tied cluster that
    appears first in draw order (``present`` lists clusters in order of first appearance)
    or the first tied best-of response, instead of the mean over the tied candidates.

    For every selected problem and every permutation t: draw the permutation prefix once,
    then for each strategy walk it once, keeping running cluster totals, counts, correct
    counts, sum |w| and sum g, and evaluate the vote at each budget checkpoint. Serial on
    purpose: it is fast enough on one core (about 0.07 s CPU per strategy for 500 x 256 x
    200), compiles quickly and avoids threading-layer issues inside Streamlit threads or
    forked workers; run several pairs in separate processes for parallelism.
    """
    n_strat = weights.shape[0]
    n_budget = budgets.shape[0]
    top_budget = budgets[n_budget - 1]
    for qi in range(problems.shape[0]):
        p = problems[qi]
        lo = offsets[p]
        n = offsets[p + 1] - lo
        k = 0
        for i in range(n):
            if cluster[lo + i] + 1 > k:
                k = cluster[lo + i] + 1
        tot = np.zeros(k)
        ccor = np.zeros(k)
        cnt = np.zeros(k, dtype=np.int64)
        present = np.empty(k, dtype=np.int64)
        perm = np.empty(n, dtype=np.int64)
        kmax = min(top_budget, n)
        # the draw order's clusters and labels, shared by every strategy
        cl_ord = np.empty(kmax, dtype=np.int64)
        co_ord = np.empty(kmax)
        stops = np.empty(n_budget, dtype=np.int64)
        for bi in range(n_budget):
            stops[bi] = min(budgets[bi], n)
        for t in range(n_subsets):
            if identity:
                for i in range(n):
                    perm[i] = i
            else:
                _draw_prefix(perm, n, kmax, _stream_state(seed_key, keys[p], t))
            for i in range(kmax):
                cl_ord[i] = cluster[lo + perm[i]]
                co_ord[i] = correct[lo + perm[i]]
            ti = t if keep else 0
            for s in range(n_strat):
                w_p = weights[s, lo : lo + n]
                gi = gidx[s]
                if best_of[s]:
                    wmax = -np.inf
                    ntie = 0
                    ncor = 0.0
                    cfirst = 0.0
                    i = 0
                    for bi in range(n_budget):
                        stop = stops[bi]
                        while i < stop:
                            w = w_p[perm[i]]
                            if w > wmax:
                                wmax = w
                                ntie = 1
                                ncor = co_ord[i]
                                cfirst = co_ord[i]
                            elif w == wmax:
                                ntie += 1
                                ncor += co_ord[i]
                            i += 1
                        if tie_first:
                            out[s, bi, qi, ti] += cfirst
                        else:
                            out[s, bi, qi, ti] += ncor / ntie
                    continue
                for a in range(k):
                    tot[a] = 0.0
                    ccor[a] = 0.0
                    cnt[a] = 0
                m = 0
                abssum = 0.0
                gsum = 0.0
                i = 0
                for bi in range(n_budget):
                    stop = stops[bi]
                    if gi >= 0:
                        g_p = gmat[gi, lo : lo + n]
                        while i < stop:
                            j = perm[i]
                            a = cl_ord[i]
                            w = w_p[j]
                            if cnt[a] == 0:
                                present[m] = a
                                m += 1
                            cnt[a] += 1
                            tot[a] += w
                            ccor[a] += co_ord[i]
                            abssum += abs(w)
                            gsum += g_p[j]
                            i += 1
                    else:
                        while i < stop:
                            a = cl_ord[i]
                            w = w_p[perm[i]]
                            if cnt[a] == 0:
                                present[m] = a
                                m += 1
                            cnt[a] += 1
                            tot[a] += w
                            ccor[a] += co_ord[i]
                            abssum += abs(w)
                            i += 1
                    size = stop
                    if gi >= 0 and m == 1:
                        a0 = present[0]
                        credit = ccor[a0] / cnt[a0]
                    else:
                        c = 0.0
                        scale = abssum
                        if gi >= 0:
                            q = gsum / size
                            q = min(max(q, q_eps), 1.0 - q_eps)
                            c = math.log(q * (m - 1) / (1.0 - q))
                            scale = abssum + size * abs(c)
                        best = -np.inf
                        for jj in range(m):
                            a1 = present[jj]
                            v = tot[a1] + cnt[a1] * c if gi >= 0 else tot[a1]
                            if v > best:
                                best = v
                        thr = best - tie_rtol * scale
                        num = 0.0
                        den = 0
                        for jj in range(m):
                            a1 = present[jj]
                            v = tot[a1] + cnt[a1] * c if gi >= 0 else tot[a1]
                            if v >= thr:
                                num += ccor[a1] / cnt[a1]
                                den += 1
                                if tie_first:
                                    break
                        credit = num / den
                    out[s, bi, qi, ti] += credit


# --------------------------------------------------------------------------------------
# public engine
# --------------------------------------------------------------------------------------


def _check_pair(pair: PairData) -> IntArray:
    sizes = np.asarray(pair.sizes(), dtype=np.int64)
    if len(sizes) and int(sizes.min()) < 1:
        raise BudgetError("every problem needs at least one response")
    n = pair.n_responses
    if len(pair.cluster) != n or len(pair.correct) != n or len(pair.score) != n:
        raise BudgetError("cluster, correct and score must have one entry per response")
    if n:
        rows_n = np.repeat(sizes, sizes)
        if int(pair.cluster.min()) < 0 or np.any(pair.cluster >= rows_n):
            raise BudgetError("cluster ids must lie in 0..n_p-1 within each problem")
    return sizes


def _check_sample_order(pair: PairData) -> None:
    """``order="sample"`` takes rows as stored; they must be sorted by sample_idx."""
    si = np.asarray(pair.sample_idx, dtype=np.int64)
    n = pair.n_responses
    if si.shape != (n,):
        raise BudgetError("sample_idx must have one entry per response")
    if n > 1:
        step = np.diff(si)
        within = np.ones(n - 1, dtype=np.bool_)
        starts = np.asarray(pair.offsets[1:-1], dtype=np.int64)
        within[starts[(starts > 0) & (starts < n)] - 1] = False
        if np.any(step[within] < 0):
            raise BudgetError('order="sample" needs the rows of each problem sorted by sample_idx')


def _check_problems(problems: IntArray | Sequence[int] | None, n_problems: int) -> IntArray:
    if problems is None:
        return np.arange(n_problems, dtype=np.int64)
    idx = np.asarray(problems, dtype=np.int64).reshape(-1)
    if len(idx) and (int(idx.min()) < 0 or int(idx.max()) >= n_problems):
        raise BudgetError(f"problem indices must lie in 0..{n_problems - 1}")
    return idx


def _check_inputs(name: str, vi: VoteInputs, n: int) -> tuple[FloatArray, FloatArray | None]:
    w = np.ascontiguousarray(vi.weight, dtype=np.float64)
    if w.shape != (n,):
        raise BudgetError(f"strategy {name!r}: weight has shape {w.shape}, expected ({n},)")
    if not np.all(np.isfinite(w)):
        raise BudgetError(f"strategy {name!r}: weights must be finite")
    g = None
    if vi.g is not None:
        if vi.best_of:
            raise BudgetError(f"strategy {name!r}: g cannot be combined with best_of")
        g = np.ascontiguousarray(vi.g, dtype=np.float64)
        if g.shape != (n,):
            raise BudgetError(f"strategy {name!r}: g has shape {g.shape}, expected ({n},)")
        if not np.all(np.isfinite(g)) or np.any(g < 0.0) or np.any(g > 1.0):
            raise BudgetError(f"strategy {name!r}: g must lie in [0, 1]")
    return w, g


def _resolve_subsets(
    pair: PairData,
    budgets: Sequence[int] | None,
    n_subsets: int,
    seed: int,
    subsets: Subsets | None,
    order: str | None = None,
) -> Subsets:
    if order is not None:
        _check_order(order)
    if subsets is None:
        return make_subsets(pair, budgets, n_subsets=n_subsets, seed=seed, order=order or "random")
    if order is not None and order != subsets.order:
        raise BudgetError(f"order {order!r} differs from the subsets' order {subsets.order!r}")
    if not np.array_equal(subsets.sizes, pair.sizes()):
        raise BudgetError("subsets were made for problems of different sizes than this pair")
    if subsets.problem_ids is not None and tuple(subsets.problem_ids) != tuple(pair.problem_ids):
        raise BudgetError("subsets were made for a pair with different problem ids")
    if budgets is not None and _normalise_budgets(budgets, 1) != subsets.budgets:
        raise BudgetError(
            f"budgets {tuple(budgets)} differ from the subsets' budgets {subsets.budgets}"
        )
    return subsets


def subset_credits(
    pair: PairData,
    inputs: Mapping[str, VoteInputs],
    subsets: Subsets,
    problems: IntArray | Sequence[int] | None = None,
    keep_subsets: bool = True,
    *,
    tie_break: str = "fractional",
) -> FloatArray:
    """Credit of every strategy on every subset: (S, B, Q, T) (or (S, B, Q) averaged over
    subsets when ``keep_subsets`` is False). All strategies are sampled (no exact path).

    ``tie_break``: ``"fractional"`` (mean correctness of the tied candidates) or
    ``"first"`` (the tied cluster / best-of response that comes first in the subset's draw
    order); see the module docstring. The subsets' ``order`` decides the draw order.
    """
    sizes = _check_pair(pair)
    tie_first = _check_tie_break(tie_break) == "first"
    if not np.array_equal(subsets.sizes, sizes):
        raise BudgetError("subsets were made for problems of different sizes than this pair")
    identity = _check_order(subsets.order) == "sample"
    if identity:
        _check_sample_order(pair)
    idx = _check_problems(problems, pair.n_problems)
    names = list(inputs)
    n = pair.n_responses
    checked = [_check_inputs(name, inputs[name], n) for name in names]
    budgets = np.asarray(subsets.budgets, dtype=np.int64)
    t_out = subsets.n_subsets if keep_subsets else 1
    out = np.zeros((len(names), len(budgets), len(idx), t_out), dtype=np.float64)
    if not names or not len(idx):
        return out if keep_subsets else out[..., 0]
    offsets = np.ascontiguousarray(pair.offsets, dtype=np.int64)
    cluster = np.ascontiguousarray(pair.cluster, dtype=np.int64)
    correct = np.ascontiguousarray(pair.correct, dtype=np.float64)
    keys = np.ascontiguousarray(subsets.keys, dtype=np.uint64)
    # strategies go to the kernel in chunks so the stacked weight matrix stays small
    # (each chunk redraws the same permutations, which is cheap)
    chunk = max(1, _MAX_MATRIX_ENTRIES // max(n, 1))
    for c0 in range(0, len(names), chunk):
        part = range(c0, min(len(names), c0 + chunk))
        weights = np.stack([checked[s][0] for s in part])
        gidx = np.full(len(part), -1, dtype=np.int64)
        best = np.array([bool(inputs[names[s]].best_of) for s in part], dtype=np.bool_)
        glist: list[FloatArray] = []
        for j, s in enumerate(part):
            g = checked[s][1]
            if g is not None:
                gidx[j] = len(glist)
                glist.append(g)
        gmat = np.stack(glist) if glist else np.zeros((1, n), dtype=np.float64)
        _credits_kernel(
            offsets,
            cluster,
            correct,
            weights,
            gmat,
            gidx,
            best,
            idx,
            keys,
            _seed_key(subsets.seed),
            budgets,
            subsets.n_subsets,
            keep_subsets,
            TIE_RTOL,
            Q_EPS,
            identity,
            tie_first,
            out[c0 : c0 + len(part)],
        )
    if keep_subsets:
        return out
    return np.asarray(out[..., 0] / subsets.n_subsets, dtype=np.float64)


def accuracy_curves(
    pair: PairData,
    inputs: Mapping[str, VoteInputs],
    budgets: Sequence[int] | None = None,
    n_subsets: int = 200,
    seed: int = 0,
    problems: IntArray | Sequence[int] | None = None,
    subsets: Subsets | None = None,
    *,
    exact_best_of: bool = True,
    order: str | None = None,
    tie_break: str = "fractional",
) -> CurveSet:
    """Expected accuracy of each strategy at each budget on each (selected) problem.

    Args:
        pair: the packed pair.
        inputs: strategy name -> VoteInputs (order kept in the result).
        budgets: default :func:`default_budgets` of the largest n_p (or the subsets').
        n_subsets, seed: used to build the subsets when ``subsets`` is None (ignored
            otherwise: the given subsets carry their own).
        problems: optional indices of problems to evaluate (e.g. a held-out fold); the
            subsets of a problem do not depend on which other problems are evaluated.
        subsets: pre-built :class:`Subsets` to share across calls.
        exact_best_of: compute best-of strategies with :func:`exact_best_of_n` (exact
            expectation over all subsets) instead of sampling them. Ignored (treated as
            False) for ``order="sample"`` subsets, where that expectation is not the
            quantity asked for; those strategies come out with ``exact=False``.
        order: subset order for the subsets built here (``"random"`` when None; see
            :func:`make_subsets`). With given ``subsets``, None means "theirs" and any
            other value must equal ``subsets.order``.
        tie_break: ``"fractional"`` (default) or ``"first"``; see the module docstring.
            The exact best-of formula is valid for both under random order.

    Every sampled strategy uses the same subsets (common random numbers).
    """
    sizes = _check_pair(pair)
    _check_tie_break(tie_break)
    sub = _resolve_subsets(pair, budgets, n_subsets, seed, subsets, order)
    idx = _check_problems(problems, pair.n_problems)
    names = tuple(inputs)
    use_exact = exact_best_of and sub.order == "random"
    exact = tuple(bool(use_exact and inputs[s].best_of) for s in names)
    n_b = len(sub.budgets)
    per_problem = np.zeros((len(names), n_b, len(idx)), dtype=np.float64)
    sampled = {s: inputs[s] for s, e in zip(names, exact, strict=True) if not e}
    if sampled:
        res = subset_credits(pair, sampled, sub, idx, keep_subsets=False, tie_break=tie_break)
        for j, s in enumerate(sampled):
            per_problem[names.index(s)] = res[j]
    for s, e in zip(names, exact, strict=True):
        if e:
            _check_inputs(s, inputs[s], pair.n_responses)
            per_problem[names.index(s)] = exact_best_of_n(
                pair, inputs[s].weight, sub.budgets, problems=idx
            )
    sel = sizes[idx]
    per_problem.setflags(write=False)
    return CurveSet(
        budgets=sub.budgets,
        strategies=names,
        problem_ids=tuple(pair.problem_ids[int(i)] for i in idx),
        per_problem=per_problem,
        exact=exact,
        n_subsets=sub.n_subsets,
        seed=sub.seed,
        n_clipped=tuple(int(np.count_nonzero(sel < b)) for b in sub.budgets),
        order=sub.order,
        tie_break=tie_break,
    )


# --------------------------------------------------------------------------------------
# exact estimators
# --------------------------------------------------------------------------------------


def _comb_ratio(a: IntArray, n: IntArray, k: IntArray) -> FloatArray:
    """C(a, k) / C(n, k) elementwise (0 where a < k), for 0 <= a <= n, 1 <= k <= n.

    Uses a table of log(x!) (all arguments are integers), so it costs a few lookups.
    """
    a_i = np.asarray(a, dtype=np.int64)
    n_i = np.asarray(n, dtype=np.int64)
    k_i = np.asarray(k, dtype=np.int64)
    top = int(n_i.max()) if n_i.size else 0
    log_fact = gammaln(np.arange(top + 1, dtype=np.float64) + 1.0)
    ok = a_i >= k_i
    safe_a = np.where(ok, a_i, k_i)
    log_r = log_fact[safe_a] - log_fact[safe_a - k_i] - log_fact[n_i] + log_fact[n_i - k_i]
    return np.asarray(np.where(ok, np.exp(np.minimum(log_r, 0.0)), 0.0), dtype=np.float64)


def exact_pass_at_n(
    pair: PairData,
    budgets: Sequence[int],
    problems: IntArray | Sequence[int] | None = None,
) -> FloatArray:
    """(B, P) probability that a random size-N subset (without replacement) contains a
    correct response: ``1 - C(n - c, N) / C(n, N)``, N clipped to n_p. ``budgets`` are
    sorted and de-duplicated; rows follow that order. Random subsets only: for the first
    N samples in sampling order use the kernel (see the module docstring)."""
    sizes = _check_pair(pair)
    b = np.asarray(_normalise_budgets(budgets, 1), dtype=np.int64)
    idx = _check_problems(problems, pair.n_problems)
    if not len(idx):
        return np.zeros((len(b), 0), dtype=np.float64)
    n_cor = np.add.reduceat(pair.correct.astype(np.int64), pair.offsets[:-1])[idx]
    n = sizes[idx][None, :]
    k = np.minimum(b[:, None], n)
    return 1.0 - _comb_ratio(n - n_cor[None, :], n, k)


def exact_best_of_n(
    pair: PairData,
    score: FloatArray,
    budgets: Sequence[int],
    problems: IntArray | Sequence[int] | None = None,
) -> FloatArray:
    """(B, P) exact expected best-of-N credit over all size-N subsets without replacement.

    Within a problem, responses are grouped by exactly equal score, groups ordered from the
    highest score down with sizes g_j, correct counts c_j and U_j responses above group j.
    The subset's maximum lies in group j with probability ``[C(n - U_j, N) -
    C(n - U_j - g_j, N)] / C(n, N)``; given that, the expected fraction of correct
    responses among the tied maxima is c_j / g_j by exchangeability within the group (the
    best_of tie rule). That is also the expected credit under ``tie_break="first"``: in a
    random draw order the earliest tied maximum is a uniform pick among them. Random
    subsets only (not ``order="sample"``). ``budgets`` are sorted and de-duplicated; rows
    follow that order.
    """
    sizes = _check_pair(pair)
    s_all = np.asarray(score, dtype=np.float64)
    if s_all.shape != (pair.n_responses,):
        raise BudgetError(f"score has shape {s_all.shape}, expected ({pair.n_responses},)")
    if not np.all(np.isfinite(s_all)):
        raise BudgetError("scores must be finite")
    b = np.asarray(_normalise_budgets(budgets, 1), dtype=np.int64)
    idx = _check_problems(problems, pair.n_problems)
    out = np.zeros((len(b), len(idx)), dtype=np.float64)
    if len(idx):
        log_fact = gammaln(np.arange(int(sizes.max()) + 1, dtype=np.float64) + 1.0)
        _best_of_kernel(
            np.ascontiguousarray(pair.offsets, dtype=np.int64),
            np.ascontiguousarray(s_all),
            np.ascontiguousarray(pair.correct, dtype=np.float64),
            idx,
            b,
            log_fact,
            out,
        )
    return out


@numba.njit(cache=True)  # type: ignore[misc]
def _best_of_kernel(
    offsets: Any,
    score: Any,
    correct: Any,
    problems: Any,
    budgets: Any,
    log_fact: Any,
    out: Any,
) -> None:
    """Exact best-of-N per problem: walk the score groups from the top down and add
    P(max in group) * (correct fraction of the group) until no lower group can hold the
    maximum of a size-N subset."""
    for qi in range(problems.shape[0]):
        p = problems[qi]
        lo = offsets[p]
        n = offsets[p + 1] - lo
        order = np.argsort(-score[lo : lo + n])
        for bi in range(budgets.shape[0]):
            k = min(budgets[bi], n)
            base = log_fact[n - k] - log_fact[n]
            acc = 0.0
            above = 0
            i = 0
            while i < n and n - above >= k:
                v = score[lo + order[i]]
                g = 0
                c = 0.0
                while i < n and score[lo + order[i]] == v:
                    g += 1
                    c += correct[lo + order[i]]
                    i += 1
                a1 = n - above
                a2 = a1 - g
                r1 = math.exp(min(log_fact[a1] - log_fact[a1 - k] + base, 0.0))
                r2 = 0.0
                if a2 >= k:
                    r2 = math.exp(min(log_fact[a2] - log_fact[a2 - k] + base, 0.0))
                acc += min(max(r1 - r2, 0.0), 1.0) * c / g
                above += g
            out[bi, qi] = acc
