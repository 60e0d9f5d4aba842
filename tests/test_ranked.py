"""Ranked votes (Majority-of-the-Bests, top-share vote): the compiled kernel against the
plain-Python definition on the same subsets, and hand-worked masses."""

from __future__ import annotations

import numpy as np
import pytest

from core.evaluation.engine import make_subsets, subset_credits
from core.methods.ranked import rank_mass, ranked_scores
from core.types import PairData, VoteInputs


def test_mob_masses_are_the_bootstrap_best_of_distribution() -> None:
    # N = 4, m = round(sqrt 4) = 2: the best of 2 draws with replacement is rank r with
    # probability ((5 - r)/4)^2 - ((4 - r)/4)^2
    masses = [rank_mass("mob", 0.5, r, 4) for r in (1, 2, 3, 4)]
    assert masses == pytest.approx([7 / 16, 5 / 16, 3 / 16, 1 / 16])
    assert sum(rank_mass("mob", 0.5, r, 9) for r in range(1, 10)) == pytest.approx(1.0)
    # top share: ceil(0.5 * 5) = 3 responses kept
    assert [rank_mass("top", 0.5, r, 5) for r in range(1, 6)] == [1, 1, 1, 0, 0]


def test_mob_can_overrule_the_single_best() -> None:
    # the top response is alone in its cluster; ranks 2 and 3 share another: 5/16 + 3/16 > 7/16
    scores = ranked_scores([0.9, 0.8, 0.7, 0.1], [0, 1, 1, 2], "mob", 0.5)
    assert scores[1] == pytest.approx(0.5) and scores[0] == pytest.approx(7 / 16)
    # tied weights share their ranks' mean mass
    tied = ranked_scores([0.5, 0.5, 0.1], [0, 1, 1], "top", 0.5)  # keep 2 of 3
    assert tied == pytest.approx({0: 1.0, 1: 1.0})


def random_pair(seed: int, n_problems: int = 25) -> PairData:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 12, size=n_problems)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    n = int(offsets[-1])
    cluster = np.concatenate([rng.integers(0, 3, size=s) for s in sizes])
    # dense cluster ids per problem
    for p in range(n_problems):
        lo, hi = offsets[p], offsets[p + 1]
        _, cluster[lo:hi] = np.unique(cluster[lo:hi], return_inverse=True)
    right = rng.integers(0, 3, size=n_problems)
    correct = cluster == np.repeat(right, sizes)
    score = np.round(rng.random(n), 1)  # coarse: many ties
    return PairData(
        "d",
        "m",
        "v",
        tuple(f"p{i}" for i in range(n_problems)),
        offsets,
        cluster.astype(np.int64),
        score,
        correct,
        np.concatenate([np.arange(s) for s in sizes]).astype(np.int64),
        np.full(n, np.nan),
    )


@pytest.mark.parametrize("kind,param", [("mob", 0.5), ("top", 0.5), ("top", 0.1), ("mob", 1.0)])
def test_kernel_equals_the_plain_definition_on_every_subset(kind: str, param: float) -> None:
    pair = random_pair(7)
    budgets = (1, 2, 3, 5, 8, 12)
    subsets = make_subsets(pair, budgets, n_subsets=15, seed=2)
    vi = VoteInputs(weight=pair.score.copy(), ranked=kind, ranked_param=param)
    got = subset_credits(pair, {"r": vi}, subsets)[0]  # (B, P, T)
    for p in range(pair.n_problems):
        lo = int(pair.offsets[p])
        perms = subsets.permutations(p)
        for t in range(subsets.n_subsets):
            for b, n in enumerate(budgets):
                rows = lo + perms[t, : min(n, len(perms[t]))]
                sc = ranked_scores(pair.score[rows], pair.cluster[rows], kind, param)
                best = max(sc.values())
                tied = [a for a, v in sc.items() if v >= best - 1e-12 * len(rows)]
                frac = [pair.correct[rows][pair.cluster[rows] == a].mean() for a in tied]
                assert got[b, p, t] == pytest.approx(np.mean(frac), abs=1e-12)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_mob_equals_brute_force_over_every_bootstrap_resample(n: int) -> None:
    """Enumerate all n^m ordered resamples with replacement (m = round(sqrt n)), take each
    one's best response, and count the picks per cluster: the shares are the MoB scores."""
    import itertools

    rng = np.random.default_rng(n)
    weight = rng.permutation(n).astype(float)  # distinct: one best per resample
    cluster = rng.integers(0, 3, size=n)
    m = max(1, round(n**0.5))
    picks: dict[int, int] = {}
    for resample in itertools.product(range(n), repeat=m):
        best = max(resample, key=lambda i: weight[i])
        picks[int(cluster[best])] = picks.get(int(cluster[best]), 0) + 1
    scores = ranked_scores(weight, cluster, "mob", 0.5)
    for a, v in scores.items():
        assert v == pytest.approx(picks.get(a, 0) / n**m, abs=1e-12)
