"""Shared value types of the core package: the packed pair, the vote inputs that connect
methods to evaluation, the typed names of every kind, and the base error.

`PairData` is the packed, array-only view of one (dataset, llm, verifier) pair that the
methods and the evaluation engine work on: responses are grouped by problem in CSR layout,
so problem ``p`` owns rows ``offsets[p]:offsets[p + 1]`` of every per-response array.

`VoteInputs` is what a strategy hands the evaluation engine for every response: a weight,
optionally the calibrated P(correct | score) for Theorem 3.2's per-problem q, and whether
the vote is best-of (single highest weight) instead of cluster sums.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

#: Step reductions of PRM step scores ("stored": the imported score).
Reduction = Literal["stored", "min", "last", "prod", "mean", "max"]
#: Score transforms before weighting ("auto" is resolved on calibration scores).
Transform = Literal["auto", "identity", "sigmoid", "rank", "zscore", "log-zscore"]
#: Which way a signal points: higher scores mean more likely correct, lower, or "auto"
#: (declared at import, else estimated on calibration problems).
Orientation = Literal["auto", "higher", "lower"]
#: How the offset b of linear / logit WV is chosen on calibration problems.
OffsetObjective = Literal["budget", "mean"]
#: KDE bandwidth rules (a positive number in logit units is also accepted).
BandwidthRule = Literal["scott", "silverman"]
BandwidthMode = Literal["shared", "per_class"]
#: Subset order: random subsets, sampling-order prefixes, or by the dataset's iid flag.
Order = Literal["auto", "random", "sample"]
#: Tie rule of the vote: mean correctness of the tied candidates, or the first in draw order.
TieBreak = Literal["fractional", "first"]
#: The two votes a strategy can cast.
VoteKind = Literal["sum", "best_of", "ranked"]

ORIENTATIONS: tuple[str, ...] = get_args(Orientation)
REDUCTIONS: tuple[str, ...] = get_args(Reduction)
#: The reductions that recompute the score from step scores (all but "stored").
STEP_REDUCTIONS: tuple[str, ...] = REDUCTIONS[1:]
TRANSFORMS: tuple[str, ...] = get_args(Transform)
OFFSET_OBJECTIVES: tuple[str, ...] = get_args(OffsetObjective)
BANDWIDTH_RULES: tuple[str, ...] = get_args(BandwidthRule)
BANDWIDTH_MODES: tuple[str, ...] = get_args(BandwidthMode)
ORDERS: tuple[str, ...] = get_args(Order)
TIE_BREAKS: tuple[str, ...] = get_args(TieBreak)


class TTSLabError(Exception):
    """Base class of every error this package raises on purpose."""


class PairError(TTSLabError, ValueError):
    """A pair cannot be sliced as asked (problem index out of range...)."""


@dataclass(frozen=True)
class PairData:
    """All responses of one (dataset, llm, verifier) pair, packed per problem.

    Attributes:
        problem_ids: problem identifier of each problem, length P.
        offsets: int64, length P + 1; problem p owns rows offsets[p]:offsets[p+1].
        cluster: int64 per response, the answer's equivalence cluster *within its
            problem*, numbered 0..k_p-1 (clusters are dense per problem).
        score: float64 per response, the verifier score after step reduction
            (NaN never occurs: the store rejects it at import).
        correct: bool per response.
        sample_idx: int64 per response, the sample's index within its problem
            (sampling order, needed for non-iid data such as beam search).
        n_tokens: float64 per response (NaN where unknown).
        orientation: the signal's direction as declared at import ("higher", "lower"), or
            "auto" when nothing was declared (strategies then estimate it on calibration
            problems).
        truth: for simulated data, the simulator's own parameters of this pair (class
            densities of the logit score, prior over q, wrong-answer process), from which
            the exact Bayes-optimal vote is computed; None for real data.
        soft: for a calibration pair whose labels were inferred (label-free calibration,
            `core.methods.latent`), each response's posterior probability of being
            correct; `correct` then holds the most probable labels. None: `correct` are
            the true labels.
    """

    dataset_id: str
    llm: str
    verifier: str
    problem_ids: tuple[str, ...]
    offsets: IntArray
    cluster: IntArray
    score: FloatArray
    correct: BoolArray
    sample_idx: IntArray
    n_tokens: FloatArray
    orientation: str = "auto"
    truth: Mapping[str, Any] | None = field(default=None, repr=False, compare=False)
    soft: FloatArray | None = field(default=None, repr=False, compare=False)

    @property
    def n_problems(self) -> int:
        return len(self.problem_ids)

    @property
    def n_responses(self) -> int:
        return int(self.offsets[-1])

    def sizes(self) -> IntArray:
        """Number of responses of each problem."""
        return np.diff(self.offsets)

    def n_correct(self) -> IntArray:
        """Number of correct responses of each problem."""
        if self.n_problems == 0:
            return np.zeros(0, dtype=np.int64)
        counts = np.add.reduceat(self.correct.astype(np.int64), self.offsets[:-1])
        return np.asarray(np.where(self.sizes() > 0, counts, 0), dtype=np.int64)

    def share_correct(self) -> FloatArray:
        """Each problem's share of correct responses (what any vote scores at N = 1)."""
        return np.asarray(self.n_correct() / np.maximum(self.sizes(), 1), dtype=np.float64)

    def problem_index(self) -> IntArray:
        """Problem index of every response."""
        return np.repeat(np.arange(self.n_problems, dtype=np.int64), self.sizes())

    def rows(self, problems: npt.ArrayLike) -> IntArray:
        """Row indices (into the per-response arrays) of the given problems, in that order."""
        idx = np.asarray(problems, dtype=np.int64).reshape(-1)
        starts = self.offsets[idx]
        sizes = self.offsets[idx + 1] - starts
        total = int(sizes.sum())
        if total == 0:
            return np.zeros(0, dtype=np.int64)
        seg_start = np.repeat(np.cumsum(sizes) - sizes, sizes)
        rows = np.repeat(starts, sizes) + (np.arange(total, dtype=np.int64) - seg_start)
        return np.asarray(rows, dtype=np.int64)

    def select(self, problems: npt.ArrayLike) -> PairData:
        """The pair restricted to (and reordered as) the given problem indices.

        Repeated indices repeat the problem (used by the bootstrap).
        """
        idx = np.asarray(problems, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self.n_problems):
            raise PairError("problem index out of range")
        sizes = self.sizes()[idx]
        offsets = np.zeros(idx.size + 1, dtype=np.int64)
        np.cumsum(sizes, out=offsets[1:])
        rows = self.rows(idx)
        return PairData(
            dataset_id=self.dataset_id,
            llm=self.llm,
            verifier=self.verifier,
            problem_ids=tuple(self.problem_ids[int(i)] for i in idx),
            offsets=offsets,
            cluster=self.cluster[rows],
            score=self.score[rows],
            correct=self.correct[rows],
            sample_idx=self.sample_idx[rows],
            n_tokens=self.n_tokens[rows],
            orientation=self.orientation,
            truth=self.truth,
            soft=None if self.soft is None else self.soft[rows],
        )


