"""Budget engine: compiled prefix kernel vs the plain-Python reference, exact estimators vs
brute-force enumeration, common random numbers, and hand-checked vote rules."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.evaluation import engine
from core.evaluation.engine import (
    BudgetError,
    Subsets,
    accuracy_curves,
    default_budgets,
    exact_best_of_n,
    make_subsets,
    subset_credits,
)
from core.types import PairData, VoteInputs
from tests import reference

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def make_pair(
    clusters: Sequence[Sequence[int]],
    correct: Sequence[Sequence[bool]],
    score: Sequence[Sequence[float]] | None = None,
) -> PairData:
    sizes = [len(c) for c in clusters]
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    n = int(offsets[-1])
    flat_score = (
        np.concatenate([np.asarray(s, dtype=np.float64) for s in score])
        if score is not None
        else np.linspace(0.1, 0.9, n)
    )
    return PairData(
        dataset_id="t",
        llm="m",
        verifier="v",
        problem_ids=tuple(f"q{i}" for i in range(len(sizes))),
        offsets=offsets,
        cluster=np.concatenate([np.asarray(c, dtype=np.int64) for c in clusters]),
        score=flat_score,
        correct=np.concatenate([np.asarray(c, dtype=np.bool_) for c in correct]),
        sample_idx=np.concatenate([np.arange(s) for s in sizes]).astype(np.int64),
        n_tokens=np.full(n, np.nan),
    )


@st.composite
def problem_sets(draw: st.DrawFn, max_n: int = 8, max_p: int = 4) -> tuple[PairData, bool]:
    """Random pairs: few clusters (dense ids), correctness per cluster (sometimes per
    response, i.e. inconsistent grading)."""
    n_p = draw(st.integers(1, max_p))
    consistent = draw(st.booleans())
    clusters, correct = [], []
    for _ in range(n_p):
        n = draw(st.integers(1, max_n))
        k = draw(st.integers(1, min(n, 4)))
        raw = draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n))
        _, dense = np.unique(raw, return_inverse=True)
        clusters.append(dense.tolist())
        if consistent:
            good = draw(st.integers(-1, int(dense.max())))
            correct.append([c == good for c in dense])
        else:
            correct.append(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    return make_pair(clusters, correct), consistent


# integer-valued weights force exact ties; the tenths exercise the tie tolerance
weight_values = st.sampled_from([-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 0.1, 0.2, 0.3, -0.1])
g_values = st.sampled_from([0.0, 0.05, 0.3, 0.5, 0.7, 0.95, 1.0])


@st.composite
def vote_inputs(draw: st.DrawFn, n: int) -> VoteInputs:
    kind = draw(st.sampled_from(["plain", "g", "best_of"]))
    w = np.array(draw(st.lists(weight_values, min_size=n, max_size=n)), dtype=np.float64)
    if kind == "g":
        g = np.array(draw(st.lists(g_values, min_size=n, max_size=n)), dtype=np.float64)
        return VoteInputs(weight=w, g=g)
    return VoteInputs(weight=w, best_of=kind == "best_of")


def exact_at_one(ref_mean: np.ndarray, pair: PairData, subsets: Subsets) -> np.ndarray:
    """The reference's sampled means with N = 1 (random order) replaced by its exact value,
    each problem's share of correct responses, counted by hand: whatever the vote, one
    response is drawn and picked."""
    out = np.array(ref_mean, dtype=np.float64, copy=True)
    if subsets.order == "random" and 1 in subsets.budgets:
        share = []
        for p in range(pair.n_problems):
            rows = range(int(pair.offsets[p]), int(pair.offsets[p + 1]))
            share.append(sum(bool(pair.correct[r]) for r in rows) / len(rows))
        out[:, subsets.budgets.index(1), :] = np.asarray(share)[: out.shape[2]]
    return out


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_engine_equals_reference_on_every_subset(data: st.DataObject) -> None:
    pair, _ = data.draw(problem_sets())
    n = pair.n_responses
    n_strats = data.draw(st.integers(1, 3))
    inputs = {f"s{i}": data.draw(vote_inputs(n)) for i in range(n_strats)}
    budgets = data.draw(st.lists(st.integers(1, 10), min_size=1, max_size=4, unique=True))
    subsets = make_subsets(pair, budgets, n_subsets=data.draw(st.integers(1, 6)), seed=7)
    fast = subset_credits(pair, inputs, subsets, keep_subsets=True)
    ref = np.array(reference.budget_curves(pair, inputs, subsets, keep_subsets=True))
    assert fast.shape == ref.shape
    np.testing.assert_allclose(fast, ref, rtol=0, atol=1e-12)
    # and the averaged curves, with best-of sampled too; N = 1 is exact: the problem's share
    # of correct responses, whatever the vote (every vote picks the one response drawn)
    curves = accuracy_curves(pair, inputs, subsets=subsets, exact_best_of=False)
    ref_mean = np.array(reference.budget_curves(pair, inputs, subsets))
    np.testing.assert_allclose(
        curves.per_problem, exact_at_one(ref_mean, pair, subsets), rtol=0, atol=1e-12
    )
    assert curves.exact == (False,) * n_strats


@SETTINGS
@given(data=st.data())
def test_problem_selection_uses_the_same_subsets(data: st.DataObject) -> None:
    pair, _ = data.draw(problem_sets(max_p=5))
    inputs = {"a": data.draw(vote_inputs(pair.n_responses))}
    chosen = data.draw(
        st.lists(st.integers(0, pair.n_problems - 1), min_size=1, max_size=3, unique=True)
    )
    kw = {"budgets": [1, 2, 3, 8], "n_subsets": 5, "seed": 3, "exact_best_of": False}
    full = accuracy_curves(pair, inputs, **kw)  # type: ignore[arg-type]
    fold = accuracy_curves(pair, inputs, problems=np.array(chosen), **kw)  # type: ignore[arg-type]
    np.testing.assert_array_equal(fold.per_problem, full.per_problem[:, :, chosen])
    assert fold.problem_ids == tuple(pair.problem_ids[i] for i in chosen)
    sub = make_subsets(pair, [1, 2, 3, 8], 5, 3)
    ref = np.array(reference.budget_curves(pair, inputs, sub, chosen))
    share = np.array([np.mean(pair.correct[pair.offsets[p] : pair.offsets[p + 1]]) for p in chosen])
    ref[:, 0, :] = share  # N = 1 is exact
    np.testing.assert_allclose(fold.per_problem, ref, atol=1e-12)


@SETTINGS
@given(
    scores=st.lists(st.integers(0, 3), min_size=1, max_size=8),
    data=st.data(),
)
def test_exact_best_of_n_and_pass_at_n_equal_brute_force(
    scores: list[int], data: st.DataObject
) -> None:
    n = len(scores)
    correct = data.draw(st.lists(st.booleans(), min_size=n, max_size=n))
    pair = make_pair([list(range(n))], [correct], [[float(s) for s in scores]])
    budgets = list(range(1, n + 2))  # n + 1 is clipped to n
    bon = exact_best_of_n(pair, pair.score, budgets)
    cov = exact_best_of_n(pair, pair.correct.astype(np.float64), budgets)
    assert bon.shape == cov.shape == (len(budgets), 1)
    for j, b in enumerate(budgets):
        want_bon = reference.brute_force_best_of_n([float(s) for s in scores], correct, b)
        want_cov = reference.brute_force_pass_at_n(correct, b)
        assert bon[j, 0] == pytest.approx(want_bon, abs=1e-10)
        assert cov[j, 0] == pytest.approx(want_cov, abs=1e-10)


def test_exact_best_of_n_large_n_against_integer_binomials() -> None:
    """n = 256 with many ties: the log-factorial formula against exact integer binomials
    (math.comb), and the exact value against the sampled prefix kernel."""
    rng = np.random.default_rng(4)
    n = 256
    scores = rng.integers(0, 40, size=n).astype(np.float64)
    correct = rng.uniform(size=n) < 0.4
    pair = make_pair([list(range(n))], [correct.tolist()], [scores.tolist()])
    budgets = [1, 2, 7, 32, 100, 255, 256]
    got = exact_best_of_n(pair, pair.score, budgets)[:, 0]
    values = sorted(set(scores.tolist()), reverse=True)
    for j, k in enumerate(budgets):
        total, above = 0.0, 0
        for v in values:
            members = scores == v
            g, c = int(members.sum()), int(correct[members].sum())
            p_top = (math.comb(n - above, k) - math.comb(n - above - g, k)) / math.comb(n, k)
            total += p_top * c / g
            above += g
        assert got[j] == pytest.approx(total, abs=1e-10)
    sampled = accuracy_curves(
        pair,
        {"b": VoteInputs(pair.score, best_of=True)},
        budgets=budgets,
        n_subsets=4000,
        exact_best_of=False,
    ).per_problem[0, :, 0]
    np.testing.assert_allclose(sampled, got, atol=0.03)


def test_exact_best_of_hand_example() -> None:
    # scores 3, 3, 1 with correctness T, F, T; N = 2: the subsets {0,1}, {0,2}, {1,2}
    # earn 1/2, 1, 0 -> expectation 1/2; N = 1: mean correctness 2/3.
    pair = make_pair([[0, 1, 2]], [[True, False, True]], [[3.0, 3.0, 1.0]])
    got = exact_best_of_n(pair, pair.score, [1, 2, 3])[:, 0]
    np.testing.assert_allclose(got, [2 / 3, 1 / 2, 1 / 2], atol=1e-12)
    np.testing.assert_allclose(
        exact_best_of_n(pair, pair.correct.astype(np.float64), [1, 2, 3])[:, 0],
        [2 / 3, 1, 1],
        atol=1e-12,
    )


def test_accuracy_curves_uses_exact_best_of_by_default() -> None:
    pair = make_pair([[0, 1, 0, 2, 1]], [[True, False, True, False, False]])
    inputs = {
        "bon": VoteInputs(weight=np.array([0.9, 0.9, 0.2, 0.5, 0.1]), best_of=True),
        "mv": VoteInputs(weight=np.ones(5)),
    }
    curves = accuracy_curves(pair, inputs, budgets=[1, 2, 3, 5], n_subsets=4)
    assert curves.exact == (True, False)
    for j, b in enumerate(curves.budgets):
        want = reference.brute_force_expectation(
            [0, 1, 2, 3, 4],
            [0.9, 0.9, 0.2, 0.5, 0.1],
            [True, False, True, False, False],
            b,
            best_of=True,
        )
        assert curves.per_problem[0, j, 0] == pytest.approx(want, abs=1e-12)


def test_sampled_engine_converges_to_exact_expectation() -> None:
    """Uniformity of the drawn subsets: with many subsets the sampled weighted vote is
    within a few standard errors of the brute-force expectation over all subsets."""
    clusters = [0, 1, 1, 2, 0, 1, 3]
    correct = [c == 1 for c in clusters]
    weights = [0.9, 0.2, 0.4, 0.8, 0.3, 0.35, 0.6]
    pair = make_pair([clusters], [correct])
    t = 20000
    inputs = {"wv": VoteInputs(weight=np.array(weights))}
    credits = subset_credits(pair, inputs, make_subsets(pair, [2, 3, 4], t, seed=11))
    for j, b in enumerate((2, 3, 4)):
        want = reference.brute_force_expectation(clusters, weights, correct, b)
        got = credits[0, j, 0]
        se = max(float(got.std()) / math.sqrt(t), 1e-3)
        assert abs(float(got.mean()) - want) < 4.5 * se


def test_permutations_are_uniform_and_valid() -> None:
    subsets = make_subsets([5, 1, 9], [1, 5], n_subsets=5000, seed=2)
    perms = subsets.permutations(0)
    assert perms.shape == (5000, 5)
    assert np.array_equal(np.sort(perms, axis=1), np.tile(np.arange(5), (5000, 1)))
    counts = np.bincount(perms[:, 0], minlength=5)
    chi2 = float(((counts - 1000.0) ** 2 / 1000.0).sum())
    assert chi2 < 25.0  # df = 4; P(chi2 > 25) ~ 5e-5
    # ordered pairs in positions (0, 1): 20 possibilities
    pair_counts = Counter(map(tuple, perms[:, :2].tolist()))
    assert len(pair_counts) == 20
    assert subsets.permutations(1).tolist() == [[0]] * 5000


def test_subsets_are_nested_prefixes_and_reproducible() -> None:
    a = make_subsets([7, 4], [1, 2, 4, 8], n_subsets=6, seed=5)
    b = make_subsets([7, 4], [3], n_subsets=6, seed=5)
    c = make_subsets([7, 4], [3], n_subsets=6, seed=6)
    assert a.n_clipped == (0, 0, 0, 2)
    for p in range(2):
        full = a.permutations(p)
        np.testing.assert_array_equal(full, b.permutations(p))
        for t in range(6):
            for n in (1, 2, 3, 4, 8):
                np.testing.assert_array_equal(a.subset(p, t, n), full[t, : min(n, a.sizes[p])])
    assert not np.array_equal(a.permutations(0), c.permutations(0))


def test_budget_set_does_not_change_shared_budgets() -> None:
    pair = make_pair([[0, 1, 1, 0, 2, 1]], [[False, True, True, False, False, True]])
    inputs = {"w": VoteInputs(weight=np.array([0.5, 0.2, 0.3, 0.4, 0.9, 0.1]))}
    small = accuracy_curves(pair, inputs, budgets=[2], n_subsets=50, seed=4)
    big = accuracy_curves(pair, inputs, budgets=[1, 2, 4, 6], n_subsets=50, seed=4)
    assert small.per_problem[0, 0, 0] == big.per_problem[0, 1, 0]


def test_common_random_numbers_identical_strategies() -> None:
    rng = np.random.default_rng(0)
    clusters = [rng.integers(0, 3, size=12).tolist() for _ in range(6)]
    clusters = [np.unique(c, return_inverse=True)[1].tolist() for c in clusters]
    correct = [[x == 0 for x in c] for c in clusters]
    pair = make_pair(clusters, correct)
    w = rng.normal(size=pair.n_responses)
    g = rng.uniform(0.1, 0.9, size=pair.n_responses)
    inputs = {
        "a": VoteInputs(weight=w, g=g),
        "mv": VoteInputs(weight=np.ones_like(w)),
        "b": VoteInputs(weight=w.copy(), g=g.copy()),
    }
    curves = accuracy_curves(pair, inputs, n_subsets=30, seed=9)
    np.testing.assert_array_equal(curves.per_problem[0], curves.per_problem[2])
    alone = accuracy_curves(pair, {"b": inputs["b"]}, n_subsets=30, seed=9)
    np.testing.assert_array_equal(alone.per_problem[0], curves.per_problem[2])
    assert curves.budgets == default_budgets(12) == (1, 2, 4, 8, 12)


def plain_majority(clusters: list[int], correct: list[bool]) -> float:
    counts = Counter(clusters)
    top = max(counts.values())
    winners = [a for a, c in counts.items() if c == top]
    credit = 0.0
    for a in winners:
        members = [correct[i] for i in range(len(clusters)) if clusters[i] == a]
        credit += sum(members) / len(members)
    return credit / len(winners)


@SETTINGS
@given(data=st.data(), const=st.sampled_from([1.0, 0.37, 2.5]))
def test_constant_weights_are_majority_vote(data: st.DataObject, const: float) -> None:
    pair, _ = data.draw(problem_sets())
    subsets = make_subsets(pair, [1, 2, 3, 5, 8], n_subsets=4, seed=1)
    credits = subset_credits(
        pair, {"c": VoteInputs(weight=np.full(pair.n_responses, const))}, subsets
    )
    for p in range(pair.n_problems):
        lo = int(pair.offsets[p])
        for j, b in enumerate(subsets.budgets):
            for t in range(subsets.n_subsets):
                rows = [lo + int(i) for i in subsets.subset(p, t, b)]
                want = plain_majority(
                    [int(pair.cluster[r]) for r in rows], [bool(pair.correct[r]) for r in rows]
                )
                assert credits[0, j, p, t] == pytest.approx(want, abs=1e-12)


@SETTINGS
@given(data=st.data())
def test_full_budget_is_the_full_set_vote(data: st.DataObject) -> None:
    pair, _ = data.draw(problem_sets())
    vi = data.draw(vote_inputs(pair.n_responses))
    # integer weights: the full-set totals do not depend on summation order
    vi = VoteInputs(weight=np.round(vi.weight), g=vi.g, best_of=vi.best_of)
    n_max = int(pair.sizes().max())
    curves = accuracy_curves(
        pair, {"s": vi}, budgets=[n_max, n_max + 3], n_subsets=3, seed=0, exact_best_of=False
    )
    assert curves.n_clipped[1] == pair.n_problems
    for p in range(pair.n_problems):
        lo, hi = int(pair.offsets[p]), int(pair.offsets[p + 1])
        want = reference.vote(
            pair.cluster[lo:hi].tolist(),
            vi.weight[lo:hi].tolist(),
            pair.correct[lo:hi].tolist(),
            None if vi.g is None else vi.g[lo:hi].tolist(),
            vi.best_of,
        )
        assert curves.per_problem[0, 0, p] == pytest.approx(want, abs=1e-12)
        assert curves.per_problem[0, 1, p] == pytest.approx(want, abs=1e-12)


def full_set_credit(
    clusters: list[int],
    weights: list[float],
    correct: list[bool],
    g: list[float] | None = None,
) -> float:
    pair = make_pair([clusters], [correct])
    vi = VoteInputs(np.array(weights), None if g is None else np.array(g))
    n = len(clusters)
    return float(accuracy_curves(pair, {"s": vi}, budgets=[n], n_subsets=2).per_problem[0, 0, 0])


def test_q_term_by_hand() -> None:
    # cluster 0: two responses of weight -1 (S0 = -2); cluster 1: one of weight 0.5.
    # q = 0.9, m = 2: c = log 9 = 2.197 -> v0 = -2 + 2c = 2.394 < v1 = 0.5 + c = 2.697
    assert full_set_credit([0, 0, 1], [-1, -1, 0.5], [True, True, False], [0.9] * 3) == 0.0
    # q = 0.99: c = log 99 = 4.595 -> v0 = 7.19 > v1 = 5.095
    assert full_set_credit([0, 0, 1], [-1, -1, 0.5], [True, True, False], [0.99] * 3) == 1.0
    # without g, S1 = 0.5 > S0 = -2
    assert full_set_credit([0, 0, 1], [-1, -1, 0.5], [True, True, False]) == 0.0
    # q = mean(0.2, 0.2, 0.2, 0.6) = 0.3, m = 3: c = log(0.6 / 0.7) = -0.154;
    # v0 = 0.9 + 2c = 0.592 < v1 = 0.8 + c = 0.646 (> v2 = 0.75 + c = 0.596), while
    # without the q-term S0 = 0.9 > S1 = 0.8
    g = [0.2, 0.2, 0.2, 0.6]
    args = ([0, 0, 1, 2], [0.45, 0.45, 0.8, 0.75], [True, True, False, False])
    assert full_set_credit(*args, g) == 0.0
    assert full_set_credit(*args) == 1.0
    # m = 1: the only cluster wins even with very negative weights and tiny q
    assert full_set_credit([0, 0], [-5, -5], [True, True], [0.0, 0.0]) == 1.0
    # g = 0 everywhere is clipped to Q_EPS: c = log(1e-6 / (1 - 1e-6)) < 0 favours the
    # smaller cluster 1 (v0 = 2 + 2c, v1 = 1.5 + c)
    assert full_set_credit([0, 0, 1], [1, 1, 1.5], [True, True, False], [0.0] * 3) == 0.0
    assert full_set_credit([0, 0, 1], [1, 1, 1.5], [True, True, False]) == 1.0


def test_tie_rules_by_hand() -> None:
    # 0.1 + 0.2 != 0.3 in floating point, but within the tie tolerance: half credit
    assert 0.1 + 0.2 != 0.3
    assert full_set_credit([0, 0, 1], [0.1, 0.2, 0.3], [True, True, False]) == 0.5
    # a real difference of 1e-6 is not a tie
    assert full_set_credit([0, 0, 1], [0.1, 0.2, 0.300001], [True, True, False]) == 0.0
    # three-way exact tie with one correct cluster: 1/3
    assert full_set_credit([0, 1, 2], [1, 1, 1], [False, True, False]) == pytest.approx(1 / 3)
    # inconsistent grading inside a cluster: the cluster counts as its correct fraction
    assert full_set_credit([0, 0, 0, 1], [1, 1, 1, 2], [True, False, True, False]) == 2 / 3
    # best-of ties: fraction of the tied top responses that are correct
    pair = make_pair([[0, 1, 2, 3]], [[True, False, False, True]])
    vi = VoteInputs(np.array([2.0, 2.0, 2.0, 1.0]), best_of=True)
    got = accuracy_curves(pair, {"b": vi}, budgets=[4], exact_best_of=False)
    assert got.per_problem[0, 0, 0] == pytest.approx(1 / 3)
    assert engine.TIE_RTOL == reference.TIE_RTOL and engine.Q_EPS == reference.Q_EPS


def test_default_budgets() -> None:
    assert default_budgets(1) == (1,)
    assert default_budgets(8) == (1, 2, 4, 8)
    assert default_budgets(10) == (1, 2, 4, 8, 10)
    assert default_budgets(256) == (1, 2, 4, 8, 16, 32, 64, 128, 256)
    with pytest.raises(BudgetError):
        default_budgets(0)


def test_curve_set_helpers() -> None:
    pair = make_pair([[0, 1, 0], [0, 0]], [[True, False, True], [False, False]])
    curves = accuracy_curves(pair, {"mv": VoteInputs(np.ones(5))}, budgets=[1, 3], n_subsets=8)
    assert curves.mean().shape == (1, 2)
    np.testing.assert_allclose(curves.curve("mv"), curves.per_problem[0].mean(axis=1))
    # full set: problem 0 majority is cluster 0 (correct), problem 1 has no correct answer
    np.testing.assert_allclose(curves.per_problem[0, 1], [1.0, 0.0])
    more = curves.with_strategy(
        "pass", exact_best_of_n(pair, pair.correct.astype(np.float64), curves.budgets)
    )
    assert more.strategies == ("mv", "pass") and more.exact == (False, True)
    np.testing.assert_allclose(more.per_problem[1, :, 0], [2 / 3, 1.0])
    with pytest.raises(BudgetError, match="unknown strategy"):
        curves.curve("nope")


def test_input_validation() -> None:
    pair = make_pair([[0, 1]], [[True, False]])
    with pytest.raises(BudgetError, match="shape"):
        accuracy_curves(pair, {"a": VoteInputs(np.ones(3))})
    with pytest.raises(BudgetError, match="best_of"):
        accuracy_curves(pair, {"a": VoteInputs(np.ones(2), g=np.ones(2) / 2, best_of=True)})
    with pytest.raises(BudgetError, match=r"\[0, 1\]"):
        accuracy_curves(pair, {"a": VoteInputs(np.ones(2), g=np.array([0.5, 1.5]))})
    with pytest.raises(BudgetError, match="finite"):
        accuracy_curves(pair, {"a": VoteInputs(np.array([1.0, np.inf]))})
    with pytest.raises(BudgetError, match=">= 1"):
        accuracy_curves(pair, {"a": VoteInputs(np.ones(2))}, budgets=[0, 2])
    other = make_subsets([3], [1, 2])
    with pytest.raises(BudgetError, match="sizes"):
        accuracy_curves(pair, {"a": VoteInputs(np.ones(2))}, subsets=other)
    with pytest.raises(BudgetError, match="differ"):
        accuracy_curves(
            pair, {"a": VoteInputs(np.ones(2))}, budgets=[1], subsets=make_subsets(pair, [1, 2])
        )


# --------------------------------------------------------------------------------------
# subset order ("random" / "sample") and tie-breaking ("fractional" / "first")
# --------------------------------------------------------------------------------------

orders = st.sampled_from(["random", "sample"])
tie_breaks = st.sampled_from(["fractional", "first"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), order=orders, tie_break=tie_breaks, integer=st.booleans())
def test_engine_equals_reference_for_order_and_tie_break(
    data: st.DataObject, order: str, tie_break: str, integer: bool
) -> None:
    pair, _ = data.draw(problem_sets())
    n = pair.n_responses
    n_strats = data.draw(st.integers(1, 3))
    inputs = {f"s{i}": data.draw(vote_inputs(n)) for i in range(n_strats)}
    if integer:  # integer weights force exact ties between clusters and best-of responses
        inputs = {
            k: VoteInputs(np.round(v.weight), g=v.g, best_of=v.best_of) for k, v in inputs.items()
        }
    budgets = data.draw(st.lists(st.integers(1, 10), min_size=1, max_size=4, unique=True))
    t = data.draw(st.integers(1, 6))
    subsets = make_subsets(pair, budgets, n_subsets=t, seed=7, order=order)
    assert subsets.order == order
    assert subsets.n_subsets == (1 if order == "sample" else t)
    fast = subset_credits(pair, inputs, subsets, keep_subsets=True, tie_break=tie_break)
    ref = np.array(
        reference.budget_curves(pair, inputs, subsets, keep_subsets=True, tie_break=tie_break)
    )
    assert fast.shape == ref.shape
    np.testing.assert_allclose(fast, ref, rtol=0, atol=1e-12)
    # accuracy_curves builds the same subsets itself from order / n_subsets / seed
    curves = accuracy_curves(
        pair,
        inputs,
        budgets=budgets,
        n_subsets=t,
        seed=7,
        order=order,
        tie_break=tie_break,
        exact_best_of=False,
    )
    ref_mean = np.array(reference.budget_curves(pair, inputs, subsets, tie_break=tie_break))
    np.testing.assert_allclose(
        curves.per_problem, exact_at_one(ref_mean, pair, subsets), rtol=0, atol=1e-12
    )
    assert (curves.order, curves.tie_break) == (order, tie_break)
    assert curves.n_subsets == subsets.n_subsets


@SETTINGS
@given(data=st.data(), tie_break=tie_breaks)
def test_sample_order_full_budget_is_the_full_set_vote(data: st.DataObject, tie_break: str) -> None:
    pair, _ = data.draw(problem_sets())
    vi = data.draw(vote_inputs(pair.n_responses))
    n_max = int(pair.sizes().max())
    # exact_best_of is left at its default: it must not apply to sample order
    curves = accuracy_curves(
        pair,
        {"s": vi},
        budgets=[n_max, n_max + 3],
        n_subsets=50,
        order="sample",
        tie_break=tie_break,
    )
    assert curves.exact == (False,) and curves.n_subsets == 1 and curves.order == "sample"
    for p in range(pair.n_problems):
        lo, hi = int(pair.offsets[p]), int(pair.offsets[p + 1])
        # the rows in stored order are the draw order: totals agree bit for bit
        want = reference.vote(
            pair.cluster[lo:hi].tolist(),
            vi.weight[lo:hi].tolist(),
            pair.correct[lo:hi].tolist(),
            None if vi.g is None else vi.g[lo:hi].tolist(),
            vi.best_of,
            tie_break,
        )
        assert curves.per_problem[0, 0, p] == want
        assert curves.per_problem[0, 1, p] == want


@SETTINGS
@given(data=st.data(), tie_break=tie_breaks)
def test_sample_order_ignores_rows_beyond_the_budget(data: st.DataObject, tie_break: str) -> None:
    """Budget N sees rows [0, N) of each problem only: rewriting every later row (cluster,
    weight, g, label) leaves the credit at N unchanged."""
    pair, _ = data.draw(problem_sets())
    n = pair.n_responses
    vi = data.draw(vote_inputs(n))
    budget = data.draw(st.integers(1, 8))
    sizes = pair.sizes()
    pos = np.arange(n) - np.repeat(pair.offsets[:-1], sizes)
    late = pos >= budget
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    new_cluster = np.where(late, rng.integers(0, np.repeat(sizes, sizes)), pair.cluster)
    other = replace(
        pair,
        cluster=new_cluster.astype(np.int64),
        correct=np.where(late, rng.uniform(size=n) < 0.5, pair.correct),
    )
    vi2 = VoteInputs(
        np.where(late, rng.normal(size=n) * 5, vi.weight),
        g=None if vi.g is None else np.where(late, rng.uniform(size=n), vi.g),
        best_of=vi.best_of,
    )
    kw = {"budgets": [budget], "order": "sample", "tie_break": tie_break}
    a = accuracy_curves(pair, {"s": vi}, **kw)  # type: ignore[arg-type]
    b = accuracy_curves(other, {"s": vi2}, **kw)  # type: ignore[arg-type]
    np.testing.assert_array_equal(a.per_problem, b.per_problem)


def test_sample_order_uses_the_first_n_rows() -> None:
    """Correctness depends on the position: problem p has its only correct response at row
    r_p. Best-of with weight = position picks row N - 1; pass@N (best-of over correct) is
    1 iff N > r_p; a majority vote over all-distinct answers with tie_break="first" picks
    row 0."""
    sizes, r = [5, 8, 3, 8], [0, 4, 2, 7]
    clusters = [list(range(s)) for s in sizes]
    correct = [[i == r_p for i in range(s)] for s, r_p in zip(sizes, r, strict=True)]
    pair = make_pair(clusters, correct)
    position = np.concatenate([np.arange(s, dtype=np.float64) for s in sizes])
    inputs = {
        "last": VoteInputs(position, best_of=True),
        "pass": VoteInputs(pair.correct.astype(np.float64), best_of=True),
        "mv": VoteInputs(np.ones(pair.n_responses)),
    }
    budgets = list(range(1, 10))
    curves = accuracy_curves(pair, inputs, budgets=budgets, order="sample", tie_break="first")
    assert curves.exact == (False, False, False)
    for p, (s, r_p) in enumerate(zip(sizes, r, strict=True)):
        for j, nb in enumerate(budgets):
            k = min(nb, s)
            assert curves.per_problem[0, j, p] == float(k - 1 == r_p)
            assert curves.per_problem[1, j, p] == float(k > r_p)
            assert curves.per_problem[2, j, p] == float(r_p == 0)
    # the fractional rule credits the mean over all k tied answers instead
    frac = accuracy_curves(pair, {"mv": inputs["mv"]}, budgets=budgets, order="sample")
    for p, (s, r_p) in enumerate(zip(sizes, r, strict=True)):
        for j, nb in enumerate(budgets):
            k = min(nb, s)
            assert frac.per_problem[0, j, p] == pytest.approx(float(k > r_p) / k)
    sub = make_subsets(pair, budgets, n_subsets=50, seed=3, order="sample")
    assert sub.n_subsets == 1 and sub.order == "sample"
    np.testing.assert_array_equal(sub.permutations(1), [np.arange(8)])
    np.testing.assert_array_equal(sub.subset(1, 0, 3), [0, 1, 2])
    np.testing.assert_array_equal(sub.subset(2, 0, 9), [0, 1, 2])


def test_first_and_fractional_ties_by_hand() -> None:
    # sampling order: answers B A A B C (A correct), majority vote
    pair = make_pair([[1, 0, 0, 1, 2]], [[False, True, True, False, False]])
    mv = {"mv": VoteInputs(np.ones(5))}
    kw = {"budgets": [1, 2, 3, 4, 5], "order": "sample"}
    frac = accuracy_curves(pair, mv, **kw)  # type: ignore[arg-type]
    first = accuracy_curves(pair, mv, tie_break="first", **kw)  # type: ignore[arg-type]
    # N=1 {B}; N=2 B:1 A:1 tie; N=3 A:2 wins; N=4 A:2 B:2 tie; N=5 A:2 B:2 C:1 tie.
    # The first-drawn tied answer is B (row 0) -> 0; fractional credits 1/2.
    np.testing.assert_array_equal(frac.per_problem[0, :, 0], [0, 0.5, 1, 0.5, 0.5])
    np.testing.assert_array_equal(first.per_problem[0, :, 0], [0, 0, 1, 0, 0])
    # same answers, A drawn first: A A B B C -> first gives 1 at N = 4, 5
    pair2 = make_pair([[0, 0, 1, 1, 2]], [[True, True, False, False, False]])
    first2 = accuracy_curves(pair2, mv, tie_break="first", **kw)  # type: ignore[arg-type]
    np.testing.assert_array_equal(first2.per_problem[0, :, 0], [1, 1, 1, 1, 1])
    # the tie tolerance decides what is tied: 0.1 + 0.2 (A, drawn second) vs 0.3 (B,
    # drawn first) are tied -> first picks B; a real gap of 1e-6 is no tie
    pair3 = make_pair([[1, 0, 0]], [[False, True, True]])
    for w, want in (([0.3, 0.1, 0.2], 0.0), ([0.299999, 0.1, 0.2], 1.0)):
        got = accuracy_curves(
            pair3, {"w": VoteInputs(np.array(w))}, budgets=[3], order="sample", tie_break="first"
        )
        assert got.per_problem[0, 0, 0] == want
    # best-of: weights .5 .9 .9 .2, correct T F T F: tied maxima at rows 1 (F) and 2 (T)
    pair4 = make_pair([[0, 1, 2, 3]], [[True, False, True, False]])
    bon = {"b": VoteInputs(np.array([0.5, 0.9, 0.9, 0.2]), best_of=True)}
    kw4 = {"budgets": [1, 2, 3, 4], "order": "sample"}
    frac4 = accuracy_curves(pair4, bon, **kw4)  # type: ignore[arg-type]
    first4 = accuracy_curves(pair4, bon, tie_break="first", **kw4)  # type: ignore[arg-type]
    np.testing.assert_array_equal(frac4.per_problem[0, :, 0], [1, 0, 0.5, 0.5])
    np.testing.assert_array_equal(first4.per_problem[0, :, 0], [1, 0, 0, 0])
    # q-term: g = 0.5 everywhere, m = 2 -> c = log 1 = 0; totals 2 (A x2) and 2 (B) tie;
    # B comes first
    pair5 = make_pair([[1, 0, 0]], [[False, True, True]])
    kde = {"k": VoteInputs(np.array([2.0, 1.0, 1.0]), g=np.full(3, 0.5))}
    kw5 = {"budgets": [3], "order": "sample"}
    assert accuracy_curves(pair5, kde, **kw5).per_problem[0, 0, 0] == 0.5  # type: ignore[arg-type]
    got5 = accuracy_curves(pair5, kde, tie_break="first", **kw5)  # type: ignore[arg-type]
    assert got5.per_problem[0, 0, 0] == 0.0


def test_first_tie_break_under_random_order() -> None:
    """Per subset: credit of the first-drawn tied cluster. In expectation a tied cluster
    wins with probability proportional to its size: A (two responses of weight 1, correct)
    and B (one of weight 2) tie at 2 on the full set, so first -> P(A drawn first) = 2/3,
    fractional -> 1/2."""
    pair = make_pair([[0, 0, 1]], [[True, True, False]])
    vi = {"w": VoteInputs(np.array([1.0, 1.0, 2.0]))}
    sub = make_subsets(pair, [3], n_subsets=4000, seed=1)
    cred = subset_credits(pair, vi, sub, tie_break="first")[0, 0, 0]
    for t in (0, 1, 2, 17, 3999):
        assert cred[t] == float(sub.subset(0, t, 3)[0] != 2)
    want = reference.brute_force_expectation(
        [0, 0, 1], [1.0, 1.0, 2.0], [True, True, False], 3, tie_break="first"
    )
    assert want == pytest.approx(2 / 3)
    assert reference.brute_force_expectation(
        [0, 0, 1], [1.0, 1.0, 2.0], [True, True, False], 3
    ) == pytest.approx(1 / 2)
    se = math.sqrt(2 / 9 / 4000)
    assert abs(float(cred.mean()) - want) < 4.5 * se
    frac = subset_credits(pair, vi, sub)[0, 0, 0]
    np.testing.assert_array_equal(frac, np.full(4000, 0.5))


@SETTINGS
@given(scores=st.lists(st.integers(0, 2), min_size=1, max_size=6), data=st.data())
def test_exact_best_of_n_is_valid_for_first_tie_break(
    scores: list[int], data: st.DataObject
) -> None:
    """Under random order the earliest tied maximum is a uniform pick among the tied
    ones, so the expectation over ordered draws equals the exact (fractional) formula,
    and accuracy_curves keeps the exact path for tie_break="first"."""
    n = len(scores)
    correct = data.draw(st.lists(st.booleans(), min_size=n, max_size=n))
    w = [float(s) for s in scores]
    pair = make_pair([list(range(n))], [correct], [w])
    budgets = list(range(1, n + 1))
    exact = exact_best_of_n(pair, pair.score, budgets)[:, 0]
    for j, b in enumerate(budgets):
        want = reference.brute_force_expectation(
            list(range(n)), w, correct, b, best_of=True, tie_break="first"
        )
        assert exact[j] == pytest.approx(want, abs=1e-10)
    curves = accuracy_curves(
        pair, {"b": VoteInputs(pair.score, best_of=True)}, budgets=budgets, tie_break="first"
    )
    assert curves.exact == (True,)
    np.testing.assert_array_equal(curves.per_problem[0, :, 0], exact)


def test_defaults_are_random_order_and_fractional_ties() -> None:
    rng = np.random.default_rng(3)
    clusters = [np.unique(rng.integers(0, 3, 9), return_inverse=True)[1].tolist() for _ in range(5)]
    pair = make_pair(clusters, [[c == 0 for c in cl] for cl in clusters])
    inputs = {
        "wv": VoteInputs(np.round(rng.normal(size=pair.n_responses))),
        "kde": VoteInputs(rng.normal(size=pair.n_responses), g=rng.uniform(size=pair.n_responses)),
        "bon": VoteInputs(np.round(rng.normal(size=pair.n_responses)), best_of=True),
    }
    base = accuracy_curves(pair, inputs, n_subsets=20, seed=2)
    same = accuracy_curves(
        pair, inputs, n_subsets=20, seed=2, order="random", tie_break="fractional"
    )
    np.testing.assert_array_equal(base.per_problem, same.per_problem)
    assert (base.order, base.tie_break) == ("random", "fractional")
    sub = make_subsets(pair, None, 20, 2)
    assert sub.order == "random"
    np.testing.assert_array_equal(
        subset_credits(pair, inputs, sub), subset_credits(pair, inputs, sub, tie_break="fractional")
    )
    # with the subsets given, order=None means theirs; a different order is an error
    s_sub = make_subsets(pair, [1, 9], order="sample")
    assert accuracy_curves(pair, inputs, subsets=s_sub).order == "sample"
    with pytest.raises(BudgetError, match="order"):
        accuracy_curves(pair, inputs, subsets=s_sub, order="random")
    more = base.with_strategy(
        "pass", exact_best_of_n(pair, pair.correct.astype(np.float64), base.budgets)
    )
    assert (more.order, more.tie_break) == ("random", "fractional")


def test_order_and_tie_break_validation() -> None:
    pair = make_pair([[0, 1, 0]], [[True, False, True]])
    vi = {"a": VoteInputs(np.ones(3))}
    with pytest.raises(BudgetError, match="order"):
        make_subsets(pair, [1], order="sorted")
    with pytest.raises(BudgetError, match="order"):
        accuracy_curves(pair, vi, order="beam")
    with pytest.raises(BudgetError, match="tie_break"):
        accuracy_curves(pair, vi, tie_break="last")
    with pytest.raises(BudgetError, match="tie_break"):
        subset_credits(pair, vi, make_subsets(pair, [1]), tie_break="random")
    with pytest.raises(ValueError, match="tie_break"):
        reference.vote([0], [1.0], [True], tie_break="last")
    unsorted = PairData(
        dataset_id="t",
        llm="m",
        verifier="v",
        problem_ids=("q0", "q1"),
        offsets=np.array([0, 3, 5], dtype=np.int64),
        cluster=np.array([0, 1, 0, 0, 1], dtype=np.int64),
        score=np.linspace(0.1, 0.9, 5),
        correct=np.array([True, False, True, False, True]),
        sample_idx=np.array([0, 1, 2, 1, 0], dtype=np.int64),
        n_tokens=np.full(5, np.nan),
    )
    vi5 = {"a": VoteInputs(np.ones(5))}
    with pytest.raises(BudgetError, match="sample_idx"):
        accuracy_curves(unsorted, vi5, order="sample")
    accuracy_curves(unsorted, vi5, n_subsets=2)  # random order does not care
    ok = replace(unsorted, sample_idx=np.array([0, 1, 2, 0, 1], dtype=np.int64))
    accuracy_curves(ok, vi5, order="sample")  # sample_idx restarts at each problem


def test_splitting_the_problems_over_threads_changes_no_credit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The kernel runs its problems in parts on threads; every subset comes from its
    problem's own key, so one thread and three give the same credits bit for bit."""
    rng = np.random.default_rng(5)
    clusters = [rng.integers(0, 4, size=int(rng.integers(3, 12))).tolist() for _ in range(300)]
    clusters = [np.unique(c, return_inverse=True)[1].tolist() for c in clusters]
    correct = [[x == 0 for x in c] for c in clusters]
    pair = make_pair(clusters, correct)
    w = rng.normal(size=pair.n_responses)
    g = rng.uniform(0.1, 0.9, size=pair.n_responses)
    inputs = {
        "wv": VoteInputs(weight=w, g=g),
        "mv": VoteInputs(weight=np.ones_like(w)),
        "bon": VoteInputs(weight=w.copy(), best_of=True),
    }
    subsets = make_subsets(pair, None, n_subsets=25, seed=3)
    monkeypatch.setattr(engine, "KERNEL_THREADS", 1)
    one = engine.subset_credits(pair, inputs, subsets)
    monkeypatch.setattr(engine, "KERNEL_THREADS", 3)
    three = engine.subset_credits(pair, inputs, subsets)
    np.testing.assert_array_equal(one, three)
    assert one.shape[2] == 300 and np.isfinite(one).all()
