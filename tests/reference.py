"""Plain-Python reference implementation of voting and budget evaluation (test oracle).

Loops and dicts only, written to mirror the definitions in :mod:`core.evaluation.engine`
rather than its kernels: given the same explicit subsets, the fast engine must earn the same credit.
Sums run in subset (draw) order so that floating-point totals agree bit for bit. The
subsets' order (``"random"`` or ``"sample"``) enters only through
:meth:`core.evaluation.engine.Subsets.permutations`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from itertools import combinations, permutations

from core.evaluation.engine import Subsets
from core.types import PairData, VoteInputs

#: Same tie rule and constants as core.evaluation.engine (checked by the tests).
TIE_RTOL = 1e-12
Q_EPS = 1e-6
ML_W_CLIP = 50.0


def ml_q(weights: Sequence[float]) -> float:
    """The subset's maximum-likelihood P(correct) in [Q_EPS, 1 - Q_EPS], the weights read as
    log likelihood ratios (clipped to +-ML_W_CLIP): the root of the log likelihood's
    derivative sum r / (1 + q r), r = e^w - 1, by plain bisection (the engine uses Newton
    steps; both find the fixed point of EM's q <- mean sigmoid(w + logit q))."""
    rs = [math.expm1(min(max(float(w), -ML_W_CLIP), ML_W_CLIP)) for w in weights]

    def score(q: float) -> float:
        return sum(r / (1.0 + q * r) for r in rs)

    lo, hi = Q_EPS, 1.0 - Q_EPS
    if score(lo) <= 0.0:
        return lo
    if score(hi) >= 0.0:
        return hi
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if score(mid) > 0.0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def vote(
    clusters: Sequence[int],
    weights: Sequence[float],
    correct: Sequence[bool],
    g: Sequence[float] | None = None,
    best_of: bool = False,
    tie_break: str = "fractional",
    size_table: Sequence[Sequence[float]] | None = None,
    use_ml_q: bool = False,
) -> float:
    """Credit earned by voting on one subset (responses given in draw order).

    Weighted vote: cluster total v_a = sum of weights (+ n_a * log(q (m-1) / (1-q)) when
    ``g`` is given, q = clipped mean of g, or with ``use_ml_q`` the ML q of the weights; m =
    distinct clusters) (+ size_table[n_a][N] with a size term); m == 1 picks the only
    cluster. Clusters with v_a >= max - TIE_RTOL * scale are tied, scale = sum |w| (+ N |c|)
    (+ the largest |size term| of the clusters present);
    credit = mean over tied clusters of the cluster's fraction of correct responses.
    Best-of: responses with exactly the maximal weight are tied; credit = fraction correct.
    ``tie_break="first"``: the same ties, but the credit is that of the tied cluster whose
    earliest response comes first in draw order (the first tied best-of response), like
    ``Counter(preds[:k]).most_common(1)`` and ``rm_score.index(max(rm_score))``.
    """
    n = len(clusters)
    if n == 0 or len(weights) != n or len(correct) != n:
        raise ValueError("need a non-empty subset with one weight and label per response")
    if tie_break not in ("fractional", "first"):
        raise ValueError(f"unknown tie_break {tie_break!r}")
    first = tie_break == "first"
    if best_of:
        wmax = max(float(w) for w in weights)
        tied = [bool(correct[i]) for i in range(n) if float(weights[i]) == wmax]
        if first:
            return 1.0 if tied[0] else 0.0
        return sum(1.0 for c in tied if c) / len(tied)

    totals: dict[int, float] = {}
    counts: dict[int, int] = {}
    n_correct: dict[int, float] = {}
    abssum = 0.0
    gsum = 0.0
    for i in range(n):
        a = int(clusters[i])
        w = float(weights[i])
        totals[a] = totals.get(a, 0.0) + w
        counts[a] = counts.get(a, 0) + 1
        n_correct[a] = n_correct.get(a, 0.0) + (1.0 if correct[i] else 0.0)
        abssum += abs(w)
        if g is not None:
            gsum += float(g[i])

    m = len(totals)
    if m == 1:  # the only answer is chosen (with the q-term: Theorem 3.2's m == 1 case)
        (only,) = totals
        return n_correct[only] / counts[only]

    values: dict[int, float] = {}
    scale = abssum
    c = 0.0
    if g is not None or use_ml_q:
        q = min(max(gsum / n, Q_EPS), 1.0 - Q_EPS) if g is not None else ml_q(weights)
        c = math.log(q * (m - 1) / (1.0 - q))
        scale = abssum + n * abs(c)
    hmax = 0.0
    for a in totals:
        h = float(size_table[counts[a]][n]) if size_table is not None else 0.0
        hmax = max(hmax, abs(h))
        values[a] = totals[a] + counts[a] * c + h
    scale += hmax
    best = max(values.values())
    threshold = best - TIE_RTOL * scale
    # dicts keep insertion order: clusters in order of their first response in the draw
    tied_credit = [n_correct[a] / counts[a] for a in values if values[a] >= threshold]
    if first:
        return tied_credit[0]
    return sum(tied_credit) / len(tied_credit)


def budget_curves(
    pair: PairData,
    inputs: Mapping[str, VoteInputs],
    subsets: Subsets,
    problems: Sequence[int] | None = None,
    keep_subsets: bool = False,
    tie_break: str = "fractional",
) -> list[list[list[float]]] | list[list[list[list[float]]]]:
    """Reference evaluation on the explicit subsets of ``subsets`` (random orders, or the
    identity for ``order="sample"``), with the given ``tie_break``.

    Returns nested lists indexed [strategy][budget][problem] (mean credit over subsets) or,
    with ``keep_subsets``, [strategy][budget][problem][subset].
    """
    probs = list(range(pair.n_problems)) if problems is None else [int(p) for p in problems]
    # the explicit random orders: subset t of problem p at budget N is orders[p][t][:N]
    orders = {p: subsets.permutations(p).tolist() for p in probs}
    result_mean: list[list[list[float]]] = []
    result_all: list[list[list[list[float]]]] = []
    for name in inputs:
        vi = inputs[name]
        per_budget_mean: list[list[float]] = []
        per_budget_all: list[list[list[float]]] = []
        for budget in subsets.budgets:
            row_mean: list[float] = []
            row_all: list[list[float]] = []
            for p in probs:
                lo = int(pair.offsets[p])
                size = min(budget, int(subsets.sizes[p]))
                credits: list[float] = []
                for t in range(subsets.n_subsets):
                    rows = [lo + int(i) for i in orders[p][t][:size]]
                    table = None
                    if vi.size_tables is not None and vi.size_index is not None:
                        table = vi.size_tables[int(vi.size_index[lo])]
                    credits.append(
                        vote(
                            [int(pair.cluster[r]) for r in rows],
                            [float(vi.weight[r]) for r in rows],
                            [bool(pair.correct[r]) for r in rows],
                            None if vi.g is None else [float(vi.g[r]) for r in rows],
                            vi.best_of,
                            tie_break,
                            table,  # type: ignore[arg-type]
                            vi.ml_q,
                        )
                    )
                row_all.append(credits)
                total = 0.0
                for x in credits:
                    total += x
                row_mean.append(total / len(credits))
            per_budget_mean.append(row_mean)
            per_budget_all.append(row_all)
        result_mean.append(per_budget_mean)
        result_all.append(per_budget_all)
    return result_all if keep_subsets else result_mean


def brute_force_expectation(
    clusters: Sequence[int],
    weights: Sequence[float],
    correct: Sequence[bool],
    size: int,
    g: Sequence[float] | None = None,
    best_of: bool = False,
    tie_break: str = "fractional",
) -> float:
    """Exact expected credit over all size-``size`` subsets (itertools.combinations), or,
    with ``tie_break="first"`` (which depends on the draw order), over all ordered draws
    (itertools.permutations).

    Only for small n. ``size`` larger than n is clipped to n.
    """
    n = len(clusters)
    k = min(size, n)
    draws = permutations(range(n), k) if tie_break == "first" else combinations(range(n), k)
    total = 0.0
    count = 0
    for combo in draws:
        total += vote(
            [clusters[i] for i in combo],
            [weights[i] for i in combo],
            [correct[i] for i in combo],
            None if g is None else [g[i] for i in combo],
            best_of,
            tie_break,
        )
        count += 1
    return total / count


def brute_force_best_of_n(scores: Sequence[float], correct: Sequence[bool], size: int) -> float:
    """Exact best-of-N credit by enumerating all subsets (ties: fraction correct)."""
    return brute_force_expectation(
        list(range(len(scores))), scores, correct, size, g=None, best_of=True
    )


def brute_force_pass_at_n(correct: Sequence[bool], size: int) -> float:
    """Fraction of all size-N subsets that contain at least one correct response."""
    n = len(correct)
    k = min(size, n)
    hit = 0
    count = 0
    for combo in combinations(range(n), k):
        count += 1
        if any(correct[i] for i in combo):
            hit += 1
    return hit / count


# --------------------------------------------------------------------------------------
# early-stopping replay (mirrors core.evaluation.stopping's definitions, not its kernel)
# --------------------------------------------------------------------------------------


def _p_lead_beta(v1: int, v2: int) -> float:
    """P[X > 1/2], X ~ Beta(v1 + 1, v2 + 1), as a binomial tail: P[Bin(v1 + v2 + 1, 1/2) <=
    v1] (for integer a, b: P[X <= x] = P[Bin(a + b - 1, x) >= a])."""
    n = v1 + v2 + 1
    return sum(math.comb(n, j) for j in range(0, v1 + 1)) / 2.0**n


def _percentile_linear(xs: Sequence[float], pct: float) -> float:
    s = sorted(xs)
    pos = (len(s) - 1) * pct / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def replay_one(
    rule: str,
    threshold: float,
    rows: Sequence[int],
    pair: PairData,
    weight: Sequence[float],
    h: Sequence[Sequence[float]] | None = None,
    z: Sequence[Sequence[float]] | None = None,
    warmup: int = 4,
    conf_quantile: float = 0.10,
) -> tuple[float, int, float]:
    """(credit, samples, tokens) of one rule and threshold on one order `rows` (global
    response indices, in arrival order)."""
    counts: dict[int, int] = {}
    kept: dict[int, float] = {}
    right: dict[int, bool] = {}
    for r in rows:
        right[int(pair.cluster[r])] = right.get(int(pair.cluster[r]), False) or bool(
            pair.correct[r]
        )
    seen: list[int] = []
    tokens = 0.0
    n_warm = min(warmup, len(rows))
    floor = -math.inf
    k = len(rows)

    def credit_of(stat: dict[int, float]) -> float:
        best = max(stat[a] for a in seen)
        tied = [a for a in seen if stat[a] >= best - 1e-9]
        return sum(1.0 for a in tied if right[a]) / len(tied)

    for i, r in enumerate(rows):
        a = int(pair.cluster[r])
        if a not in counts:
            seen.append(a)
            counts[a] = 0
            kept[a] = 0.0
        counts[a] += 1
        tokens += float(pair.n_tokens[r])
        n = i + 1
        if rule == "confidence":
            if n < n_warm:
                kept[a] += weight[r]
            elif n == n_warm:
                floor = _percentile_linear([weight[x] for x in rows[:n]], 100 * conf_quantile)
                kept = {b: 0.0 for b in seen}
                for x in rows[:n]:
                    if weight[x] >= floor:
                        kept[int(pair.cluster[x])] += weight[x]
            elif weight[r] >= floor:
                kept[a] += weight[r]
        else:
            kept[a] += weight[r]
        last = n == k
        if rule in ("adaptive-consistency", "esc"):
            stat = {b: float(counts[b]) for b in seen}
            top = [*sorted((counts[b] for b in seen), reverse=True), 0]
            if rule == "adaptive-consistency" and (
                last or _p_lead_beta(top[0], top[1]) >= threshold
            ):
                return credit_of(stat), n, tokens
            if rule == "esc":
                w = int(threshold)
                if not last and n % w == 0:
                    window = [int(pair.cluster[x]) for x in rows[n - w : n]]
                    if len(set(window)) == 1:
                        return (1.0 if right[window[0]] else 0.0), n, tokens
                if last:
                    return credit_of(stat), n, tokens
        elif rule == "confidence":
            stat = {b: kept[b] for b in seen}
            total = sum(stat.values())
            share = max(stat.values()) / total if total > 0 else 0.0
            if last or (n >= n_warm and share >= threshold):
                return credit_of(stat), n, tokens
        else:  # posterior
            assert h is not None and z is not None
            m = len(seen)
            stat = {b: kept[b] + h[counts[b]][n] - z[m][n] for b in seen}
            odds = sum(math.exp(v) for v in stat.values())
            p_lead = max(math.exp(v) for v in stat.values()) / (1.0 + odds)
            if last or p_lead >= threshold:
                return credit_of(stat), n, tokens
    raise AssertionError("unreachable: the last response always stops")


def stopping_replay(
    pair: PairData,
    rule: str,
    subsets: Subsets,
    thresholds: Sequence[float],
    weight: Sequence[float],
    cap: int,
    problems: Sequence[int] | None = None,
    h: Sequence[Sequence[Sequence[float]]] | None = None,
    z: Sequence[Sequence[Sequence[float]]] | None = None,
) -> list[list[tuple[float, float, float]]]:
    """Per problem and threshold: mean (credit, samples, tokens) over the subsets' orders,
    each threshold replayed on its own (`h`, `z`: the posterior's tables per problem)."""
    out = []
    for p in problems if problems is not None else range(pair.n_problems):
        lo = int(pair.offsets[p])
        perms = subsets.permutations(p, min(cap, int(pair.offsets[p + 1]) - lo))
        row = []
        for thr in thresholds:
            c = s = t = 0.0
            for perm in perms:
                cr, n, tok = replay_one(
                    rule,
                    thr,
                    [lo + int(x) for x in perm],
                    pair,
                    weight,
                    h[p] if h is not None else None,
                    z[p] if z is not None else None,
                )
                c += cr
                s += n
                t += tok
            k = len(perms)
            row.append((c / k, s / k, t / k))
        out.append(row)
    return out
