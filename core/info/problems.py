"""What the problem explorer shows: one problem's answer clusters with counts, scores,
weights and cluster totals per strategy, with weights from the cross-fitting fold that held
the problem out; and which problems it lists: those on which the strategies disagree, or
those where strategy A is right and B wrong at a budget N (the problems behind a gain),
narrowed by a text search."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from core.evaluation.config import EvalConfig
from core.evaluation.engine import Q_EPS, TIE_RTOL
from core.evaluation.pipeline import PairInputs, pair_inputs
from core.info.common import ViewError, check_pair, kept_per_content
from core.methods.ranked import ranked_scores
from core.methods.registry import get_strategy, short_name, strategy_names
from core.store import DatasetInfo, Store
from core.types import BoolArray, FloatArray, IntArray, PairData, TTSLabError, VoteInputs

ProgressFn = Callable[[str, int, int], None]


def explorer_strategies() -> tuple[str, ...]:
    """Strategies the explorer can show: every registered one that is not an oracle (an
    oracle's weights use the problem's own labels)."""
    return tuple(strategy_names(oracles=False))


def _explorer_data(
    store: Store,
    info: DatasetInfo,
    llm: str,
    verifier: str,
    strategies: Sequence[str],
    config: EvalConfig,
    progress: ProgressFn | None,
) -> PairInputs:
    check_pair(info, llm, verifier)
    for s in strategies:
        if get_strategy(s).oracle:
            raise ViewError(f"the problem explorer cannot show {s!r} (oracles use the labels)")
    try:
        data = pair_inputs(store, info, llm, verifier, strategies, config, progress=progress)
    except TTSLabError as exc:
        raise ViewError(f"({llm}, {verifier}): {exc}") from exc
    if len(data.skipped) == len(strategies):
        raise ViewError(
            "no strategy can be fitted on this pair: "
            + "; ".join(f"{k}: {v}" for k, v in data.skipped.items())
        )
    return data


@dataclass(frozen=True, eq=False)
class _Picks:
    """Full-response-set votes of every problem (global cluster index = cbase[p] + c)."""

    cbase: IntArray  # (P + 1,) first global cluster of each problem
    count: IntArray  # (K,)
    n_correct: FloatArray  # (K,)
    mean_score: FloatArray  # (K,)
    max_score: FloatArray  # (K,)
    weight_sum: FloatArray  # (S, K) sum of the responses' weights
    total: FloatArray  # (S, K) what the vote compares (with the q/m term)
    qm: FloatArray  # (S, P) the per-response q/m term (NaN where unused)
    picked: BoolArray  # (S, K) chosen cluster(s); ties: every tied cluster
    credit: FloatArray  # (S, P) expected credit (fractional for ties)


def _full_set_picks(
    pair: PairData, strategies: Sequence[str], inputs: Mapping[str, VoteInputs]
) -> _Picks:
    """Each strategy's vote over all responses of each problem, with the budget engine's
    tie rule (`core.evaluation.engine`): weighted votes tie within TIE_RTOL of the scale, best-of
    ties are exact and credit the fraction of tied responses that are correct."""
    prob = pair.problem_index()
    sizes = pair.sizes()
    n_prob = pair.n_problems
    k_p = np.zeros(n_prob, dtype=np.int64)
    np.maximum.at(k_p, prob, pair.cluster + 1)
    cbase = np.zeros(n_prob + 1, dtype=np.int64)
    np.cumsum(k_p, out=cbase[1:])
    gid = cbase[prob] + pair.cluster
    n_k = int(cbase[-1])
    cprob = np.repeat(np.arange(n_prob), k_p)
    correct = np.asarray(pair.correct, dtype=np.float64)
    count = np.bincount(gid, minlength=n_k)
    n_correct = np.asarray(np.bincount(gid, weights=correct, minlength=n_k), dtype=np.float64)
    mean_score = np.bincount(gid, weights=pair.score, minlength=n_k) / np.maximum(count, 1)
    max_score = np.full(n_k, -np.inf)
    np.maximum.at(max_score, gid, pair.score)
    n_s = len(strategies)
    weight_sum = np.zeros((n_s, n_k))
    total = np.zeros((n_s, n_k))
    qm = np.full((n_s, n_prob), np.nan)
    picked = np.zeros((n_s, n_k), dtype=bool)
    credit = np.zeros((n_s, n_prob))
    frac = n_correct / np.maximum(count, 1)
    starts = cbase[:-1]
    for j, s in enumerate(strategies):
        vi = inputs[s]
        w = np.asarray(vi.weight, dtype=np.float64)
        weight_sum[j] = np.bincount(gid, weights=w, minlength=n_k)
        if vi.ranked:
            # ranked votes (Majority-of-the-Bests, top-share vote): per problem, as the
            # engine's ranked kernel scores the full set
            offs = pair.offsets
            for pi in range(n_prob):
                lo, hi = int(offs[pi]), int(offs[pi + 1])
                sc = ranked_scores(w[lo:hi], pair.cluster[lo:hi], vi.ranked, vi.ranked_param)
                for a, v in sc.items():
                    total[j, cbase[pi] + a] = v
            best_p = np.maximum.reduceat(total[j], starts)
            pk = total[j] >= best_p[cprob] - 1e-12 * sizes[cprob]
            picked[j] = pk
            n_pk = np.bincount(cprob, weights=pk.astype(np.float64), minlength=n_prob)
            credit[j] = np.bincount(cprob, weights=pk * frac, minlength=n_prob) / n_pk
            continue
        if vi.best_of:
            top = np.full(n_k, -np.inf)
            np.maximum.at(top, gid, w)
            best_p = np.maximum.reduceat(top, starts)
            total[j] = top
            picked[j] = top == best_p[cprob]
            tied = w == best_p[prob]
            n_tied = np.bincount(prob, weights=tied.astype(np.float64), minlength=n_prob)
            n_tied_ok = np.bincount(prob, weights=tied * correct, minlength=n_prob)
            credit[j] = n_tied_ok / n_tied
            continue
        g = np.asarray(vi.g, dtype=np.float64) if vi.g is not None else np.full(len(w), np.nan)
        scale = np.bincount(prob, weights=np.abs(w), minlength=n_prob)
        tot = weight_sum[j].copy()
        single = k_p == 1
        if not np.isnan(g).all():
            q = np.bincount(prob, weights=g, minlength=n_prob) / sizes
            q = np.clip(q, Q_EPS, 1.0 - Q_EPS)
            with np.errstate(divide="ignore"):
                c = np.where(single, 0.0, np.log(q * np.maximum(k_p - 1, 1) / (1.0 - q)))
            qm[j] = np.where(single, np.nan, c)
            tot = tot + count * c[cprob]
            scale = scale + sizes * np.abs(c)
        total[j] = tot
        best_p = np.maximum.reduceat(tot, starts)
        pk = tot >= (best_p - TIE_RTOL * scale)[cprob]
        pk[single[cprob]] = True
        picked[j] = pk
        n_pk = np.bincount(cprob, weights=pk.astype(np.float64), minlength=n_prob)
        credit[j] = np.bincount(cprob, weights=pk * frac, minlength=n_prob) / n_pk
    return _Picks(
        cbase=cbase,
        count=count,
        n_correct=n_correct,
        mean_score=mean_score,
        max_score=max_score,
        weight_sum=weight_sum,
        total=total,
        qm=qm,
        picked=picked,
        credit=credit,
    )


@dataclass(frozen=True, eq=False)
class ProblemView:
    """One problem of one pair: its answer clusters and how each strategy votes on them.

    Cluster arrays have length K (clusters by size, largest first); strategy arrays
    are (S, K). Weights come from the cross-fitting fold that held this problem out
    (`fold`, fitted on `n_calib` other problems), so no label of this problem was used.
    Response arrays (length n) give each response's cluster, score and weights.
    """

    dataset: str
    simulated: bool
    llm: str
    verifier: str
    problem_id: str
    gold: str | None
    text: str | None
    level: int | None
    subject: str | None
    strategies: tuple[str, ...]
    labels: tuple[str, ...]
    answers: tuple[str, ...]
    count: IntArray
    cluster_correct: FloatArray  # fraction of the cluster's responses marked correct
    mean_score: FloatArray
    max_score: FloatArray
    weight_sum: FloatArray
    total: FloatArray
    qm: FloatArray  # (S,) per-response q/m term of the vote (NaN if unused)
    picked: BoolArray
    credit: FloatArray  # (S,)
    picks: tuple[str, ...]  # per strategy: the answer(s) it picks
    response_cluster: IntArray
    response_score: FloatArray
    response_correct: BoolArray
    response_weight: FloatArray  # (S, n)
    fold: int
    k: int
    n_calib: int
    reduction: str
    skipped: Mapping[str, str] = field(default_factory=dict)  # strategy -> why not fitted

    def to_frame(self) -> pd.DataFrame:
        """One row per answer cluster: answer, count, correctness, scores and, per
        strategy, the cluster total and whether the strategy picks it."""
        df = pd.DataFrame(
            {
                "answer": list(self.answers),
                "responses": self.count,
                "correct": self.cluster_correct >= 0.5,
                "mean score": self.mean_score,
                "max score": self.max_score,
            }
        )
        for j, s in enumerate(self.strategies):
            df[f"{short_name(s)} total"] = self.total[j]
        df["picked by"] = [
            ", ".join(short_name(s) for j, s in enumerate(self.strategies) if self.picked[j, c])
            for c in range(len(self.answers))
        ]
        return df


def _cluster_answers(
    store: Store, info: DatasetInfo, llm: str, problem_id: str, cluster: IntArray
) -> tuple[str, ...]:
    rows = store.responses(info, llm, problem_id)  # in sample order
    if len(rows) != len(cluster):
        return tuple(f"answer {c + 1}" for c in range(int(cluster.max()) + 1))
    raw = rows["answer_raw"].where(rows["answer_raw"].notna(), rows["answer_key"]).astype(str)
    out: list[str] = []
    for c in range(int(cluster.max()) + 1):
        vals = raw.to_numpy()[cluster == c]
        out.append(str(pd.Series(vals).mode().iloc[0]) if len(vals) else f"answer {c + 1}")
    return tuple(out)


@kept_per_content
def problem_view(
    store: Store,
    info: DatasetInfo,
    llm: str,
    verifier: str,
    problem_id: str,
    strategies: Sequence[str],
    config: EvalConfig,
    *,
    progress: ProgressFn | None = None,
) -> ProblemView:
    """The answer clusters of one problem and every strategy's vote over all its responses,
    with weights fitted without this problem (its held-out cross-fitting fold)."""
    asked = tuple(strategies)
    data = _explorer_data(store, info, llm, verifier, asked, config, progress)
    pair = data.pair
    skipped = dict(data.skipped)
    strategies = tuple(s for s in asked if s not in skipped)
    try:
        p = pair.problem_ids.index(problem_id)
    except ValueError:
        raise ViewError(f"({llm}, {verifier}) has no problem {problem_id!r}") from None
    picks = _full_set_picks(pair, strategies, data.inputs)
    k0, k1 = int(picks.cbase[p]), int(picks.cbase[p + 1])
    r0, r1 = int(pair.offsets[p]), int(pair.offsets[p + 1])
    cl = np.asarray(pair.cluster[r0:r1], dtype=np.int64)
    answers = _cluster_answers(store, info, llm, problem_id, cl)
    probs = store.problems(info)
    prow = probs[probs["problem_id"] == problem_id]

    def opt(col: str) -> Any:
        if prow.empty or col not in prow or pd.isna(prow[col].iloc[0]):
            return None
        return prow[col].iloc[0]

    level = opt("level")
    # clusters in order of size (then mean score), largest first
    order = np.lexsort((-picks.mean_score[k0:k1], -picks.count[k0:k1]))
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    cl = rank[cl]
    answers = tuple(answers[int(i)] for i in order)
    sl = k0 + order
    picked = picks.picked[:, sl]
    choice = tuple(
        " / ".join(
            (a if a.strip() else NO_ANSWER) for a, pk in zip(answers, row, strict=True) if pk
        )
        for row in picked
    )
    fold = int(data.fold_of[p])
    return ProblemView(
        dataset=info.name,
        simulated=info.simulated,
        llm=llm,
        verifier=verifier,
        problem_id=problem_id,
        gold=None if opt("gold_answer") is None else str(opt("gold_answer")),
        text=None if opt("text") is None else str(opt("text")),
        level=None if level is None else int(level),
        subject=None if opt("subject") is None else str(opt("subject")),
        strategies=strategies,
        labels=tuple(get_strategy(s).label for s in strategies),
        answers=answers,
        count=picks.count[sl],
        cluster_correct=picks.n_correct[sl] / np.maximum(picks.count[sl], 1),
        mean_score=picks.mean_score[sl],
        max_score=picks.max_score[sl],
        weight_sum=picks.weight_sum[:, sl],
        total=picks.total[:, sl],
        qm=picks.qm[:, p],
        picked=picked,
        credit=picks.credit[:, p],
        picks=choice,
        response_cluster=cl,
        response_score=np.asarray(pair.score[r0:r1], dtype=np.float64),
        response_correct=np.asarray(pair.correct[r0:r1], dtype=bool),
        response_weight=np.vstack([np.asarray(data.inputs[s].weight)[r0:r1] for s in strategies]),
        fold=fold,
        k=config.folds,
        n_calib=int(data.n_calib[fold]),
        reduction=config.reduction,
        skipped=skipped,
    )


#: how an empty answer (a response with no final answer) is named on screen
NO_ANSWER = "(no answer)"


@dataclass(frozen=True, eq=False)
class DisagreementView:
    """Problems of one pair on which the strategies do not all pick the same answer."""

    dataset: str
    llm: str
    verifier: str
    strategies: tuple[str, ...]
    n_problems: int
    problem_ids: tuple[str, ...]
    credit: FloatArray  # (S, D) credit of each strategy on each listed problem
    all_problem_ids: tuple[str, ...] = ()
    skipped: Mapping[str, str] = field(default_factory=dict)  # strategy -> why not fitted

    def to_frame(self) -> pd.DataFrame:
        df = pd.DataFrame({"problem": list(self.problem_ids)})
        for j, s in enumerate(self.strategies):
            df[short_name(s)] = self.credit[j]
        return df


def disagreement_problems(
    store: Store,
    info: DatasetInfo,
    llm: str,
    verifier: str,
    strategies: Sequence[str],
    config: EvalConfig,
    *,
    progress: ProgressFn | None = None,
) -> DisagreementView:
    """Problems where the strategies' picks over all responses differ (cross-fitted
    weights, as in `problem_view`), with each strategy's credit there."""
    asked = tuple(strategies)
    data = _explorer_data(store, info, llm, verifier, asked, config, progress)
    pair = data.pair
    skipped = dict(data.skipped)
    strategies = tuple(s for s in asked if s not in skipped)
    picks = _full_set_picks(pair, strategies, data.inputs)
    n_prob = pair.n_problems
    k_p = np.diff(picks.cbase)
    cprob = np.repeat(np.arange(n_prob), k_p)
    differs = np.zeros(n_prob, dtype=bool)
    for j in range(1, len(strategies)):
        neq = picks.picked[j] != picks.picked[0]
        differs |= np.bincount(cprob, weights=neq.astype(np.float64), minlength=n_prob) > 0
    idx = np.flatnonzero(differs)
    return DisagreementView(
        dataset=info.name,
        llm=llm,
        verifier=verifier,
        strategies=strategies,
        n_problems=n_prob,
        problem_ids=tuple(pair.problem_ids[int(i)] for i in idx),
        credit=picks.credit[:, idx],
        all_problem_ids=tuple(pair.problem_ids),
        skipped=skipped,
    )


