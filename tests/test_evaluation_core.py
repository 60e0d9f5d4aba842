"""The one evaluation core: the offset search in one walk, shared across folds and
targets, equal to separate searches; the kernel's shortcuts equal to the plain-Python
reference; the one cross-fitting helper; the one config; the one cache and its codec."""

from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import core.store as store_module
from core.evaluation import (
    EvalConfig,
    Fold,
    OffsetTuner,
    accuracy_curves,
    cross_fit,
    crossfit_strategies,
    kfold,
    make_subsets,
    offset_credits,
    subset_credits,
    transfer_folds,
)
from core.methods import CalibrationError, StrategyParams, get_strategy
from core.methods.transforms import auto_once
from core.store import Store, decode_payload, encode_payload
from core.synth.demo import demo_canonical
from core.types import PairData, VoteInputs
from tests import reference


def _pair(
    sizes: list[int], clusters: list[int], scores: list[float], correct: list[bool]
) -> PairData:
    n = sum(sizes)
    offsets = np.r_[0, np.cumsum(sizes)].astype(np.int64)
    cl = []
    for p, size in enumerate(sizes):
        raw = np.asarray(clusters[offsets[p] : offsets[p] + size]) % max(size, 1)
        _, dense = np.unique(raw, return_inverse=True)
        cl.append(dense)
    return PairData(
        dataset_id="d",
        llm="m",
        verifier="v",
        problem_ids=tuple(f"p{i}" for i in range(len(sizes))),
        offsets=offsets,
        cluster=np.concatenate(cl).astype(np.int64),
        score=np.asarray(scores[:n], dtype=np.float64),
        correct=np.asarray(correct[:n], dtype=bool),
        sample_idx=np.concatenate([np.arange(s) for s in sizes]).astype(np.int64),
        n_tokens=np.full(n, np.nan),
    )


@st.composite
def pairs(draw: st.DrawFn, max_problems: int = 5, max_size: int = 12) -> PairData:
    sizes = draw(st.lists(st.integers(1, max_size), min_size=1, max_size=max_problems))
    n = sum(sizes)
    # coarse scores make exact ties (the hard case of the tie rule) common
    grid = draw(st.sampled_from([4, 8, 1000]))
    scores = draw(st.lists(st.integers(0, grid), min_size=n, max_size=n))
    clusters = draw(st.lists(st.integers(0, 4), min_size=n, max_size=n))
    correct = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    return _pair(sizes, clusters, [s / grid for s in scores], correct)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pair=pairs(), n_c=st.integers(1, 9), seed=st.integers(0, 3))
def test_offset_credits_equal_one_walk_per_candidate(pair: PairData, n_c: int, seed: int) -> None:
    """All candidates in one walk equal a separate summed vote per candidate, bit for bit,
    for two families at once (linear in t and in logit t)."""
    cands = np.linspace(-1, 1, n_c)
    logit_t = np.log(
        np.clip(pair.score, 1e-6, 1 - 1e-6) / (1 - np.clip(pair.score, 1e-6, 1 - 1e-6))
    )
    bases = np.stack([pair.score, logit_t])
    shifts = np.stack([cands, 3 * cands])
    subsets = make_subsets(pair, [1, 2, 3, 5, 8, 100], n_subsets=7, seed=seed)
    fast = offset_credits(pair, bases, shifts, subsets)
    for f in range(2):
        inputs = {f"c{c}": VoteInputs(bases[f] - shifts[f, c]) for c in range(n_c)}
        slow = subset_credits(pair, inputs, subsets, keep_subsets=False)
        assert np.array_equal(fast[f], slow)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pair=pairs(max_size=9),
    tie_break=st.sampled_from(["fractional", "first"]),
    order=st.sampled_from(["random", "sample"]),
    seed=st.integers(0, 3),
)
def test_full_set_shortcut_equals_the_reference(
    pair: PairData, tie_break: str, order: str, seed: int
) -> None:
    """Budgets that reach a problem's full response set (where the kernel may stop early
    when the vote cannot depend on the order) give the reference's credits exactly, ties
    included, with and without the q-term, for both tie rules and both orders."""
    n = pair.n_responses
    rng = np.random.default_rng(seed)
    inputs = {
        "majority": VoteInputs(np.ones(n)),
        "weighted": VoteInputs(pair.score.copy()),
        "negative": VoteInputs(pair.score - 0.5),
        "q": VoteInputs(np.round(pair.score - 0.4, 2), g=np.round(rng.random(n), 1)),
        "best": VoteInputs(pair.score.copy(), best_of=True),
    }
    subsets = make_subsets(pair, [1, 2, 4, 9, 12], n_subsets=5, seed=seed, order=order)
    fast = subset_credits(pair, inputs, subsets, keep_subsets=True, tie_break=tie_break)
    ref = np.asarray(
        reference.budget_curves(pair, inputs, subsets, keep_subsets=True, tie_break=tie_break)
    )
    assert np.array_equal(fast, ref)


