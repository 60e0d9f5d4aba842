"""Early-stopping replay: responses arrive one by one in the random orders the fixed-N
curves use (`Subsets.permutations`), and a rule decides after each one, from the responses
seen so far only, whether to stop (at the latest at a cap). Each rule traces accuracy
against the mean samples (and tokens) it used as its threshold varies.

Rules (`RULES`):

- ``adaptive-consistency`` (Aggarwal et al., 2023): stop when the posterior probability
  that the leading answer is more frequent than the runner-up, under a uniform Beta prior
  on the two counts (P[X > 1/2], X ~ Beta(v1 + 1, v2 + 1)), reaches the threshold C;
  answer: the majority.
- ``esc`` (Early-Stopping Self-Consistency, Li et al., 2024): samples come in windows of w;
  stop after the first window whose w answers all agree (answer: that one); at the cap,
  the majority of all.
- ``confidence`` (DeepConf's online mode, Fu et al., 2025, on a per-response signal): the
  first ``WARMUP`` responses set a floor, the 10 % quantile of their confidences; responses
  below it are left out; stop when the confidence-weighted share of the leading answer
  among the kept responses reaches tau. Confidence: the verifier score's mid-rank among
  the scores of the pair's other problems, oriented so that higher is better (no label
  is read, and nothing of the problem's own undrawn responses).
- ``posterior`` (beyond the papers): stop when the posterior probability that the leading
  answer is correct, from the calibrated posterior vote (cross-fitted weights, Beta prior
  over q, Pitman-Yor wrong answers; "none of them is correct" included), reaches 1 - delta.
  The answer is the posterior vote's.

Ties of the deciding statistic get fractional credit, as in the fixed-N curves.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any, Final

import numba
import numpy as np
from scipy import special

from core.evaluation.engine import Subsets
from core.evaluation.stats import bootstrap_means
from core.types import FloatArray, PairData, TTSLabError, VoteInputs

#: responses the confidence rule sees before it may stop (its warm-up)
WARMUP: Final = 4
#: share of the warm-up's confidences below which a response is left out
CONF_QUANTILE: Final = 0.10

_AC, _ESC, _CONF, _POST = 0, 1, 2, 3


class StoppingError(TTSLabError, ValueError):
    """A stopping replay that cannot be run as asked."""


@dataclass(frozen=True)
class StopRule:
    """One early-stopping rule: its name, what it needs, and its default thresholds
    (ordered from stopping earliest to latest)."""

    name: str
    label: str
    code: int
    needs: str  # "answers", "signal" or "calibration"
    threshold_name: str
    thresholds: tuple[float, ...]
    reference: str


RULES: Final[dict[str, StopRule]] = {
    r.name: r
    for r in (
        StopRule(
            "adaptive-consistency",
            "Adaptive-Consistency",
            _AC,
            "answers",
            "C",
            (0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.975, 0.99, 0.995, 0.999),
            "Aggarwal et al. 2023 (Beta stopping criterion)",
        ),
        StopRule(
            "esc",
            "ESC",
            _ESC,
            "answers",
            "window w",
            (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0, 16.0),
            "Li et al. 2024 (Escape Sky-high Cost)",
        ),
        StopRule(
            "confidence",
            "confidence stop",
            _CONF,
            "signal",
            "tau",
            (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98, 0.99),
            "DeepConf online (Fu et al. 2025), on the verifier score",
        ),
        StopRule(
            "posterior",
            "calibrated posterior stop",
            _POST,
            "calibration",
            "1 - delta",
            (0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999),
            "this tool: the posterior vote's P(leading answer is correct)",
        ),
    )
}
NO_VERIFIER_RULES: Final = tuple(n for n, r in RULES.items() if r.needs == "answers")


def get_rule(name: str) -> StopRule:
    try:
        return RULES[name]
    except KeyError:
        raise StoppingError(f"unknown stopping rule {name!r}; known: {', '.join(RULES)}") from None


@dataclass(frozen=True, eq=False)
class StopCurve:
    """A rule's replay over a pair: per threshold (rows) and problem (columns), the mean
    credit, samples and tokens over the random orders."""

    rule: str
    thresholds: tuple[float, ...]
    cap: int
    credit: FloatArray  # (J, P)
    samples: FloatArray  # (J, P)
    tokens: FloatArray  # (J, P), NaN where token counts are missing

    @property
    def accuracy(self) -> FloatArray:
        return np.asarray(self.credit.mean(axis=1), dtype=np.float64)

    @property
    def mean_samples(self) -> FloatArray:
        return np.asarray(self.samples.mean(axis=1), dtype=np.float64)

    @property
    def mean_tokens(self) -> FloatArray:
        return np.asarray(self.tokens.mean(axis=1), dtype=np.float64)


def ac_table(cap: int) -> FloatArray:
    """P[X > 1/2] for X ~ Beta(v1 + 1, v2 + 1), for 0 <= v1, v2 <= cap."""
    v = np.arange(cap + 1, dtype=np.float64)
    # betainc(a, b, x) is P[X <= x]; rows: v1, columns: v2
    below = special.betainc(v[:, None] + 1.0, v[None, :] + 1.0, 0.5)
    return np.asarray(1.0 - below, dtype=np.float64)


def _confidence(pair: PairData) -> FloatArray:
    """Each response's confidence in (0, 1): the mid-rank of its score (higher = better)
    among the scores of the pair's *other* problems, so that a response's confidence never
    depends on the responses of its own problem (the replay would otherwise peek at the
    responses it has not drawn yet)."""
    s = np.asarray(pair.score, dtype=np.float64)
    if pair.orientation == "lower":
        s = -s
    everything = np.sort(s)
    less = np.searchsorted(everything, s, side="left").astype(np.float64)
    leq = np.searchsorted(everything, s, side="right").astype(np.float64)
    out = np.empty(len(s), dtype=np.float64)
    for p in range(pair.n_problems):
        lo, hi = int(pair.offsets[p]), int(pair.offsets[p + 1])
        own = np.sort(s[lo:hi])
        own_less = np.searchsorted(own, s[lo:hi], side="left")
        own_leq = np.searchsorted(own, s[lo:hi], side="right")
        below = less[lo:hi] - own_less
        ties = (leq[lo:hi] - less[lo:hi]) - (own_leq - own_less)
        others = len(s) - (hi - lo)
        out[lo:hi] = (below + 0.5 * ties + 0.5) / (others + 1.0)
    return out


@numba.njit(cache=True, nogil=True)  # type: ignore[misc]
def _credit_of(stat: Any, seen: Any, n_seen: int, correct: Any, tol: float) -> float:
    """Fractional credit of the argmax of `stat` over the seen clusters."""
    best = -np.inf
    for i in range(n_seen):
        v = stat[seen[i]]
        if v > best:
            best = v
    n_tied = 0
    n_right = 0
    for i in range(n_seen):
        c = seen[i]
        if stat[c] >= best - tol:
            n_tied += 1
            if correct[c]:
                n_right += 1
    return n_right / n_tied if n_tied > 0 else 0.0


@numba.njit(cache=True, nogil=True)  # type: ignore[misc]
def _replay(
    code: int,
    thresholds: Any,
    perms: Any,
    cluster: Any,
    cluster_correct: Any,
    tokens: Any,
    weight: Any,
    h: Any,
    z: Any,
    actab: Any,
    warmup: int,
    conf_quantile: float,
    out_credit: Any,
    out_samples: Any,
    out_tokens: Any,
) -> None:
    """Replay one problem's orders (rows of `perms`) for every threshold.

    The statistics are kept incrementally (counts only grow, so the leader and runner-up
    counts, ESC's run of equal answers, and the confidence rule's kept total and leader
    are updated in O(1) per response). For the rules that stop once a statistic reaches
    the threshold (all but ESC), thresholds are visited in increasing order: those that
    stop at a response are the next ones up to the statistic."""
    n_orders, k = perms.shape
    n_thr = thresholds.shape[0]
    n_clusters = cluster_correct.shape[0]
    order = np.argsort(thresholds, kind="mergesort")
    counts = np.zeros(n_clusters, dtype=np.float64)
    wsum = np.zeros(n_clusters, dtype=np.float64)
    stat = np.zeros(n_clusters, dtype=np.float64)
    seen = np.zeros(n_clusters, dtype=np.int64)
    done = np.zeros(n_thr, dtype=np.bool_)
    n_warm = min(warmup, k)
    warm = np.zeros(max(n_warm, 1), dtype=np.float64)
    for t in range(n_orders):
        for c in range(n_clusters):
            counts[c] = 0.0
            wsum[c] = 0.0
        for j in range(n_thr):
            done[j] = False
        n_seen = 0
        n_done = 0
        nxt = 0  # next threshold (in increasing order) not yet stopped
        tok = 0.0
        floor = -np.inf
        v1 = 0.0  # leader's count, runner-up's count
        v2 = 0.0
        lead_c = -1
        run = 0  # responses in a row with the same answer (ESC)
        prev = -1
        total = 0.0  # kept confidence and its leader (confidence rule)
        lead = 0.0
        wmin = thresholds[order[0]]  # ESC: the smallest window still open
        for i in range(k):
            r = perms[t, i]
            c = cluster[r]
            if counts[c] == 0.0:
                seen[n_seen] = c
                n_seen += 1
            counts[c] += 1.0
            tok += tokens[r]
            n = i + 1
            run = run + 1 if c == prev else 1
            prev = c
            if c == lead_c:
                v1 = counts[c]
            elif counts[c] > v1:
                v2 = v1
                v1 = counts[c]
                lead_c = c
            elif counts[c] > v2:
                v2 = counts[c]
            if code == 2:
                if n < n_warm:
                    warm[i] = weight[r]
                    wsum[c] += weight[r]
                elif n == n_warm:
                    warm[i] = weight[r]
                    floor = np.percentile(warm[:n], 100.0 * conf_quantile)
                    # the warm-up's own responses below the floor are left out too
                    for q in range(n_seen):
                        wsum[seen[q]] = 0.0
                    for i2 in range(n):
                        r2 = perms[t, i2]
                        if weight[r2] >= floor:
                            wsum[cluster[r2]] += weight[r2]
                    total = 0.0
                    lead = 0.0
                    for q in range(n_seen):
                        total += wsum[seen[q]]
                        lead = max(lead, wsum[seen[q]])
                elif weight[r] >= floor:
                    wsum[c] += weight[r]
                    total += weight[r]
                    lead = max(lead, wsum[c])
            elif code == 3:
                wsum[c] += weight[r]
            last = n == k
            if code == 1:
                if not last and run < wmin:
                    continue  # no window still open can be complete yet
                for j in range(n_thr):
                    if done[j]:
                        continue
                    w = int(thresholds[j])
                    credit = -1.0
                    if not last and n % w == 0 and run >= w:
                        credit = 1.0 if cluster_correct[c] else 0.0
                    elif last:
                        credit = _credit_of(counts, seen, n_seen, cluster_correct, 1e-9)
                    if credit >= 0.0:
                        out_credit[j] += credit
                        out_samples[j] += n
                        out_tokens[j] += tok
                        done[j] = True
                        n_done += 1
                wmin = np.inf
                for j in range(n_thr):
                    if not done[j]:
                        wmin = min(wmin, thresholds[j])
            else:
                if code == 0:
                    p_lead = actab[int(v1), int(v2)]
                elif code == 2:
                    p_lead = lead / total if total > 0.0 and n >= n_warm else -1.0
                else:
                    m = n_seen
                    best = -np.inf
                    for q in range(n_seen):
                        cc = seen[q]
                        v = wsum[cc] + h[int(counts[cc]), n] - z[m, n]
                        stat[cc] = v
                        if v > best:
                            best = v
                    # P(lead) = e^best / (1 + sum e^v), computed stably
                    norm = np.exp(-best) if best > -700.0 else np.inf
                    for q in range(n_seen):
                        norm += np.exp(stat[seen[q]] - best)
                    p_lead = 1.0 / norm
                if nxt < n_thr and (last or thresholds[order[nxt]] <= p_lead):
                    if code == 0:
                        credit = _credit_of(counts, seen, n_seen, cluster_correct, 1e-9)
                    elif code == 2:
                        credit = _credit_of(wsum, seen, n_seen, cluster_correct, 1e-9)
                    else:
                        credit = _credit_of(stat, seen, n_seen, cluster_correct, 1e-9)
                    while nxt < n_thr and (last or thresholds[order[nxt]] <= p_lead):
                        j = order[nxt]
                        out_credit[j] += credit
                        out_samples[j] += n
                        out_tokens[j] += tok
                        done[j] = True
                        n_done += 1
                        nxt += 1
            if n_done == n_thr:
                break
    for j in range(n_thr):
        out_credit[j] /= n_orders
        out_samples[j] /= n_orders
        out_tokens[j] /= n_orders


def replay(
    pair: PairData,
    rule: str,
    subsets: Subsets,
    *,
    cap: int | None = None,
    thresholds: Sequence[float] | None = None,
    calibrated: VoteInputs | None = None,
    progress: Callable[[int, int], None] | None = None,
    workers: int | None = None,
) -> StopCurve:
    """Replay `rule` on every problem of `pair` over the orders of `subsets`.

    ``cap``: the most responses a replay may use (default: all of the problem's).
    ``calibrated``: the cross-fitted posterior vote's inputs (``posterior`` rule only).
    ``workers``: threads replaying problems side by side (default: the CPUs).
    """
    r = get_rule(rule)
    if subsets.problem_ids is not None and tuple(subsets.problem_ids) != tuple(pair.problem_ids):
        raise StoppingError("the subsets were drawn for other problems")
    thr = np.asarray(r.thresholds if thresholds is None else thresholds, dtype=np.float64)
    if thr.size == 0:
        raise StoppingError("no thresholds to replay")
    if r.code == _ESC and (np.any(thr < 1) or np.any(thr != np.round(thr))):
        raise StoppingError("ESC windows must be whole numbers >= 1")
    sizes = pair.sizes()
    k_max = int(sizes.max()) if pair.n_problems else 1
    cap_ = k_max if cap is None else int(cap)
    if cap_ < 1:
        raise StoppingError(f"the cap must be at least 1 response, got {cap_}")
    weight = np.zeros(pair.n_responses, dtype=np.float64)
    h_all = z_all = np.zeros((1, 2, 2))
    h_idx = np.zeros(pair.n_responses, dtype=np.int64)
    if r.code == _POST:
        if calibrated is None or calibrated.size_tables is None or calibrated.none_tables is None:
            raise StoppingError("the posterior stop needs the calibrated posterior vote's inputs")
        weight = np.asarray(calibrated.weight, dtype=np.float64)
        h_all = np.asarray(calibrated.size_tables, dtype=np.float64)
        z_all = np.asarray(calibrated.none_tables, dtype=np.float64)
        assert calibrated.size_index is not None
        h_idx = np.asarray(calibrated.size_index, dtype=np.int64)
        if h_all.shape[1] <= min(cap_, k_max):
            raise StoppingError("the posterior tables do not cover the largest problem")
    elif r.code == _CONF:
        weight = _confidence(pair)
    tokens = np.asarray(pair.n_tokens, dtype=np.float64)
    actab = ac_table(min(cap_, k_max))
    n_thr = thr.size
    credit = np.zeros((n_thr, pair.n_problems))
    samples = np.zeros((n_thr, pair.n_problems))
    toks = np.zeros((n_thr, pair.n_problems))
    offs = pair.offsets

    def one(p: int) -> None:
        lo, hi = int(offs[p]), int(offs[p + 1])
        k = min(cap_, hi - lo)
        perms = subsets.permutations(p, k)
        cl = np.asarray(pair.cluster[lo:hi], dtype=np.int64)
        n_cl = int(cl.max()) + 1
        cc = np.zeros(n_cl, dtype=np.bool_)
        np.logical_or.at(cc, cl, pair.correct[lo:hi])
        t_idx = int(h_idx[lo]) if hi > lo else 0
        c_out = np.zeros(n_thr)
        s_out = np.zeros(n_thr)
        k_out = np.zeros(n_thr)
        _replay(
            r.code,
            thr,
            perms,
            cl,
            cc,
            tokens[lo:hi],
            weight[lo:hi],
            h_all[t_idx],
            z_all[t_idx],
            actab,
            WARMUP,
            CONF_QUANTILE,
            c_out,
            s_out,
            k_out,
        )
        credit[:, p] = c_out
        samples[:, p] = s_out
        toks[:, p] = k_out

    # the kernel runs without the GIL: problems are replayed on `workers` threads, each
    # writing its own columns (results do not depend on the number of threads)
    n_workers = max(1, min(workers or os.cpu_count() or 1, pair.n_problems))
    if n_workers == 1:
        for p in range(pair.n_problems):
            one(p)
            if progress is not None:
                progress(p + 1, pair.n_problems)
    else:
        with ThreadPoolExecutor(max_workers=n_workers) as pool:
            futures = [pool.submit(one, p) for p in range(pair.n_problems)]
            for done, fut in enumerate(as_completed(futures), start=1):
                fut.result()
                if progress is not None:
                    progress(done, pair.n_problems)
    return StopCurve(rule, tuple(float(x) for x in thr), cap_, credit, samples, toks)


# --------------------------------------------------------------------------------------
# compute of fixed-N curves, and savings at equal accuracy
# --------------------------------------------------------------------------------------


def fixed_cost(pair: PairData, budgets: Sequence[int], unit: str = "samples") -> FloatArray:
    """Expected cost per problem (B, P) of a random size-N subset: min(N, n_p) samples, or
    min(N, n_p) times the problem's mean token count (NaN where counts are missing)."""
    sizes = pair.sizes().astype(np.float64)
    b = np.asarray(budgets, dtype=np.float64)[:, None]
    used = np.minimum(b, sizes[None, :])
    if unit == "samples":
        return np.asarray(used, dtype=np.float64)
    if unit != "tokens":
        raise StoppingError(f"unknown cost unit {unit!r}: samples or tokens")
    tok = np.asarray(pair.n_tokens, dtype=np.float64)
    sums = np.add.reduceat(np.nan_to_num(tok, nan=0.0), pair.offsets[:-1])
    missing = np.add.reduceat(np.isnan(tok).astype(np.int64), pair.offsets[:-1]) > 0
    mean = np.where(missing, np.nan, sums / np.maximum(sizes, 1.0))
    return np.asarray(used * mean[None, :], dtype=np.float64)


def full_majority(pair: PairData) -> float:
    """Accuracy of majority vote over all of each problem's responses (ties: the mean
    correctness of the tied answers): the Best-of-infinity asymptote of majority vote."""
    credit = np.zeros(pair.n_problems)
    for p in range(pair.n_problems):
        lo, hi = int(pair.offsets[p]), int(pair.offsets[p + 1])
        cl = pair.cluster[lo:hi]
        counts = np.bincount(cl)
        right = np.bincount(cl, weights=pair.correct[lo:hi].astype(np.float64))
        top = counts == counts.max()
        credit[p] = float(np.mean(right[top] / counts[top]))
    return float(credit.mean()) if pair.n_problems else float("nan")


def has_tokens(pair: PairData) -> bool:
    return bool(pair.n_responses) and not bool(np.isnan(pair.n_tokens).any())


def cost_at_accuracy(acc: FloatArray, cost: FloatArray, target: float) -> float:
    """The least cost at which a curve (points ordered by cost) reaches `target`,
    interpolated linearly between its points; NaN when it never does."""
    order = np.argsort(cost, kind="stable")
    a = np.asarray(acc, dtype=np.float64)[order]
    c = np.asarray(cost, dtype=np.float64)[order]
    best_before = -np.inf
    for i in range(len(a)):
        if a[i] >= target:
            if i == 0 or best_before == -np.inf:
                return float(c[i])
            j = i - 1
            if a[i] == a[j]:
                return float(c[i])
            f = (target - a[j]) / (a[i] - a[j])
            return float(c[j] + f * (c[i] - c[j]))
        best_before = max(best_before, a[i])
    return float("nan")


@dataclass(frozen=True)
class Saving:
    """Samples (or tokens) a rule needs to reach a reference accuracy, and the saving
    against the reference's cost, with paired bootstrap intervals over problems."""

    rule: str
    unit: str
    reference: str
    target_accuracy: float  # the reference's accuracy (the target is this less `tolerance`)
    reference_cost: float
    cost: float
    cost_low: float
    cost_high: float
    saved: float  # 1 - cost / reference_cost
    saved_low: float
    saved_high: float
    unreached_share: float  # of bootstrap resamples in which the rule never reached it
    tolerance: float = 0.0  # the target is the reference's accuracy minus this


def saving(
    curve: StopCurve,
    ref_credit: FloatArray,
    ref_cost: FloatArray,
    *,
    unit: str = "samples",
    reference: str = "",
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    tolerance: float = 0.0,
) -> Saving:
    """What `curve` costs at the accuracy of a fixed-N reference (per-problem credit and
    cost of that reference, same problems), less `tolerance`, with paired bootstrap
    intervals: each resample of problems recomputes the reference's accuracy and the
    rule's curve.

    A tolerance matters when a rule ends, at its cap, with the very vote it is compared
    with: it can then equal the reference's accuracy but never pass it, so an exact
    target is reached only by chance."""
    if not 0.0 <= tolerance < 1.0:
        raise StoppingError(f"the tolerance must lie in [0, 1), got {tolerance}")
    cost = curve.samples if unit == "samples" else curve.tokens
    p = curve.credit.shape[1]
    if ref_credit.shape != (p,) or ref_cost.shape != (p,):
        raise StoppingError("the reference must give one credit and one cost per problem")
    ref_accuracy = float(ref_credit.mean())
    target = ref_accuracy - tolerance
    rc = float(ref_cost.mean())
    c = cost_at_accuracy(curve.accuracy, cost.mean(axis=1), target)
    # the same resamples of problems (same seed) for the rule and the reference: paired
    acc_b = bootstrap_means(curve.credit, n_boot=n_boot, seed=seed).T  # (B, J)
    cost_b = bootstrap_means(cost, n_boot=n_boot, seed=seed).T
    tgt_b = bootstrap_means(ref_credit, n_boot=n_boot, seed=seed)
    rc_b = bootstrap_means(ref_cost, n_boot=n_boot, seed=seed)
    boot = np.array(
        [cost_at_accuracy(acc_b[i], cost_b[i], float(tgt_b[i]) - tolerance) for i in range(n_boot)]
    )
    unreached = float(np.isnan(boot).mean())
    alpha = (1.0 - level) / 2.0
    # a resample in which the rule never reaches the target costs more than any cap
    filled = np.where(np.isnan(boot), np.inf, boot)
    lo, hi = (float(v) for v in np.quantile(filled, [alpha, 1.0 - alpha], method="inverted_cdf"))
    ratio = np.where(np.isnan(boot), -np.inf, 1.0 - boot / rc_b)
    s_lo, s_hi = (float(v) for v in np.quantile(ratio, [alpha, 1.0 - alpha], method="inverted_cdf"))
    return Saving(
        rule=curve.rule,
        unit=unit,
        reference=reference,
        target_accuracy=ref_accuracy,
        reference_cost=rc,
        cost=c,
        cost_low=lo,
        cost_high=hi,
        saved=1.0 - c / rc if np.isfinite(c) else float("-inf"),
        saved_low=s_lo,
        saved_high=s_hi,
        unreached_share=unreached,
        tolerance=tolerance,
    )


def rules_for(pair_has_signal: bool, calibrated: bool) -> tuple[str, ...]:
    """The rules a pair can run: all need answers; confidence a signal; posterior a fit."""
    out = list(NO_VERIFIER_RULES)
    if pair_has_signal:
        out.append("confidence")
    if calibrated:
        out.append("posterior")
    return tuple(out)


__all__ = [
    "NO_VERIFIER_RULES",
    "RULES",
    "Saving",
    "StopCurve",
    "StopRule",
    "StoppingError",
    "ac_table",
    "cost_at_accuracy",
    "fixed_cost",
    "full_majority",
    "get_rule",
    "has_tokens",
    "replay",
    "saving",
]
