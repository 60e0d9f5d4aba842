"""Shared value types of the core package.

`PairData` is the packed, array-only view of one (dataset, llm, verifier) pair that the
analysis engine works on: responses are grouped by problem in CSR layout, so problem ``p``
owns rows ``offsets[p]:offsets[p + 1]`` of every per-response array.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


class TTSLabError(Exception):
    """Base class of every error this package raises on purpose."""


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
        step_scores: optional per-response step-score lists, same order as `score`.
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
    step_scores: tuple[tuple[float, ...], ...] | None = field(default=None, repr=False)

    @property
    def n_problems(self) -> int:
        return len(self.problem_ids)

    @property
    def n_responses(self) -> int:
        return int(self.offsets[-1])

    def sizes(self) -> IntArray:
        """Number of responses of each problem."""
        return np.diff(self.offsets)