def _demo_pair(n_problems: int = 40, n: int = 12, seed: int = 0) -> PairData:
    rng = np.random.default_rng(seed)
    sizes = [n] * n_problems
    clusters = list(rng.integers(0, 4, size=n * n_problems))
    correct = [c == 0 for c in clusters]
    scores = [float(np.clip(rng.normal(0.65 if ok else 0.4, 0.2), 0, 1)) for ok in correct]
    return _pair(sizes, clusters, scores, correct)


@pytest.mark.parametrize("transform", ["identity", "zscore", "rank"])
@pytest.mark.parametrize("kind", ["linear_wv", "logit_wv"])
def test_shared_offset_search_equals_a_search_on_the_calibration_problems(
    kind: str, transform: str
) -> None:
    """The pair-level objective sliced for a fold equals a search run on that fold's
    calibration problems alone (fold-independent transforms share the work; parametric
    ones are computed per fold), and prefetching changes nothing."""
    pair = _demo_pair()
    strategy = get_strategy(kind)
    params = StrategyParams(transform=transform, offset_budget=8, offset_n_subsets=20)  # type: ignore[arg-type]
    shared = OffsetTuner(pair)
    prefetched = OffsetTuner(pair)
    prefetched.prefetch([(strategy, strategy.fit(pair, params))])
    for fold in kfold(pair.n_problems, 4, seed=1):
        calib = pair.select(fold.train)
        fitted = strategy.fit(calib, params)
        alone = OffsetTuner(calib).objective(strategy, fitted)
        for tuner in (shared, prefetched):
            got = tuner.objective(strategy, fitted, fold.train)
            assert np.array_equal(got.values, alone.values)
            assert got.budgets == alone.budgets
            a = tuner.tune(strategy, fitted, fold.train).offset
            b = OffsetTuner(calib).tune(strategy, fitted).offset
            assert a is not None and b is not None and a.b == b.b
    assert OffsetTuner.shared(strategy, strategy.fit(pair, params)) == (transform == "identity")


def test_offset_objective_mean_over_budgets_with_unequal_problem_sizes() -> None:
    """With the "mean" objective the budgets depend on the largest calibration problem;
    slicing must use each fold's own budgets."""
    rng = np.random.default_rng(3)
    sizes = [int(s) for s in rng.integers(2, 17, size=30)]
    n = sum(sizes)
    pair = _pair(sizes, list(rng.integers(0, 3, n)), list(rng.random(n)), list(rng.random(n) < 0.5))
    strategy = get_strategy("linear_wv")
    params = StrategyParams(offset_objective="mean", offset_n_subsets=10)
    tuner = OffsetTuner(pair)
    for fold in kfold(pair.n_problems, 5, seed=0):
        calib = pair.select(fold.train)
        fitted = strategy.fit(calib, params)
        alone = OffsetTuner(calib).objective(strategy, fitted)
        got = tuner.objective(strategy, fitted, fold.train)
        assert got.budgets == alone.budgets
        assert np.array_equal(got.values, alone.values)


def test_cross_fit_skips_a_strategy_that_fails_on_a_fold_with_its_reason() -> None:
    pair = _demo_pair(n_problems=10)
    folds = kfold(pair.n_problems, 5, seed=0)

    def fit_fold(fold: Fold):  # type: ignore[no-untyped-def]
        def one(name: str) -> VoteInputs:
            if name == "fragile" and fold.index == 3:
                raise CalibrationError("too few incorrect responses")
            held = pair.select(fold.test)
            return VoteInputs(np.full(held.n_responses, float(fold.index)))

        return one

    cf = cross_fit(pair, folds, ["steady", "fragile"], fit_fold)
    assert cf.skipped == {"fragile": "too few incorrect responses"}
    w = cf.inputs["steady"].weight
    # each problem's weight comes from the fold that held it out
    for f in folds:
        assert np.all(w[pair.rows(f.test)] == f.index)
        assert np.all(cf.fold_of[f.test] == f.index)
    with pytest.raises(CalibrationError, match="exactly once"):
        cross_fit(pair, folds[:-1], ["steady"], fit_fold)


def test_crossfit_never_uses_the_held_out_labels() -> None:
    """Flipping the labels of one fold's problems changes no weight of that fold (and the
    test fails if the fold's own labels reached its fit)."""
    pair = _demo_pair(n_problems=30, seed=4)
    config = EvalConfig(folds=3)
    names = ["logit_wv", "kde_wv", "platt_wv", "isotonic_wv", "linear_wv"]
    base = crossfit_strategies(pair, names, config)
    fold = kfold(pair.n_problems, 3, 0)[1]
    rows = pair.rows(fold.test)
    flipped = pair.correct.copy()
    flipped[rows] = ~flipped[rows]
    other = crossfit_strategies(replace(pair, correct=flipped), names, config)
    for n in names:
        assert np.array_equal(base.inputs[n].weight[rows], other.inputs[n].weight[rows]), n
    # and flipping another fold's labels does change this fold's weights
    rows2 = pair.rows(kfold(pair.n_problems, 3, 0)[0].test)
    flipped2 = pair.correct.copy()
    flipped2[rows2] = ~flipped2[rows2]
    third = crossfit_strategies(replace(pair, correct=flipped2), names, config)
    assert not np.array_equal(
        base.inputs["kde_wv"].weight[rows], third.inputs["kde_wv"].weight[rows]
    )


