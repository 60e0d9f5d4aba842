"""Use exported weights in production: one problem's answers and scores in, one answer out.

    from core.apply import choose_answer
    decision = choose_answer(["12", "12", "7"], [0.91, 0.35, 0.88], "weights.json")
    decision.answer       # "12" or "7", by the fitted weighting function
    decision.breakdown    # per answer: count, score-weight sum, q/m term, total

The weights file is what `ttslab export-weights` writes (versioned JSON of a fitted
weighting function). Answers are grouped by exact string unless a `key` function is given
(for example `core.grading.normalize_answer`, or the grader's cluster keys).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core.evaluation.engine import Q_EPS
from core.methods import FittedWeights, get_strategy
from core.methods.ranked import ranked_scores
from core.types import PairData, TTSLabError


class ApplyError(TTSLabError):
    """The inputs cannot be aggregated (lengths differ, no answers, non-finite scores)."""


@dataclass(frozen=True)
class Decision:
    answer: str
    total: float
    tied: tuple[str, ...]
    q: float | None
    m: int
    breakdown: pd.DataFrame  # one row per answer cluster, best first
    kind: str

    def __str__(self) -> str:
        tie = f" (tied with {', '.join(self.tied)}; first seen wins)" if self.tied else ""
        return f"{self.kind}: {self.answer!r} with total {self.total:.3f}{tie}"


def load_weights(weights: FittedWeights | str | Path) -> FittedWeights:
    if isinstance(weights, FittedWeights):
        return weights
    path = Path(weights)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ApplyError(f"cannot read weights file {path}: {exc}") from exc
    return FittedWeights.from_json(text)


def choose_answer(
    answers: Sequence[str],
    scores: Sequence[float],
    weights: FittedWeights | str | Path,
    *,
    key: Callable[[str], str] | None = None,
) -> Decision:
    """Aggregate one problem's responses with a fitted weighting function.

    The rule is the strategy's vote on the full set: the answer with the largest total
    weight wins, where a response's weight is the fitted w(score) and, for KDE WV (and
    Platt/isotonic with use_qm), every response also adds log(q(m-1)/(1-q)) with q the
    mean calibrated P(correct|score) and m the number of distinct answers. Best-of-N picks
    the highest score. Ties go to the answer seen first (best-of-N: the answer of the
    first response with the top score).
    """
    if len(answers) != len(scores):
        raise ApplyError(f"{len(answers)} answers but {len(scores)} scores")
    if not answers:
        raise ApplyError("no answers to choose from")
    s = np.asarray(scores, dtype=np.float64)
    if not np.all(np.isfinite(s)):
        raise ApplyError("scores must be finite")
    fitted = load_weights(weights)
    strategy = get_strategy(fitted.kind)
    keys = [key(a) if key is not None else a for a in answers]
    first: dict[str, int] = {}
    cluster = np.asarray([first.setdefault(k, len(first)) for k in keys], dtype=np.int64)
    n = len(answers)
    pair = PairData(
        dataset_id="production",
        llm="",
        verifier="",
        problem_ids=("p",),
        offsets=np.asarray([0, n], dtype=np.int64),
        cluster=cluster,
        score=s,
        correct=np.zeros(n, dtype=bool),
        sample_idx=np.arange(n, dtype=np.int64),
        n_tokens=np.full(n, np.nan),
    )
    vi = strategy.vote_inputs(fitted, pair)
    w = np.asarray(vi.weight, dtype=np.float64)
    k = len(first)
    # each cluster is shown by the first raw answer that fell into it
    shown: list[str | None] = [None] * k
    for a, c_id in zip(answers, cluster, strict=True):
        if shown[c_id] is None:
            shown[c_id] = a
    labels = [str(x) for x in shown]
    counts = np.bincount(cluster, minlength=k)
    wsum = np.bincount(cluster, weights=w, minlength=k)
    q: float | None = None
    c = 0.0
    if vi.ranked:
        sc = ranked_scores(w, cluster, vi.ranked, vi.ranked_param)
        totals = np.asarray([sc.get(i, 0.0) for i in range(k)], dtype=np.float64)
        term = np.zeros(k)
    elif vi.best_of:
        totals = np.full(k, -np.inf)
        np.maximum.at(totals, cluster, w)
        term = np.zeros(k)
    elif vi.g is not None and k > 1:
        q = float(np.clip(np.mean(vi.g), Q_EPS, 1 - Q_EPS))
        c = math.log(q * (k - 1) / (1 - q))
        term = np.asarray(counts * c, dtype=np.float64)
        totals = np.asarray(wsum + term, dtype=np.float64)
    else:
        if vi.g is not None:
            q = float(np.clip(np.mean(vi.g), Q_EPS, 1 - Q_EPS))
        term = np.zeros(k)
        totals = np.asarray(wsum, dtype=np.float64)
    best = float(np.max(totals))
    if vi.best_of:
        # the engine's rule: the earliest response with the top score decides
        winner = int(cluster[int(np.flatnonzero(w == best)[0])])
        tied = [winner] + [i for i in range(k) if totals[i] == best and i != winner]
    else:
        scale = float(n) if vi.ranked else float(np.sum(np.abs(w))) + n * abs(c)
        tied = [i for i in range(k) if totals[i] >= best - 1e-12 * max(scale, 1.0)]
        winner = tied[0]
    order = np.argsort(-totals, kind="stable")
    breakdown = pd.DataFrame(
        {
            "answer": [labels[i] for i in order],
            "count": counts[order],
            "weight sum": wsum[order],
            "q/m term": term[order],
            "total": totals[order],
            "chosen": [i == winner for i in order],
        }
    )
    return Decision(
        answer=labels[winner],
        total=float(totals[winner]),
        tied=tuple(labels[i] for i in tied[1:]),
        q=q,
        m=k,
        breakdown=breakdown,
        kind=fitted.kind,
    )