#: Which problems the explorer lists (see `ProblemFilter`).
FILTER_KINDS = ("disagree", "all", "a_right_b_wrong", "a_wrong_b_right")
FILTER_LABELS = {
    "disagree": "where the strategies disagree",
    "all": "all problems",
    "a_right_b_wrong": "A right, B wrong at N",
    "a_wrong_b_right": "A wrong, B right at N",
}


@dataclass(frozen=True)
class ProblemFilter:
    """Which problems to list.

    kind: "disagree" (the chosen strategies' picks over all responses differ), "all",
        "a_right_b_wrong" (at budget N, strategy `a` picks the correct answer in at least
        half of the problem's random subsets of size N and `b` in fewer than half), or
        "a_wrong_b_right" (the reverse). Contrasts are read from the pair's cross-fitted
        curves, the numbers behind Compare and Budget curves.
    search: keep problems whose text or id contains it (case-insensitive).
    """

    kind: str = "disagree"
    a: str | None = None
    b: str | None = None
    budget: int | None = None
    search: str = ""

    def __post_init__(self) -> None:
        if self.kind not in FILTER_KINDS:
            raise ViewError(f"unknown problem filter {self.kind!r}; use one of {FILTER_KINDS}")
        if self.kind.startswith("a_") and (self.a is None or self.b is None or self.budget is None):
            raise ViewError("a contrast filter needs strategies A and B and a budget N")


