"""Accuracy-vs-budget engine: sampled weighted voting with common random numbers, and the
exact best-of-N estimator (which also gives pass@N: best-of over weight = correctness).

Accuracy at budget N on one problem is the expectation, over random size-N subsets of its
responses drawn without replacement, of the credit the strategy earns on the subset. The
sampled estimate uses T random permutations per problem; budget N looks at the first N
entries of each permutation, so the subsets are nested across budgets and identical for
every strategy (common random numbers).

Permutations are never stored: they are regenerated inside the compiled kernel from a
counter-based generator keyed by (seed, problem key, permutation index), so they cost no
memory, no ``argsort`` pass, and the same seed gives the same subsets in every call (and
for every pair sharing the problem ids and response order). :meth:`Subsets.permutations`
materialises them on demand, e.g. for the plain-Python reference in ``tests/reference.py``.

Tie rule (shared verbatim by the reference):
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

Exact estimator: :func:`exact_best_of_n` is an expectation over *random* subsets. It is
therefore never used with ``order="sample"``: there :func:`accuracy_curves` evaluates
best-of strategies with the kernel (as with ``exact_best_of=False``) and flags them
``exact=False``. pass@N is the best-of vote over ``weight = correct``, so it is exact
(``1 - C(n - c, N) / C(n, N)``) under random order and the first N samples' coverage in
sampling order. With ``order="random"`` the exact best-of formula stays valid for both tie
rules: the draw order is uniformly random, so the earliest
of the tied maxima is a uniform pick among them and its expected credit is the fraction of
them that are correct. (This does *not* carry over to cluster votes: under ``"first"`` a
tied cluster wins with probability proportional to its number of responses in the subset.)
"""

from __future__ import annotations

import hashlib
import itertools
import math
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import numba
import numpy as np
import numpy.typing as npt
from scipy.special import gammaln

from core.types import ORDERS, TIE_BREAKS, FloatArray, IntArray, PairData, TTSLabError, VoteInputs

U64Array = npt.NDArray[np.uint64]

#: Relative tolerance of the weighted-vote tie rule (see module docstring).
TIE_RTOL: float = 1e-12
#: q = mean of g over the subset is clipped to [Q_EPS, 1 - Q_EPS] before the log-odds term.
Q_EPS: float = 1e-6
#: The maximum-likelihood q of a subset: solved until a step moves it by at most ML_Q_TOL
#: (at most ML_Q_ITER steps), weights clipped to +-ML_W_CLIP in its likelihood.
ML_Q_TOL: float = 1e-13
ML_Q_ITER: int = 200
ML_W_CLIP: float = 50.0
#: Ranked votes (`VoteInputs.ranked`): Majority-of-the-Bests, and the vote among the top
#: share of responses by weight.
RANKED_MOB: int = 1
RANKED_TOP: int = 2
RANKED_KINDS: dict[str, int] = {"mob": RANKED_MOB, "top": RANKED_TOP}
#: Largest stacked (strategies x responses) weight matrix handed to the kernel at once.
_MAX_MATRIX_ENTRIES = 4_000_000
#: the subset kernel runs its problems in this many threads (the kernel releases the
#: GIL; every problem's subsets come from its own key, so the split changes nothing)
KERNEL_THREADS = max(1, int(os.environ.get("TTSLAB_KERNEL_THREADS", "2")))
#: fewer problems than this are not split (threads would cost more than they save)
_SPLIT_MIN_PROBLEMS = 64