def test_transfer_folds_hold_out_shared_problems() -> None:
    a = _demo_pair(n_problems=12, seed=1)
    b = _demo_pair(n_problems=12, seed=2)  # same problem ids: shared
    folds = transfer_folds(a, b, 3, seed=0)
    assert len(folds) == 3
    for f in folds:
        held = {b.problem_ids[int(i)] for i in f.test}
        assert held.isdisjoint({a.problem_ids[int(i)] for i in f.train})
    c = replace(b, problem_ids=tuple(f"x{i}" for i in range(b.n_problems)))
    (only,) = transfer_folds(a, c, 3, seed=0)
    assert only.train.size == a.n_problems and only.test.size == c.n_problems


def test_eval_config_is_hashed_whole() -> None:
    base = EvalConfig()
    assert EvalConfig.from_dict(base.to_dict()) == base
    # every cache key carries the cache version: bumping it invalidates every result
    key = Store.cache_key("sha", "pair_curves", base.key())
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(store_module, "CACHE_VERSION", store_module.CACHE_VERSION + 1)
        assert Store.cache_key("sha", "pair_curves", base.key()) != key
    changed = {
        "reduction": "min",
        "folds": 3,
        "fold_seed": 1,
        "budgets": (1, 4),
        "n_subsets": 10,
        "subset_seed": 2,
        "order": "sample",
        "tie_break": "first",
        "n_boot": 50,
        "level": 0.9,
        "boot_seed": 3,
        "weight_boot": 7,
        "calibration": "semi:5",
    }
    assert set(changed) == {f.name for f in fields(EvalConfig)} - {"params"}
    digests = {base.digest()}
    for name, value in changed.items():
        digests.add(replace(base, **{name: value}).digest())
    digests.add(base.with_(offset_budget=4).digest())
    assert len(digests) == len(changed) + 2
    assert base.with_(offset_budget=4).params.offset_budget == 4
    assert base.resolved_order(iid=False) == "sample" and base.resolved_order(iid=True) == "random"


def test_cache_codec_and_tiers(tmp_path: Path) -> None:
    payload = {"a": np.arange(6.0).reshape(2, 3), "names": ["x", "y"], "n": 3, "nested": {"k": 1}}
    back = decode_payload(encode_payload(payload))
    assert np.array_equal(back["a"], payload["a"]) and back["names"] == ["x", "y"]
    assert back["n"] == 3 and back["nested"] == {"k": 1}
    calls = []

    def compute() -> dict[str, object]:
        calls.append(1)
        return payload

    db = tmp_path / "c.duckdb"
    with Store(db) as s:
        data, sha, _, _ = demo_canonical(n_problems=5, n_samples=2)
        s.ingest(data, name="d", source_format="simulator", content_sha256=sha)
        info = s.get_dataset("d")
        got, hit = s.cached(info, "kind", {"p": 1}, compute)
        assert not hit and len(calls) == 1
        got2, hit2 = s.cached(info, "kind", {"p": 1}, compute)
        assert hit2 and len(calls) == 1 and np.array_equal(got2["a"], got["a"])
        assert s.cache_kinds() == {"kind": 1}
    with Store(db, read_only=True) as s:  # a new process: from the table, not memory
        info = s.get_dataset("d")
        got3, hit3 = s.cached(info, "kind", {"p": 1}, compute)
        assert hit3 and len(calls) == 1 and got3["names"] == ["x", "y"]
        _, hit4 = s.cached(info, "kind", {"p": 2}, compute)  # computed, kept in memory only
        assert not hit4 and len(calls) == 2
    with Store(db, read_only=True) as s:
        _, hit5 = s.cached(s.get_dataset("d"), "kind", {"p": 2}, compute)
        assert not hit5 and len(calls) == 3


def test_auto_transform_resolved_once_per_pair() -> None:
    pair = _demo_pair()
    wide = replace(pair, score=pair.score * 400)  # counts: log-zscore, fitted per fold
    assert auto_once(StrategyParams(), pair).transform == "identity"
    assert auto_once(StrategyParams(), wide).transform == "log-zscore"
    cf = crossfit_strategies(wide, ["logit_wv"], EvalConfig(folds=3))
    assert "logit_wv" in cf.inputs


def test_accuracy_curves_for_a_pair_with_every_budget_at_the_full_set() -> None:
    """Budgets all >= n: no walk at all (all from the full set) and still exact."""
    pair = _demo_pair(n_problems=6, n=5)
    inputs = {"w": VoteInputs(pair.score - 0.5)}
    subsets = make_subsets(pair, [5, 7], n_subsets=3, seed=0)
    fast = accuracy_curves(pair, inputs, subsets=subsets).per_problem
    ref = np.asarray(reference.budget_curves(pair, inputs, subsets))
    assert np.array_equal(fast, ref)