@dataclass(frozen=True, eq=False)
class ProblemList:
    """The explorer's list: `problem_ids` in order (contrasts: largest difference first),
    what they are (`note`), and for contrasts each listed problem's share of subsets of
    size N in which A and B pick the correct answer."""

    disagreement: DisagreementView
    problem_ids: tuple[str, ...]
    note: str
    share_a: Mapping[str, float] = field(default_factory=dict)
    share_b: Mapping[str, float] = field(default_factory=dict)
    #: contrasts: mean over all problems of A's minus B's share (the Compare gain)
    mean_difference: float | None = None
    searched_text: bool = True  # False: the dataset has no problem texts (ids searched)


def _contrast(
    store: Store,
    info: DatasetInfo,
    llm: str,
    verifier: str,
    config: EvalConfig,
    filt: ProblemFilter,
    progress: ProgressFn | None,
) -> tuple[list[str], dict[str, float], dict[str, float], float, str]:
    from core.info.budget import many_curves

    a, b, n = str(filt.a), str(filt.b), int(filt.budget or 0)
    for s in (a, b):
        get_strategy(s)  # a clear error for an unknown name
    res = many_curves(store, info, [(llm, verifier)], (a, b), config, progress)[0]
    curves = res.curves
    if n not in curves.budgets:
        raise ViewError(
            f"N = {n} is not an evaluated budget of ({llm}, {verifier}); evaluated: "
            + ", ".join(str(x) for x in curves.budgets)
        )
    for s in (a, b):
        if s not in curves.strategies:
            raise ViewError(f"{get_strategy(s).label} could not be fitted on this pair")
    bi = curves.budgets.index(n)
    pa = np.asarray(curves.per_problem[curves.index(a), bi, :], dtype=np.float64)
    pb = np.asarray(curves.per_problem[curves.index(b), bi, :], dtype=np.float64)
    if filt.kind == "a_right_b_wrong":
        mask, diff = (pa >= 0.5) & (pb < 0.5), pa - pb
        what = "is right and {b} wrong"
    else:
        mask, diff = (pa < 0.5) & (pb >= 0.5), pb - pa
        what = "is wrong and {b} right"
    idx = np.flatnonzero(mask)
    idx = idx[np.argsort(-diff[idx], kind="stable")]
    ids = [str(curves.problem_ids[int(i)]) for i in idx]
    la, lb = get_strategy(a).label, get_strategy(b).label
    note = (
        f"{len(ids)} of {pa.size} problems where {la} " + what.format(b=lb) + f" at N = {n} "
        "(correct in at least half of the problem's random subsets of size N, the other in "
        "fewer than half), largest difference first"
    )
    share_a = {str(curves.problem_ids[int(i)]): float(pa[i]) for i in idx}
    share_b = {str(curves.problem_ids[int(i)]): float(pb[i]) for i in idx}
    return ids, share_a, share_b, float(np.mean(pa - pb)), note