def _split_problems(
    run: Callable[[IntArray, FloatArray, FloatArray], None],
    idx: IntArray,
    out_a: FloatArray,
    out_b: FloatArray,
) -> None:
    """`run(idx_part, out_a_part, out_b_part)` on the problems of `idx` in
    `KERNEL_THREADS` contiguous parts at once, the parts' outputs (problems on axis 2)
    copied into `out_a` and `out_b`."""
    k = min(KERNEL_THREADS, max(1, len(idx) // _SPLIT_MIN_PROBLEMS))
    if k <= 1:
        run(idx, out_a, out_b)
        return
    bounds = np.linspace(0, len(idx), k + 1).astype(np.int64)
    parts = []
    for lo, hi in itertools.pairwise(bounds):
        a = np.zeros((*out_a.shape[:2], hi - lo, *out_a.shape[3:]), dtype=out_a.dtype)
        b = np.zeros((*out_b.shape[:2], hi - lo, *out_b.shape[3:]), dtype=out_b.dtype)
        parts.append((np.ascontiguousarray(idx[lo:hi]), a, b, slice(lo, hi)))
    with ThreadPoolExecutor(max_workers=k, thread_name_prefix="ttslab-kernel") as pool:
        for f in [pool.submit(run, i, a, b) for i, a, b, _ in parts]:
            f.result()
    for _, a, b, sl in parts:
        out_a[:, :, sl] = a
        out_b[:, :, sl] = b


#: Subset orders the engine itself knows ("auto" is resolved by the evaluation config).
SUBSET_ORDERS: tuple[str, ...] = tuple(o for o in ORDERS if o != "auto")

__all__ = [
    "Q_EPS",
    "SUBSET_ORDERS",
    "TIE_RTOL",
    "BudgetError",
    "CurveSet",
    "Subsets",
    "accuracy_curves",
    "default_budgets",
    "exact_best_of_n",
    "make_subsets",
    "offset_credits",
    "subset_credits",
    "warm_up",
]


class BudgetError(TTSLabError, ValueError):
    """Raised for malformed budgets, subsets or vote inputs."""


# --------------------------------------------------------------------------------------
# value types
# --------------------------------------------------------------------------------------


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
    if order not in SUBSET_ORDERS:
        raise BudgetError(f"order must be one of {', '.join(SUBSET_ORDERS)}, got {order!r}")
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

    def to_payload(self) -> dict[str, Any]:
        """Arrays and JSON-able fields, for the store's result cache."""
        return {
            "per_problem": np.asarray(self.per_problem),
            "budgets": list(self.budgets),
            "strategies": list(self.strategies),
            "problem_ids": list(self.problem_ids),
            "exact": list(self.exact),
            "n_subsets": self.n_subsets,
            "seed": self.seed,
            "n_clipped": list(self.n_clipped),
            "order": self.order,
            "tie_break": self.tie_break,
        }

    @classmethod
    def from_payload(cls, d: Mapping[str, Any]) -> CurveSet:
        per_problem = np.asarray(d["per_problem"], dtype=np.float64)
        per_problem.setflags(write=False)
        return cls(
            budgets=tuple(int(b) for b in d["budgets"]),
            strategies=tuple(str(s) for s in d["strategies"]),
            problem_ids=tuple(str(p) for p in d["problem_ids"]),
            per_problem=per_problem,
            exact=tuple(bool(x) for x in d["exact"]),
            n_subsets=int(d["n_subsets"]),
            seed=int(d["seed"]),
            n_clipped=tuple(int(x) for x in d["n_clipped"]),
            order=str(d["order"]),
            tie_break=str(d["tie_break"]),
        )

    def only(self, strategies: Sequence[str]) -> CurveSet:
        """The curves of `strategies` (those present, in that order)."""
        idx = [self.strategies.index(s) for s in strategies if s in self.strategies]
        return replace(
            self,
            strategies=tuple(self.strategies[i] for i in idx),
            per_problem=self.per_problem[idx],
            exact=tuple(self.exact[i] for i in idx),
        )

    def with_strategy(self, name: str, per_problem: FloatArray, exact: bool = True) -> CurveSet:
        """A new CurveSet with one more strategy's per-problem values (B, P)."""
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


@numba.njit(cache=True, nogil=True)  # type: ignore[misc]
def _stream_state(seed_key: Any, pkey: Any, t: int) -> Any:
    s = _mix(seed_key * _GOLDEN + _M2)
    s = _mix(s ^ pkey)
    return _mix(s ^ (np.uint64(t) * _C_T + _GOLDEN))


@numba.njit(cache=True, nogil=True)  # type: ignore[misc]
def _draw_prefix(perm: Any, n: int, k: int, state: Any) -> None:
    """Partial Fisher-Yates: perm[:k] becomes a uniform random ordered k-subset of 0..n-1.

    The draws are sequential, so the first k entries do not depend on how far one goes.
    """
    for i in range(n):
        perm[i] = i
    _draw_into_identity(perm, n, k, state, np.empty(max(k, 1), dtype=np.int64))


@numba.njit(cache=True, nogil=True)  # type: ignore[misc]
def _fill_permutations(n: int, k: int, pkey: Any, seed_key: Any, out: Any) -> None:
    perm = np.empty(n, dtype=np.int64)
    for t in range(out.shape[0]):
        _draw_prefix(perm, n, k, _stream_state(seed_key, pkey, t))
        for i in range(k):
            out[t, i] = perm[i]


# --------------------------------------------------------------------------------------
# the prefix kernel
# --------------------------------------------------------------------------------------


@numba.njit(cache=True, nogil=True)  # type: ignore[misc]
def _draw_into_identity(perm: Any, n: int, k: int, state: Any, swaps: Any) -> None:
    """`_draw_prefix` for a `perm` that is the identity on entry: the same draws (so the
    same prefix), recording each swap partner in `swaps` so `_restore_identity` can undo
    them in O(k) instead of re-initialising all n entries per subset."""
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
        swaps[i] = j
        tmp = perm[i]
        perm[i] = perm[j]
        perm[j] = tmp


@numba.njit(cache=True)  # type: ignore[misc]
def _restore_identity(perm: Any, k: int, swaps: Any) -> None:
    for i in range(k - 1, -1, -1):
        j = swaps[i]
        tmp = perm[i]
        perm[i] = perm[j]
        perm[j] = tmp


@numba.njit(cache=True)  # type: ignore[misc]
def _largest_problem(offsets: Any, problems: Any) -> int:
    nmax = 1
    for qi in range(problems.shape[0]):
        p = problems[qi]
        n = offsets[p + 1] - offsets[p]
        if n > nmax:
            nmax = n
    return nmax


@numba.njit(cache=True)  # type: ignore[misc]
def _ml_score(wsum: Any, lo: int, perm: Any, stop: int, s: int, q: float, identity: bool) -> Any:
    """Derivative of the subset's log likelihood sum log(1 + q r_i), r_i = e^w_i - 1, in q,
    and its second derivative (w clipped to +-ML_W_CLIP)."""
    d1 = 0.0
    d2 = 0.0
    for ii in range(stop):
        r = lo + (ii if identity else perm[ii])
        w = min(max(wsum[r, s], -ML_W_CLIP), ML_W_CLIP)
        x = math.expm1(w)
        v = x / (1.0 + q * x)
        d1 += v
        d2 -= v * v
    return d1, d2


@numba.njit(cache=True)  # type: ignore[misc]
def _ml_q(wsum: Any, lo: int, perm: Any, stop: int, s: int, q_eps: float, identity: bool) -> float:
    """The maximum-likelihood q of a subset in [q_eps, 1 - q_eps], the weights read as log
    likelihood ratios: the fixed point of EM's q <- mean sigmoid(w_i + logit q), found by
    Newton steps on the (concave) log likelihood, kept inside a bisection bracket."""
    lo_q = q_eps
    hi_q = 1.0 - q_eps
    d_lo, _ = _ml_score(wsum, lo, perm, stop, s, lo_q, identity)
    if d_lo <= 0.0:
        return lo_q
    d_hi, _ = _ml_score(wsum, lo, perm, stop, s, hi_q, identity)
    if d_hi >= 0.0:
        return hi_q
    q = 0.5
    for _ in range(ML_Q_ITER):
        d1, d2 = _ml_score(wsum, lo, perm, stop, s, q, identity)
        if d1 > 0.0:
            lo_q = q
        else:
            hi_q = q
        nxt = q - d1 / d2 if d2 < 0.0 else 0.5 * (lo_q + hi_q)
        if not (lo_q < nxt < hi_q):
            nxt = 0.5 * (lo_q + hi_q)
        if abs(nxt - q) <= ML_Q_TOL or hi_q - lo_q <= ML_Q_TOL:
            return nxt
        q = nxt
    return q


@numba.njit(cache=True)  # type: ignore[misc]
def _full_set_votes(
    lo: int,
    n: int,
    cluster: Any,
    correct: Any,
    wsum: Any,
    gmat: Any,
    gcol: Any,
    htabs: Any,
    hcol: Any,
    hidx: Any,
    mlq: Any,
    wbest: Any,
    tie_rtol: float,
    q_eps: float,
    tie_first: bool,
    tot: Any,
    ccor: Any,
    cnt: Any,
    present: Any,
    gsum: Any,
    credit: Any,
) -> bool:
    """Every strategy's credit on one problem's full response set, when it is the same in
    every draw order (else False, and `credit` is meaningless).

    Walks the rows in stored order. A summed vote qualifies when its runner-up is further
    below the best than twice the tie band (bounded with sum |w| + n |c| + max |h|) plus
    twice a bound on what another summation order could change (of the totals and, through
    q, of the q-term; the size term h is a table lookup): then every order gives that winner
    and no tie, and its credit (a ratio of exact counts) is the same. A vote with the ML q
    never qualifies. A best-of vote always qualifies with fractional ties, and
    with ``tie_first`` when its tied maxima agree on correctness. Uses (and resets) the
    caller's work arrays.
    """
    n_sum = wsum.shape[1]
    n_g = gmat.shape[1]
    n_best = wbest.shape[1]
    ulp = 2.220446049250313e-16
    m = 0
    for r in range(lo, lo + n):
        a = cluster[r]
        if cnt[a] == 0:
            present[m] = a
            m += 1
        cnt[a] += 1
        ccor[a] += correct[r]
        for s in range(n_sum):
            tot[a, s] += wsum[r, s]
        for s in range(n_g):
            gsum[s] += gmat[r, s]
    ok = True
    for s in range(n_sum):
        if m == 1:
            credit[s] = ccor[present[0]] / cnt[present[0]]
            continue
        if mlq[s]:
            ok = False  # the ML q is an iteration: its last digits depend on the order
            continue
        gc = gcol[s]
        hc = hcol[s]
        ht = hidx[lo, hc] if hc >= 0 else 0
        c = 0.0
        dc = 0.0
        if gc >= 0:
            q = gsum[gc] / n
            q = min(max(q, q_eps), 1.0 - q_eps)
            c = math.log(q * (m - 1) / (1.0 - q))
            # another order changes q by <= (n + 2) ulp q, so c by about that over q(1 - q)
            dc = 4.0 * (n + 2) * ulp * (1.0 / q + 1.0 / (1.0 - q)) + 4.0 * ulp * abs(c)
        best = -np.inf
        second = -np.inf
        abest = present[0]
        hmax = 0.0
        for jj in range(m):
            a1 = present[jj]
            hv = htabs[ht, cnt[a1], n] if hc >= 0 else 0.0
            hmax = max(hmax, abs(hv))
            v = tot[a1, s] + cnt[a1] * c + hv
            if v > best:
                second = best
                best = v
                abest = a1
            elif v > second:
                second = v
        wmax_abs = 0.0
        for r in range(lo, lo + n):
            wmax_abs = max(wmax_abs, abs(wsum[r, s]))
        bound = n * wmax_abs + n * abs(c) + hmax
        slack = 2.0 * tie_rtol * bound + 2.0 * (n + 2) * ulp * bound + 2.0 * n * dc
        if best - second > slack:
            credit[s] = ccor[abest] / cnt[abest]
        else:
            ok = False
    for jj in range(m):
        a1 = present[jj]
        for s in range(n_sum):
            tot[a1, s] = 0.0
        ccor[a1] = 0.0
        cnt[a1] = 0
    for s in range(n_g):
        gsum[s] = 0.0
    for s in range(n_best):
        top = -np.inf
        ntie = 0
        ncor = 0.0
        for r in range(lo, lo + n):
            w = wbest[r, s]
            if w > top:
                top = w
                ntie = 1
                ncor = correct[r]
            elif w == top:
                ntie += 1
                ncor += correct[r]
        if tie_first and ntie > 1 and ncor != 0.0 and ncor != ntie:
            ok = False
        credit[n_sum + s] = ncor / ntie
    return ok


@numba.njit(cache=True, nogil=True)  # type: ignore[misc]
def _credits_kernel(
    offsets: Any,
    cluster: Any,
    correct: Any,
    wsum: Any,
    wabs: Any,
    gmat: Any,
    gcol: Any,
    htabs: Any,
    hcol: Any,
    hidx: Any,
    mlq: Any,
    wbest: Any,
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
    out_sum: Any,
    out_best: Any,
) -> None:
    """Add each strategy's credit on each subset to ``out_*[s, b, q, t]`` (t = 0 unless
    keep). `wsum` (n, S) holds the summed votes' weights response by response, `wabs`
    (P, S) the largest |w| of each problem, `gmat` (n, G) their calibrated g where
    `gcol[s] >= 0`, `wbest` (n, Sb) the best-of votes' weights.

    ``identity``: the order is the identity (``order="sample"``) instead of a drawn
    permutation. ``tie_first``: ``tie_break="first"`` - credit the tied cluster that
    appears first in draw order (``present`` lists clusters in order of first appearance)
    or the first tied best-of response, instead of the mean over the tied candidates.

    Where a budget reaches a problem's full response set and `_full_set_votes` finds every
    strategy's vote there independent of the order, that credit is added per subset without
    walking so far (the sum over subsets is taken as before, so the result is the same).
    Otherwise, for every permutation t the prefix is drawn and walked once for all
    strategies: each visited response updates the shared cluster count and correct
    count and, for every strategy at once, its cluster total, sum |w| and sum g (so every
    total is the same sequential sum, in draw order, as a walk per strategy would give).
    At each budget checkpoint each strategy scans the clusters present once (a second scan
    only when another cluster lies within the tie band). The work is proportional to the
    elements visited: the permutation is restored by undoing its swaps and only the
    clusters seen are reset. Serial, without the GIL: several pairs run in threads.
    """
    n_sum = wsum.shape[1]
    n_g = gmat.shape[1]
    n_best = wbest.shape[1]
    n_budget = budgets.shape[0]
    top_budget = budgets[n_budget - 1]
    nmax = _largest_problem(offsets, problems)
    perm = np.arange(nmax)
    swaps = np.empty(nmax, dtype=np.int64)
    tot = np.zeros((nmax, max(n_sum, 1)))
    gsum = np.zeros(max(n_g, 1))
    ccor = np.zeros(nmax)
    cnt = np.zeros(nmax, dtype=np.int64)
    present = np.empty(nmax, dtype=np.int64)
    co_ord = np.empty(nmax)
    full = np.empty(n_sum + n_best)
    for qi in range(problems.shape[0]):
        p = problems[qi]
        lo = offsets[p]
        n = offsets[p + 1] - lo
        kmax = min(top_budget, n)
        # budgets from `first_full` on see the whole set; when its votes do not depend on
        # the order, the walk stops at the largest budget below n
        first_full = n_budget
        for bi in range(n_budget):
            if budgets[bi] >= n:
                first_full = bi
                break
        if first_full < n_budget and _full_set_votes(
            lo,
            n,
            cluster,
            correct,
            wsum,
            gmat,
            gcol,
            htabs,
            hcol,
            hidx,
            mlq,
            wbest,
            tie_rtol,
            q_eps,
            tie_first,
            tot,
            ccor,
            cnt,
            present,
            gsum,
            full,
        ):
            kmax = min(budgets[first_full - 1], n) if first_full > 0 else 0
        else:
            first_full = n_budget
        for t in range(n_subsets):
            if not identity:
                _draw_into_identity(perm, n, kmax, _stream_state(seed_key, keys[p], t), swaps)
            ti = t if keep else 0
            m = 0
            i = 0
            for bi in range(first_full):
                stop = min(budgets[bi], n)
                while i < stop:
                    j = lo + perm[i]
                    a = cluster[j]
                    co = correct[j]
                    co_ord[i] = co
                    if cnt[a] == 0:
                        present[m] = a
                        m += 1
                    cnt[a] += 1
                    ccor[a] += co
                    for s in range(n_sum):
                        tot[a, s] += wsum[j, s]
                    for s in range(n_g):
                        gsum[s] += gmat[j, s]
                    i += 1
                size = stop
                for s in range(n_sum):
                    if m == 1:
                        # one cluster: it is chosen (with the q-term, by Theorem 3.2)
                        a0 = present[0]
                        out_sum[s, bi, qi, ti] += ccor[a0] / cnt[a0]
                        continue
                    gc = gcol[s]
                    hc = hcol[s]
                    ht = hidx[lo, hc] if hc >= 0 else 0
                    c = 0.0
                    if gc >= 0:
                        q = gsum[gc] / size
                        q = min(max(q, q_eps), 1.0 - q_eps)
                        c = math.log(q * (m - 1) / (1.0 - q))
                    elif mlq[s]:
                        q = _ml_q(wsum, lo, perm, stop, s, q_eps, identity)
                        c = math.log(q * (m - 1) / (1.0 - q))
                    best = -np.inf
                    second = -np.inf
                    abest = present[0]
                    hmax = 0.0
                    for jj in range(m):
                        a1 = present[jj]
                        hv = htabs[ht, cnt[a1], size] if hc >= 0 else 0.0
                        hmax = max(hmax, abs(hv))
                        v = tot[a1, s] + cnt[a1] * c + hv  # c, hv = 0 without those terms
                        if v > best:
                            second = best
                            best = v
                            abest = a1
                        elif v > second:
                            second = v
                    bound = (size * wabs[p, s] + size * abs(c) + hmax) * (1.0 + 1e-9)
                    if second < best - tie_rtol * bound:
                        out_sum[s, bi, qi, ti] += ccor[abest] / cnt[abest]
                        continue
                    abssum = 0.0
                    for ii in range(stop):
                        abssum += abs(wsum[lo + perm[ii], s])
                    scale = abssum + size * abs(c) + hmax
                    thr = best - tie_rtol * scale
                    if second < thr:
                        out_sum[s, bi, qi, ti] += ccor[abest] / cnt[abest]
                        continue
                    num = 0.0
                    den = 0
                    for jj in range(m):
                        a1 = present[jj]
                        hv = htabs[ht, cnt[a1], size] if hc >= 0 else 0.0
                        v = tot[a1, s] + cnt[a1] * c + hv
                        if v >= thr:
                            num += ccor[a1] / cnt[a1]
                            den += 1
                            if tie_first:
                                break
                    out_sum[s, bi, qi, ti] += num / den
            for jj in range(m):
                a1 = present[jj]
                for s in range(n_sum):
                    tot[a1, s] = 0.0
                ccor[a1] = 0.0
                cnt[a1] = 0
            for s in range(n_g):
                gsum[s] = 0.0
            for bi in range(first_full, n_budget):
                for s in range(n_sum):
                    out_sum[s, bi, qi, ti] += full[s]
                for s in range(n_best):
                    out_best[s, bi, qi, ti] += full[n_sum + s]
            for s in range(n_best):
                wmax = -np.inf
                ntie = 0
                ncor = 0.0
                cfirst = 0.0
                i = 0
                for bi in range(first_full):
                    stop = min(budgets[bi], n)
                    while i < stop:
                        w = wbest[lo + perm[i], s]
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
                        out_best[s, bi, qi, ti] += cfirst
                    else:
                        out_best[s, bi, qi, ti] += ncor / ntie
            if not identity:
                _restore_identity(perm, kmax, swaps)


@numba.njit(cache=True, nogil=True)  # type: ignore[misc]
def _offset_kernel(
    offsets: Any,
    cluster: Any,
    correct: Any,
    bases: Any,
    shifts: Any,
    problems: Any,
    keys: Any,
    seed_key: Any,
    budgets: Any,
    n_subsets: int,
    tie_rtol: float,
    out: Any,
) -> None:
    """Credits of the summed vote with weight ``bases[:, f] - shifts[f, c]`` for every
    family f and candidate c, added to ``out[f, c, b, q]``, in one walk per subset for all
    of them (random order, fractional ties). `bases` is (n, F), response by response.

    A cluster's total is linear in the shift: v_a = S_a - n_a * shift, with S_a the sum of
    the base over its members. At a checkpoint each candidate's winner comes from the
    running S_a and n_a, candidates innermost. When the gap to the runner-up is larger than
    twice the tie band (bounded with U = sum |base| + N |shift| >= sum |base - shift|) plus
    twice a bound on the rounding of either way of summing, the winner and the absence of
    ties are those of the sequential sums of ``base - shift`` (as `_credits_kernel` computes
    them); otherwise that candidate's totals are recomputed exactly that way and the tie
    rule applied, so the credits are those of `_credits_kernel` bit for bit.
    """
    n_f = shifts.shape[0]
    n_c = shifts.shape[1]
    n_budget = budgets.shape[0]
    top_budget = budgets[n_budget - 1]
    nmax = _largest_problem(offsets, problems)
    perm = np.arange(nmax)
    swaps = np.empty(nmax, dtype=np.int64)
    s_sum = np.zeros((nmax, n_f))
    abssum = np.zeros(n_f)
    tot = np.zeros(nmax)
    ccor = np.zeros(nmax)
    cnt = np.zeros(nmax, dtype=np.int64)
    present = np.empty(nmax, dtype=np.int64)
    cl_ord = np.empty(nmax, dtype=np.int64)
    rows = np.empty(nmax, dtype=np.int64)
    bestv = np.empty(n_c)
    secondv = np.empty(n_c)
    abestv = np.zeros(n_c, dtype=np.int64)
    ulp = 2.220446049250313e-16
    for qi in range(problems.shape[0]):
        p = problems[qi]
        lo = offsets[p]
        n = offsets[p + 1] - lo
        kmax = min(top_budget, n)
        for t in range(n_subsets):
            _draw_into_identity(perm, n, kmax, _stream_state(seed_key, keys[p], t), swaps)
            m = 0
            i = 0
            for bi in range(n_budget):
                stop = min(budgets[bi], n)
                while i < stop:
                    j = lo + perm[i]
                    a = cluster[j]
                    rows[i] = j
                    cl_ord[i] = a
                    if cnt[a] == 0:
                        present[m] = a
                        m += 1
                    cnt[a] += 1
                    ccor[a] += correct[j]
                    for f in range(n_f):
                        b = bases[j, f]
                        s_sum[a, f] += b
                        abssum[f] += abs(b)
                    i += 1
                if m == 1:
                    a0 = present[0]
                    credit = ccor[a0] / cnt[a0]
                    for f in range(n_f):
                        for c in range(n_c):
                            out[f, c, bi, qi] += credit
                    continue
                for f in range(n_f):
                    # every candidate's best and runner-up, candidates innermost
                    for c in range(n_c):
                        bestv[c] = -np.inf
                        secondv[c] = -np.inf
                        abestv[c] = 0
                    for jj in range(m):
                        a1 = present[jj]
                        sa = s_sum[a1, f]
                        na = float(cnt[a1])
                        for c in range(n_c):
                            v = sa - na * shifts[f, c]
                            b0 = bestv[c]
                            secondv[c] = max(secondv[c], min(b0, v))
                            if v > b0:
                                bestv[c] = v
                                abestv[c] = jj
                    for c in range(n_c):
                        sh = shifts[f, c]
                        bound = abssum[f] + stop * abs(sh)
                        slack = 2.0 * tie_rtol * bound + 2.0 * (stop + 2) * ulp * bound
                        if bestv[c] - secondv[c] > slack:
                            a1 = present[abestv[c]]
                            out[f, c, bi, qi] += ccor[a1] / cnt[a1]
                            continue
                        for jj in range(m):
                            tot[present[jj]] = 0.0
                        scale = 0.0
                        for ii in range(stop):
                            w = bases[rows[ii], f] - sh
                            tot[cl_ord[ii]] += w
                            scale += abs(w)
                        best = -np.inf
                        for jj in range(m):
                            v = tot[present[jj]]
                            if v > best:
                                best = v
                        thr = best - tie_rtol * scale
                        num = 0.0
                        den = 0
                        for jj in range(m):
                            a1 = present[jj]
                            if tot[a1] >= thr:
                                num += ccor[a1] / cnt[a1]
                                den += 1
                        out[f, c, bi, qi] += num / den
            for jj in range(m):
                a1 = present[jj]
                for f in range(n_f):
                    s_sum[a1, f] = 0.0
                ccor[a1] = 0.0
                cnt[a1] = 0
            for f in range(n_f):
                abssum[f] = 0.0
            _restore_identity(perm, kmax, swaps)


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


def _check_inputs(
    name: str, vi: VoteInputs, n: int, n_max: int = 0
) -> tuple[FloatArray, FloatArray | None]:
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
    if vi.ml_q and (vi.g is not None or vi.best_of):
        raise BudgetError(f"strategy {name!r}: ml_q replaces g and needs a summed vote")
    if vi.ranked:
        if vi.ranked not in RANKED_KINDS:
            raise BudgetError(f"strategy {name!r}: unknown ranked vote {vi.ranked!r}")
        if vi.best_of or vi.g is not None or vi.ml_q or vi.size_tables is not None:
            raise BudgetError(f"strategy {name!r}: a ranked vote takes only weights")
        if not (0.0 < vi.ranked_param <= 1.0):
            raise BudgetError(f"strategy {name!r}: ranked_param must lie in (0, 1]")
    if (vi.size_tables is None) != (vi.size_index is None):
        raise BudgetError(f"strategy {name!r}: size_tables and size_index go together")
    if vi.size_tables is not None and vi.size_index is not None:
        tabs = np.asarray(vi.size_tables)
        idx = np.asarray(vi.size_index)
        if vi.best_of:
            raise BudgetError(f"strategy {name!r}: a size term needs a summed vote")
        if tabs.ndim != 3 or tabs.shape[1] != tabs.shape[2] or tabs.shape[1] < n_max + 1:
            raise BudgetError(
                f"strategy {name!r}: size_tables must be (T, K+1, K+1) with K >= {n_max}"
            )
        if idx.shape != (n,) or (n and (idx.min() < 0 or idx.max() >= tabs.shape[0])):
            raise BudgetError(f"strategy {name!r}: size_index must pick a table per response")
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


def _columns(arrays: Sequence[FloatArray], n: int) -> FloatArray:
    """(n, k) C-contiguous matrix whose columns are the arrays (a response's values for every
    strategy side by side, as the kernel reads them)."""
    if not arrays:
        return np.zeros((n, 0), dtype=np.float64)
    return np.ascontiguousarray(np.column_stack(arrays), dtype=np.float64)


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
    n_max = int(sizes.max()) if len(sizes) else 0
    checked = [_check_inputs(name, inputs[name], n, n_max) for name in names]
    budgets = np.asarray(subsets.budgets, dtype=np.int64)
    t_out = subsets.n_subsets if keep_subsets else 1
    out = np.zeros((len(names), len(budgets), len(idx), t_out), dtype=np.float64)
    if not names or not len(idx):
        return out if keep_subsets else out[..., 0]
    offsets = np.ascontiguousarray(pair.offsets, dtype=np.int64)
    cluster = np.ascontiguousarray(pair.cluster, dtype=np.int64)
    correct = np.ascontiguousarray(pair.correct, dtype=np.float64)
    keys = np.ascontiguousarray(subsets.keys, dtype=np.uint64)
    # strategies go to the kernel in blocks so the weight matrices stay small (each block
    # redraws the same permutations, which is cheap)
    block = max(1, _MAX_MATRIX_ENTRIES // max(n, 1))
    ranked = [s for s in range(len(names)) if inputs[names[s]].ranked]
    if ranked:
        out_r = np.zeros((len(ranked), len(budgets), len(idx), t_out), dtype=np.float64)
        _ranked_kernel(
            offsets,
            cluster,
            correct,
            _columns([checked[s][0] for s in ranked], n),
            np.array([RANKED_KINDS[inputs[names[s]].ranked] for s in ranked], dtype=np.int64),
            np.array([inputs[names[s]].ranked_param for s in ranked], dtype=np.float64),
            idx,
            keys,
            _seed_key(subsets.seed),
            budgets,
            subsets.n_subsets,
            keep_subsets,
            identity,
            tie_first,
            out_r,
        )
        out[ranked] = out_r
    others = [s for s in range(len(names)) if not inputs[names[s]].ranked]
    for c0 in range(0, len(others), block):
        part = others[c0 : c0 + block]
        summed = [s for s in part if not inputs[names[s]].best_of]
        bests = [s for s in part if inputs[names[s]].best_of]
        gcol = np.full(len(summed), -1, dtype=np.int64)
        glist: list[FloatArray] = []
        hcol = np.full(len(summed), -1, dtype=np.int64)
        hlist: list[IntArray] = []
        tables: list[FloatArray] = []
        for k, s in enumerate(summed):
            g = checked[s][1]
            if g is not None:
                gcol[k] = len(glist)
                glist.append(g)
            vi = inputs[names[s]]
            if vi.size_tables is not None and vi.size_index is not None:
                offset = sum(t.shape[0] for t in tables)
                tab = np.asarray(vi.size_tables, dtype=np.float64)[:, : n_max + 1, : n_max + 1]
                tables.append(tab)
                hcol[k] = len(hlist)
                hlist.append(np.asarray(vi.size_index, dtype=np.int64) + offset)
        mlq = np.array([bool(inputs[names[s]].ml_q) for s in summed], dtype=np.bool_)
        htabs = (
            np.ascontiguousarray(np.concatenate(tables, axis=0))
            if tables
            else np.zeros((1, 1, 1), dtype=np.float64)
        )
        hidx = (
            np.ascontiguousarray(np.column_stack(hlist), dtype=np.int64)
            if hlist
            else np.zeros((n, 1), dtype=np.int64)
        )
        out_sum = np.zeros((len(summed), len(budgets), len(idx), t_out), dtype=np.float64)
        out_best = np.zeros((len(bests), len(budgets), len(idx), t_out), dtype=np.float64)
        wsum = _columns([checked[s][0] for s in summed], n)
        wmax = (
            np.maximum.reduceat(np.abs(wsum), offsets[:-1], axis=0)
            if wsum.shape[1] and n
            else np.zeros((pair.n_problems, max(wsum.shape[1], 1)))
        )
        args = (
            offsets,
            cluster,
            correct,
            wsum,
            np.ascontiguousarray(wmax),
            _columns(glist, n),
            gcol,
            htabs,
            hcol,
            hidx,
            mlq,
            _columns([checked[s][0] for s in bests], n),
        )
        tail = (
            keys,
            _seed_key(subsets.seed),
            budgets,
            subsets.n_subsets,
            keep_subsets,
            TIE_RTOL,
            Q_EPS,
            identity,
            tie_first,
        )

        def run(
            part: IntArray,
            o_sum: FloatArray,
            o_best: FloatArray,
            args: Any = args,
            tail: Any = tail,
        ) -> None:
            _credits_kernel(*args, part, *tail, o_sum, o_best)  # type: ignore[call-arg]

        _split_problems(run, idx, out_sum, out_best)
        out[summed] = out_sum
        out[bests] = out_best
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

    Every sampled strategy uses the same subsets (common random numbers). At N = 1 under
    random order every vote picks the single response drawn, so that budget is the exact
    share of correct responses, not a sample of it.
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
    if sub.order == "random" and 1 in sub.budgets and sampled:
        # N = 1: every vote picks the one response drawn, so the expected credit is the
        # problem's share of correct responses, exactly (no sampling noise)
        share = pair.share_correct()
        b1 = sub.budgets.index(1)
        for s in sampled:
            per_problem[names.index(s), b1] = share[idx]
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


def offset_credits(
    pair: PairData,
    bases: npt.ArrayLike,
    shifts: npt.ArrayLike,
    subsets: Subsets,
    problems: IntArray | Sequence[int] | None = None,
) -> FloatArray:
    """(F, C, B, Q) expected credit of the summed vote with weight ``bases[f] - shifts[f, c]``
    for F families (bases (F, n), shifts (F, C)) and every candidate shift at once, on the
    given random subsets (fractional ties).

    Equals ``subset_credits(pair, {(f, c): VoteInputs(bases[f] - shifts[f, c])}, subsets,
    problems, keep_subsets=False)`` bit for bit, at the cost of about one walk per subset
    for all families and candidates instead of one per candidate: cluster totals are linear
    in the shift (see `_offset_kernel`).
    """
    sizes = _check_pair(pair)
    if subsets.order != "random":
        raise BudgetError("offset_credits needs random subsets")
    if not np.array_equal(subsets.sizes, sizes):
        raise BudgetError("subsets were made for problems of different sizes than this pair")
    idx = _check_problems(problems, pair.n_problems)
    b = np.atleast_2d(np.asarray(bases, dtype=np.float64))
    sh = np.atleast_2d(np.asarray(shifts, dtype=np.float64))
    if b.shape[1] != pair.n_responses or not np.all(np.isfinite(b)):
        raise BudgetError("base weights must be finite, one per response")
    if sh.shape[0] != b.shape[0] or not np.all(np.isfinite(sh)):
        raise BudgetError("shifts must be finite, one row per family of base weights")
    out = np.zeros((sh.shape[0], sh.shape[1], len(subsets.budgets), len(idx)), dtype=np.float64)
    if not len(idx) or not sh.size:
        return out
    _offset_kernel(
        np.ascontiguousarray(pair.offsets, dtype=np.int64),
        np.ascontiguousarray(pair.cluster, dtype=np.int64),
        np.ascontiguousarray(pair.correct, dtype=np.float64),
        np.ascontiguousarray(b.T),
        np.ascontiguousarray(sh),
        idx,
        np.ascontiguousarray(subsets.keys, dtype=np.uint64),
        _seed_key(subsets.seed),
        np.asarray(subsets.budgets, dtype=np.int64),
        subsets.n_subsets,
        TIE_RTOL,
        out,
    )
    return np.asarray(out / subsets.n_subsets, dtype=np.float64)


# --------------------------------------------------------------------------------------
# exact estimators
# --------------------------------------------------------------------------------------


@numba.njit(cache=True, inline="always")  # type: ignore[misc]
def _rank_mass(kind: int, param: float, r: int, n: int) -> float:
    """A ranked vote's mass for the response of rank r (1 = highest weight) among n."""
    if kind == RANKED_MOB:
        m = max(1, int(round(n**param)))  # noqa: RUF046 - numba's round gives a float
        return ((n - r + 1) / n) ** m - ((n - r) / n) ** m
    keep = max(1, int(math.ceil(param * n - 1e-9)))  # noqa: RUF046 - numba
    return 1.0 if r <= keep else 0.0


@numba.njit(cache=True, nogil=True)  # type: ignore[misc]
def _ranked_kernel(
    offsets: Any,
    cluster: Any,
    correct: Any,
    wr: Any,
    kinds: Any,
    params: Any,
    problems: Any,
    keys: Any,
    seed_key: Any,
    budgets: Any,
    n_subsets: int,
    keep: bool,
    identity: bool,
    tie_first: bool,
    out: Any,
) -> None:
    """Add each ranked vote's credit on each subset to ``out[s, b, q, t]``: the subset's
    responses are ranked by weight (`wr` (n, R), highest first; tied weights share the
    mean mass of their ranks), each rank gets its vote's mass (`_rank_mass`), a cluster's
    score is its members' mass, and the top cluster is credited as in the summed votes
    (fractional over ties, or the first in draw order). Same permutations as
    `_credits_kernel`."""
    n_r = wr.shape[1]
    n_budget = budgets.shape[0]
    top_budget = budgets[n_budget - 1]
    nmax = _largest_problem(offsets, problems)
    perm = np.arange(nmax)
    swaps = np.empty(nmax, dtype=np.int64)
    vals = np.empty(nmax)
    mass = np.zeros(nmax)
    ccor = np.zeros(nmax)
    cnt = np.zeros(nmax, dtype=np.int64)
    present = np.empty(nmax, dtype=np.int64)
    for qi in range(problems.shape[0]):
        p = problems[qi]
        lo = offsets[p]
        n = offsets[p + 1] - lo
        kmax = min(top_budget, n)
        for t in range(n_subsets):
            if not identity:
                _draw_into_identity(perm, n, kmax, _stream_state(seed_key, keys[p], t), swaps)
            ti = t if keep else 0
            for bi in range(n_budget):
                size = min(budgets[bi], n)
                m = 0
                for i in range(size):
                    a = cluster[lo + perm[i]]
                    if cnt[a] == 0:
                        present[m] = a
                        m += 1
                    cnt[a] += 1
                    ccor[a] += correct[lo + perm[i]]
                for s in range(n_r):
                    for i in range(size):
                        vals[i] = -wr[lo + perm[i], s]
                    order = np.argsort(vals[:size], kind="mergesort")
                    for jj in range(m):
                        mass[present[jj]] = 0.0
                    r0 = 0
                    while r0 < size:
                        r1 = r0 + 1
                        while r1 < size and vals[order[r1]] == vals[order[r0]]:
                            r1 += 1
                        block = 0.0
                        for r in range(r0, r1):
                            block += _rank_mass(kinds[s], params[s], r + 1, size)
                        block /= r1 - r0
                        for r in range(r0, r1):
                            mass[cluster[lo + perm[order[r]]]] += block
                        r0 = r1
                    best = -np.inf
                    for jj in range(m):
                        best = max(best, mass[present[jj]])
                    thr = best - 1e-12 * size
                    num = 0.0
                    den = 0
                    for jj in range(m):
                        a1 = present[jj]
                        if mass[a1] >= thr:
                            num += ccor[a1] / cnt[a1]
                            den += 1
                            if tie_first:
                                break
                    out[s, bi, qi, ti] += num / den
                for jj in range(m):
                    cnt[present[jj]] = 0
                    ccor[present[jj]] = 0.0
            if not identity:
                _restore_identity(perm, kmax, swaps)


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


@numba.njit(cache=True, nogil=True)  # type: ignore[misc]
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


def warm_up() -> None:
    """Load every compiled kernel (from numba's on-disk cache, or compile it) by running
    each once on a toy pair, so that the first real evaluation does not pay for it. A
    long-running process (the dashboard's server) calls this in the background at start."""
    n = 6
    pair = PairData(
        dataset_id="warm-up",
        llm="m",
        verifier="v",
        problem_ids=("a", "b"),
        offsets=np.array([0, 3, n], dtype=np.int64),
        cluster=np.array([0, 1, 0, 0, 1, 1], dtype=np.int64),
        score=np.linspace(0.1, 0.9, n),
        correct=np.array([True, False, True, True, False, False]),
        sample_idx=np.array([0, 1, 2, 0, 1, 2], dtype=np.int64),
        n_tokens=np.full(n, np.nan),
    )
    w = pair.score
    inputs = {
        "sum": VoteInputs(weight=w),
        "g": VoteInputs(weight=w, g=np.full(n, 0.5)),
        "ml": VoteInputs(weight=w, ml_q=True),
        "h": VoteInputs(
            weight=w, size_tables=np.zeros((1, 4, 4)), size_index=np.zeros(n, dtype=np.int64)
        ),
        "best": VoteInputs(weight=w, best_of=True),
    }
    for order in SUBSET_ORDERS:
        subsets = make_subsets(pair, (1, 2, 3), n_subsets=2, seed=0, order=order)
        accuracy_curves(pair, inputs, subsets=subsets, exact_best_of=False)
    subsets = make_subsets(pair, (2,), n_subsets=2, seed=0)
    offset_credits(pair, w[None, :], np.zeros((1, 2)), subsets)
    exact_best_of_n(pair, w, (2,))