@dataclass(frozen=True, eq=False)
class VoteInputs:
    """What one strategy feeds the vote, per response (aligned with PairData rows).

    Attributes:
        weight: additive weight w_i; a cluster's total is the sum of w_i over its responses
            in the subset (best-of: the single highest weight wins).
        g: optional calibrated P(correct | s) in [0, 1]. If given, each cluster total also
            gets ``n_a * log(q (m - 1) / (1 - q))`` with ``q`` the clipped mean of g over the
            subset and m the number of distinct clusters in the subset; if m == 1 that single
            cluster is chosen (Theorem 3.2 of Kuang et al.).
        best_of: choose the cluster of the single highest ``weight`` in the subset instead
            of cluster sums (``g`` must then be None).
        size_tables: optional (T, K + 1, K + 1) tables of a term ``h[t, n_a, N]`` added to the
            total of a cluster with n_a of the subset's N responses (the posterior vote's
            prior over q and wrong-answer process); K covers the largest problem.
        size_index: with `size_tables`, which table each response's problem uses (int per
            response, the same within a problem).
        none_tables: with `size_tables` (same shape and index), the posterior vote's
            ``z[t, m, N]``: an answer's log posterior odds against "no answer of the
            subset is correct" are ``S_a + h[t, n_a, N] - z[t, m, N]`` with m distinct
            answers among N responses (used by the calibrated posterior stop; the vote
            itself never needs it).
        ranked: a vote on the ranks of `weight` within the subset instead of its sum:
            "mob" (Majority-of-the-Bests: each cluster's chance to hold the best of an
            m-out-of-N bootstrap resample, m = round(N ** ranked_param), in the limit of
            infinitely many resamples) or "top" (majority among the top ceil(ranked_param
            x N) responses by weight); "" for the other votes. See
            `core.methods.ranked.ranked_scores`.
        ml_q: Theorem 3.2's q-term with q the subset's maximum-likelihood P(correct) (EM on
            the weights as log likelihood ratios) instead of the mean of `g`.
    """

    weight: FloatArray
    g: FloatArray | None = None
    best_of: bool = False
    size_tables: FloatArray | None = None
    size_index: IntArray | None = None
    ml_q: bool = False
    none_tables: FloatArray | None = None
    ranked: str = ""
    ranked_param: float = 0.0


__all__ = [
    "BANDWIDTH_MODES",
    "BANDWIDTH_RULES",
    "OFFSET_OBJECTIVES",
    "ORDERS",
    "ORIENTATIONS",
    "REDUCTIONS",
    "STEP_REDUCTIONS",
    "TIE_BREAKS",
    "TRANSFORMS",
    "BandwidthMode",
    "BandwidthRule",
    "BoolArray",
    "FloatArray",
    "IntArray",
    "OffsetObjective",
    "Order",
    "Orientation",
    "PairData",
    "PairError",
    "Reduction",
    "TTSLabError",
    "TieBreak",
    "Transform",
    "VoteInputs",
    "VoteKind",
]
