"""Votes on the ranks of the responses' weights within a subset (plain Python; the budget
engine's `_ranked_kernel` computes the same in compiled code):

- Majority-of-the-Bests (Rakhsha et al. 2025): best-of-N's pick on an m-out-of-N bootstrap
  resample lands on the response of rank r (1 = highest weight) with probability
  ((N - r + 1) / N)^m - ((N - r) / N)^m; the answer is the cluster with the largest total
  chance, i.e. the mode of the bootstrapped best-of picks in the limit of infinitely many
  resamples. The paper picks m adaptively; here m = round(N ** param), param = 1/2 by
  default (an m-out-of-n bootstrap with m / N -> 0).
- Confidence-filtered vote (DeepConf offline, Fu et al. 2025): majority vote among the top
  ceil(eta N) responses by the signal.

Responses with equal weights share the mean mass of their ranks.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from core.types import FloatArray


def rank_mass(kind: str, param: float, r: int, n: int) -> float:
    """The mass of the response of rank r (1 = highest) among n."""
    if kind == "mob":
        m = max(1, round(n**param))
        return float(((n - r + 1) / n) ** m - ((n - r) / n) ** m)
    if kind == "top":
        keep = max(1, math.ceil(param * n - 1e-9))
        return 1.0 if r <= keep else 0.0
    raise ValueError(f"unknown ranked vote {kind!r}")


def ranked_scores(
    weight: npt.ArrayLike, cluster: npt.ArrayLike, kind: str, param: float
) -> dict[int, float]:
    """Each cluster's score under a ranked vote over one subset's responses."""
    w = np.asarray(weight, dtype=np.float64)
    c = np.asarray(cluster, dtype=np.int64)
    n = len(w)
    order = np.argsort(-w, kind="mergesort")
    out: dict[int, float] = {int(a): 0.0 for a in c}
    r0 = 0
    while r0 < n:
        r1 = r0 + 1
        while r1 < n and w[order[r1]] == w[order[r0]]:
            r1 += 1
        block = sum(rank_mass(kind, param, r + 1, n) for r in range(r0, r1)) / (r1 - r0)
        for r in range(r0, r1):
            out[int(c[order[r]])] += block
        r0 = r1
    return out


def ranked_totals(
    weight: FloatArray, cluster: npt.ArrayLike, kind: str, param: float
) -> FloatArray:
    """`ranked_scores` as one total per response (its cluster's score)."""
    scores = ranked_scores(weight, cluster, kind, param)
    return np.asarray([scores[int(a)] for a in np.asarray(cluster)], dtype=np.float64)


__all__ = ["rank_mass", "ranked_scores", "ranked_totals"]