@kept_per_content
def explorer_problems(
    store: Store,
    info: DatasetInfo,
    llm: str,
    verifier: str,
    strategies: Sequence[str],
    config: EvalConfig,
    filt: ProblemFilter,
    *,
    progress: ProgressFn | None = None,
) -> ProblemList:
    """The problems the explorer lists for `filt` (see `ProblemFilter`), with the
    disagreement of `strategies` that the explorer also shows."""
    dis = disagreement_problems(store, info, llm, verifier, strategies, config, progress=progress)
    share_a: dict[str, float] = {}
    share_b: dict[str, float] = {}
    mean_diff: float | None = None
    if filt.kind == "disagree":
        ids = list(dis.problem_ids)
        note = f"{len(ids)} of {dis.n_problems} problems where the strategies disagree"
    elif filt.kind == "all":
        ids = list(dis.all_problem_ids)
        note = f"all {dis.n_problems} problems"
    else:
        ids, share_a, share_b, mean_diff, note = _contrast(
            store, info, llm, verifier, config, filt, progress
        )
    searched_text = True
    query = filt.search.strip().casefold()
    if query:
        probs = store.problems(info)
        texts = dict(zip(probs["problem_id"].astype(str), probs["text"], strict=True))
        searched_text = any(isinstance(t, str) and t for t in texts.values())

        def hit(pid: str) -> bool:
            t = texts.get(pid)
            return query in pid.casefold() or (isinstance(t, str) and query in t.casefold())

        before = len(ids)
        ids = [p for p in ids if hit(p)]
        note += f"; {len(ids)} of those {before} contain “{filt.search.strip()}”"
        if not searched_text:
            note += " in their id (this dataset has no problem texts)"
    return ProblemList(
        disagreement=dis,
        problem_ids=tuple(ids),
        note=note,
        share_a=share_a,
        share_b=share_b,
        mean_difference=mean_diff,
        searched_text=searched_text,
    )


__all__ = [
    "FILTER_KINDS",
    "FILTER_LABELS",
    "DisagreementView",
    "ProblemFilter",
    "ProblemList",
    "ProblemView",
    "disagreement_problems",
    "explorer_problems",
    "explorer_strategies",
    "problem_view",
]
