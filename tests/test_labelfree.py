"""Label-free and semi-supervised calibration (EM over the latent correct answer)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from core.cli import main as cli_main
from core.evaluation import EvalConfig
from core.evaluation.config import ConfigError, parse_calibration
from core.evaluation.pipeline import crossfit_strategies, evaluate, load_pair
from core.methods import StrategyParams, get_strategy
from core.methods.kde import fit_kde
from core.methods.latent import fit_latent, label_free_pair, latent_scores
from core.methods.params import CalibrationError
from core.methods.posterior import (
    answer_stats,
    fit_answer_prior,
    fit_prior_stats,
    mixture_logpdf,
)
from core.store import Store
from core.studies.combine import (
    MultiPair,
    combined_inputs,
    latent_inputs,
    weak_supervision_weights,
)
from core.types import PairData
from tests.test_calibration_checks import make_pair

CALIBRATED = ("kde_wv", "posterior_vote", "logit_wv", "linear_wv", "platt_wv", "isotonic_wv")


@pytest.fixture(scope="module")
def sim_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """A small simulated benchmark (200 problems x 32 samples) with the simulator's truth."""
    from core.cli import DEMO_NAME, build_demo

    db = tmp_path_factory.mktemp("labelfree") / "sim.duckdb"
    with Store(db) as store:
        build_demo(store, n_problems=200, n_samples=32)
        store.demo_name = DEMO_NAME  # type: ignore[attr-defined]
        yield store


def _pair(store: Store, llm: str, verifier: str) -> PairData:
    from core.cli import DEMO_NAME

    info = store.get_dataset(DEMO_NAME)
    return load_pair(store, info, llm, verifier)


def _scrambled(pair: PairData, seed: int = 3) -> PairData:
    rng = np.random.default_rng(seed)
    return replace(pair, correct=rng.permutation(np.asarray(pair.correct, dtype=bool)))


# --------------------------------------------------------------------------------------
# the EM itself
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 5])
def test_em_likelihood_rises_at_every_iteration(seed: int) -> None:
    pair = make_pair(n_problems=120, seed=seed)
    x = latent_scores(pair, StrategyParams())
    for labelled in (None, np.arange(pair.n_problems) % 4 == 0):
        fit = fit_latent(pair, x, labelled)
        ll = np.asarray(fit.loglik)
        assert ll.size >= 2
        steps = np.diff(ll)
        # monotone up to round-off of a sum of ~1e4 terms
        assert np.all(steps >= -1e-8 * np.abs(ll[1:])), steps.min()
        assert math.isfinite(ll[-1])


def test_em_likelihood_rises_on_the_simulator(sim_store: Store) -> None:
    for llm, ver in (("sim-llm-C", "sim-grm-orm"), ("sim-llm-D", "sim-internlm2-orm")):
        pair = _pair(sim_store, llm, ver)
        fit = fit_latent(pair, latent_scores(pair, StrategyParams()))
        ll = np.asarray(fit.loglik)
        assert np.all(np.diff(ll) >= -1e-8 * np.abs(ll[1:]))
        assert fit.converged
        # the inferred labels agree with the truth on most responses
        assert np.mean(fit.hard == pair.correct) > 0.85


def test_label_free_fit_never_reads_the_labels() -> None:
    pair = make_pair(n_problems=100, seed=4)
    params = StrategyParams()
    _, fa = label_free_pair(pair, params)
    _, fb = label_free_pair(_scrambled(pair), params)
    assert fa is not None and fb is not None
    np.testing.assert_array_equal(fa.soft, fb.soft)
    np.testing.assert_array_equal(fa.hard, fb.hard)
    assert fa.prior == fb.prior
    # and every calibrated strategy's cross-fitted weights are unchanged
    config = EvalConfig(calibration="none", budgets=(1, 4), n_subsets=10)
    names = ["majority", *CALIBRATED]
    cf1 = crossfit_strategies(pair, names, config)
    cf2 = crossfit_strategies(_scrambled(pair), names, config)
    assert set(cf1.inputs) == set(cf2.inputs) and set(CALIBRATED) <= set(cf1.inputs)
    for n in cf1.inputs:
        np.testing.assert_array_equal(cf1.inputs[n].weight, cf2.inputs[n].weight, err_msg=n)


def test_a_scrambled_labelled_fit_does_change() -> None:
    """The scrambling test above can fail: labelled weights do move with the labels."""
    pair = make_pair(n_problems=100, seed=4)
    config = EvalConfig(budgets=(1, 4), n_subsets=10)
    w1 = crossfit_strategies(pair, ["kde_wv"], config).inputs["kde_wv"].weight
    w2 = crossfit_strategies(_scrambled(pair), ["kde_wv"], config).inputs["kde_wv"].weight
    assert not np.allclose(w1, w2)


def test_semi_supervised_with_every_label_is_the_labelled_fit() -> None:
    pair = make_pair(n_problems=90, seed=6)
    names = ["majority", *CALIBRATED]
    base = EvalConfig(budgets=(1, 2, 4, 8), n_subsets=20)
    lab = crossfit_strategies(pair, names, base)
    semi = crossfit_strategies(pair, names, replace(base, calibration=f"semi:{pair.n_problems}"))
    assert set(lab.inputs) == set(semi.inputs)
    for n in lab.inputs:
        np.testing.assert_allclose(
            semi.inputs[n].weight, lab.inputs[n].weight, rtol=1e-12, atol=1e-12, err_msg=n
        )
    c1 = evaluate(pair, lab.inputs, base)
    c2 = evaluate(pair, semi.inputs, base)
    np.testing.assert_allclose(c1.per_problem, c2.per_problem, atol=1e-12)


def test_labelled_problems_keep_their_labels() -> None:
    pair = make_pair(n_problems=80, seed=7)
    mask = np.arange(pair.n_problems) < 30
    fit = fit_latent(pair, latent_scores(pair, StrategyParams()), mask)
    rows = pair.rows(np.flatnonzero(mask))
    np.testing.assert_array_equal(fit.soft[rows], pair.correct[rows].astype(float))
    np.testing.assert_array_equal(fit.hard[rows], pair.correct[rows])
    assert fit.n_labelled == 30
    # and the unlabelled ones are not read: scrambling them changes nothing
    free = pair.rows(np.flatnonzero(~mask))
    scr = np.asarray(pair.correct, dtype=bool).copy()
    scr[free] = np.random.default_rng(0).permutation(scr[free])
    fit2 = fit_latent(replace(pair, correct=scr), latent_scores(pair, StrategyParams()), mask)
    np.testing.assert_array_equal(fit.soft, fit2.soft)


def test_unidentifiable_data_are_refused_clearly() -> None:
    pair = make_pair(n_problems=40, seed=1)
    one = pair.select(np.arange(pair.n_problems))
    # one response per problem
    rows = one.offsets[:-1]
    single = PairData(
        dataset_id="d",
        llm="m",
        verifier="v",
        problem_ids=one.problem_ids,
        offsets=np.arange(one.n_problems + 1, dtype=np.int64),
        cluster=np.zeros(one.n_problems, dtype=np.int64),
        score=one.score[rows],
        correct=one.correct[rows],
        sample_idx=np.zeros(one.n_problems, dtype=np.int64),
        n_tokens=np.full(one.n_problems, np.nan),
    )
    with pytest.raises(CalibrationError, match="two or more responses"):
        fit_latent(single, latent_scores(single, StrategyParams()))
    # every response of every problem agrees
    agree = replace(pair, cluster=np.zeros_like(pair.cluster))
    with pytest.raises(CalibrationError, match="same answer"):
        fit_latent(agree, latent_scores(agree, StrategyParams()))
    # the pipeline drops the calibrated strategies with the reason and keeps majority
    cf = crossfit_strategies(agree, ["majority", "kde_wv"], EvalConfig(calibration="none"))
    assert "majority" in cf.inputs and "same answer" in cf.skipped["kde_wv"]


# --------------------------------------------------------------------------------------
# the soft-label fits equal the labelled ones on 0/1 labels
# --------------------------------------------------------------------------------------


def test_weighted_kde_with_hard_weights_is_the_labelled_kde() -> None:
    rng = np.random.default_rng(0)
    x = np.r_[rng.normal(1.0, 1.0, 300), rng.normal(-1.0, 1.2, 200)]
    c = np.r_[np.ones(300, bool), np.zeros(200, bool)]
    a = fit_kde(x, c)
    b = fit_kde(x, c.astype(np.float64))
    probe = np.linspace(-4, 4, 81)
    np.testing.assert_allclose(a.log_lr(probe), b.log_lr(probe), atol=1e-9)
    assert (a.n1, a.n0) == (b.n1, b.n0)
    # soft labels halfway move the ratio towards 0
    half = fit_kde(x, np.where(c, 0.75, 0.25))
    assert np.all(np.abs(half.log_lr(probe)) <= np.abs(a.log_lr(probe)) + 1e-9)


def test_answer_prior_from_hard_soft_labels_is_the_labelled_prior() -> None:
    pair = make_pair(n_problems=150, seed=9)
    direct = fit_answer_prior(pair)
    soft = fit_prior_stats(answer_stats(pair, pair.correct.astype(np.float64)))
    for f in ("a", "b", "discount", "concentration"):
        assert getattr(soft, f) == pytest.approx(getattr(direct, f), rel=1e-6, abs=1e-9)


# --------------------------------------------------------------------------------------
# the simulator: label-free close to labelled, and to the true log likelihood ratio
# --------------------------------------------------------------------------------------


def test_label_free_posterior_vote_is_close_to_labelled_on_the_simulator(
    sim_store: Store,
) -> None:
    from core.cli import DEMO_NAME

    info = sim_store.get_dataset(DEMO_NAME)
    for llm, ver in (
        ("sim-llm-C", "sim-grm-orm"),
        ("sim-llm-D", "sim-reasoneval34b-min"),
        ("sim-llm-E", "sim-shepherd-last"),
    ):
        pair = load_pair(sim_store, info, llm, ver)
        accs = {}
        for cal in ("labels", "none"):
            cfg = EvalConfig(calibration=cal, budgets=(16, 32), n_subsets=50)
            cf = crossfit_strategies(pair, ["posterior_vote"], cfg)
            cs = evaluate(pair, cf.inputs, cfg)
            accs[cal] = cs.per_problem[0].mean(axis=-1)
        assert np.all(np.abs(accs["none"] - accs["labels"]) <= 0.02), (llm, ver, accs)


def test_label_free_llr_tracks_the_true_one_where_data_are_dense(sim_store: Store) -> None:
    for llm, ver in (("sim-llm-C", "sim-internlm2-orm"), ("sim-llm-D", "sim-shepherd-min")):
        pair = _pair(sim_store, llm, ver)
        assert pair.truth is not None
        params = StrategyParams(transform="identity")
        calib, fit = label_free_pair(pair, params)
        assert fit is not None
        strat = get_strategy("kde_wv")
        lf = strat.fit(calib, params)
        lab = strat.fit(pair, params)
        s = np.clip(np.asarray(pair.score), 1e-6, 1 - 1e-6)
        x = np.log(s) - np.log1p(-s)
        lo, hi = np.quantile(x, [0.1, 0.9])
        grid = np.linspace(lo, hi, 50)
        t = 1.0 / (1.0 + np.exp(-grid))
        true = mixture_logpdf(pair.truth["logit_correct"], grid) - mixture_logpdf(
            pair.truth["logit_incorrect"], grid
        )
        err_lf = float(np.mean(np.abs(strat.weights(lf, t) - true)))
        err_lab = float(np.mean(np.abs(strat.weights(lab, t) - true)))
        # the stated tolerance (README): mean absolute error within 0.5 nats of the truth
        # between the 10th and 90th percentiles of the scores, and no worse than the
        # labelled fit by more than 0.25
        assert err_lf <= 0.5, (llm, ver, err_lf)
        assert err_lf <= err_lab + 0.25, (llm, ver, err_lf, err_lab)


# --------------------------------------------------------------------------------------
# several verifiers; Weaver-style weak supervision
# --------------------------------------------------------------------------------------


def test_weak_supervision_recovers_known_vote_rates() -> None:
    rng = np.random.default_rng(1)
    n = 4000
    y = rng.random(n) < 0.4
    rates1, rates0 = np.array([0.9, 0.8, 0.7]), np.array([0.2, 0.3, 0.25])
    votes = np.where(y[:, None], rng.random((n, 3)) < rates1, rng.random((n, 3)) < rates0)
    llr, a, b, pi = weak_supervision_weights(votes)
    np.testing.assert_allclose(a, rates1, atol=0.05)
    np.testing.assert_allclose(b, rates0, atol=0.05)
    assert pi == pytest.approx(0.4, abs=0.05)
    assert llr[votes.all(axis=1)].min() > 0 > llr[~votes.any(axis=1)].max()


def test_multi_verifier_latent_vote_uses_every_signal(sim_store: Store) -> None:
    from core.cli import DEMO_NAME
    from core.studies.combine import load_multi

    info = sim_store.get_dataset(DEMO_NAME)
    vs = ["sim-grm-orm", "sim-internlm2-orm"]
    mp = load_multi(sim_store, info, "sim-llm-D", vs)
    cfg = EvalConfig(budgets=(16,), n_subsets=50)
    inputs = combined_inputs(mp, cfg)
    assert {"latent_pv", "weak_sup"} <= set(inputs)
    cs = evaluate(mp.base, inputs, cfg)
    acc = {n: float(cs.per_problem[i].mean()) for i, n in enumerate(cs.strategies)}
    # no labels, yet better than majority and than either signal's labelled KDE WV alone
    assert acc["latent_pv"] > acc["majority"] + 0.02
    assert acc["latent_pv"] >= max(acc[f"kde_wv[{v}]"] for v in vs)
    # and scrambling the labels leaves both label-free combiners unchanged
    scr = MultiPair(_scrambled(mp.base), mp.verifiers, mp.scores)
    params = StrategyParams()
    np.testing.assert_array_equal(
        latent_inputs(mp, params).weight, latent_inputs(scr, params).weight
    )


# --------------------------------------------------------------------------------------
# config, CLI
# --------------------------------------------------------------------------------------


def test_calibration_setting_is_parsed_and_checked() -> None:
    assert parse_calibration("labels") is None
    assert parse_calibration("none") == 0
    assert parse_calibration("semi:25") == 25
    for bad in ("semi", "semi:-1", "semi:x", "some", ""):
        with pytest.raises(ConfigError, match="labels"):
            EvalConfig(calibration=bad)


def test_cli_label_free_curves(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "c.duckdb"
    demo = ["--db", str(db), "demo", "--problems", "60", "--samples", "16", "--name", "d"]
    assert cli_main([*demo, "--quiet"]) == 0
    capsys.readouterr()
    args = ["--db", str(db), "curves", "d", "--llm", "sim-llm-C", "--verifier", "sim-grm-orm"]
    assert cli_main([*args, "--calibration", "none", "--strategy", "posterior_vote"]) == 0
    out = " ".join(capsys.readouterr().out.split())  # prose wraps at 100 columns
    assert "label-free calibration" in out and "EM converged" in out
    assert cli_main([*args, "--calibration", "semi:bad"]) != 0
    err = capsys.readouterr()
    assert "semi:K" in err.err + err.out and "Traceback" not in err.err


# --------------------------------------------------------------------------------------
# a signal with a problem effect (conditional independence broken)
# --------------------------------------------------------------------------------------


def _with_problem_effect(pair: PairData, sd: float, seed: int = 0) -> PairData:
    """`pair` with a shared per-problem shift of the logit score, larger for problems
    with fewer correct responses (as response length is for hard problems)."""
    rng = np.random.default_rng(seed)
    shift = rng.normal(0.0, sd, pair.n_problems) - 2.0 * sd * (1.0 - pair.share_correct())
    x = np.log(pair.score) - np.log1p(-pair.score) + shift[pair.problem_index()]
    return replace(pair, score=1.0 / (1.0 + np.exp(-x)))


def test_problem_effect_is_measured_without_labels() -> None:
    from core.methods.latent import ICC_MIN, problem_effect

    pair = make_pair(n_problems=150, seed=11)
    params = StrategyParams(transform="identity")
    clean = fit_latent(pair, latent_scores(pair, params))
    assert clean.icc[0] <= ICC_MIN and not any(clean.ignored)
    shifted = _with_problem_effect(pair, 2.0)
    fit = fit_latent(shifted, latent_scores(shifted, params))
    assert fit.icc[0] > 0.3 and fit.ignored == (True,)
    assert "problem effect" in fit.report()
    # measured on the true labels, it is as large (the soft labels are not the cause)
    x = latent_scores(shifted, params)
    assert problem_effect(shifted, x, shifted.correct.astype(float)) > 0.3
    # scrambling the labels changes nothing here either
    again = fit_latent(_scrambled(shifted), latent_scores(shifted, params))
    np.testing.assert_array_equal(fit.soft, again.soft)


def test_a_problem_effect_does_not_sink_the_label_free_vote() -> None:
    """With the shared effect counted once per response, EM would call the answers of hard
    problems wrong; left out of the inference of labels, the label-free vote stays near
    majority vote instead of far below it."""
    pair = _with_problem_effect(make_pair(n_problems=150, n=16, seed=12), 2.5)
    cfg = EvalConfig(calibration="none", budgets=(8, 16), n_subsets=30)
    cf = crossfit_strategies(pair, ["majority", "posterior_vote"], cfg)
    cs = evaluate(pair, cf.inputs, cfg)
    acc = cs.per_problem.mean(axis=-1)
    assert np.all(acc[1] >= acc[0] - 0.03), acc
    assert any("problem effect" in n for n in cf.notes)


def test_combine_with_label_free_calibration_reads_no_label(sim_store: Store) -> None:
    from core.cli import DEMO_NAME
    from core.studies.combine import load_multi

    info = sim_store.get_dataset(DEMO_NAME)
    mp = load_multi(sim_store, info, "sim-llm-C", ["sim-grm-orm", "sim-shepherd-last"])
    cfg = EvalConfig(calibration="none", budgets=(8,), n_subsets=20)
    a = combined_inputs(mp, cfg)
    b = combined_inputs(MultiPair(_scrambled(mp.base), mp.verifiers, mp.scores), cfg)
    assert set(a) == set(b) and {"sum_llr", "logistic", "latent_pv"} <= set(a)
    for name in a:
        np.testing.assert_array_equal(a[name].weight, b[name].weight, err_msg=name)
    # with labels, the labelled combiners do read them
    lab = combined_inputs(MultiPair(_scrambled(mp.base), mp.verifiers, mp.scores), EvalConfig())
    assert not np.allclose(lab["sum_llr"].weight, a["sum_llr"].weight)


def test_transfer_and_exported_fits_follow_the_calibration_setting() -> None:
    from core.studies.transfer import transfer_inputs

    source, target = make_pair(n_problems=90, seed=21), make_pair(n_problems=60, seed=22)
    cfg = EvalConfig(calibration="none")
    for name in ("kde_wv", "posterior_vote", "logit_wv"):
        a = transfer_inputs(source, target, name, cfg)
        b = transfer_inputs(_scrambled(source), target, name, cfg)
        np.testing.assert_array_equal(a.weight, b.weight, err_msg=name)
    lab = transfer_inputs(_scrambled(source), target, "kde_wv", EvalConfig())
    assert not np.allclose(
        lab.weight, transfer_inputs(source, target, "kde_wv", EvalConfig()).weight
    )


def test_when_label_free_calibration_is_refused_nothing_reads_the_labels() -> None:
    """One response per problem: EM refuses, and the strategies that need no labels must
    not estimate their direction from the labels instead."""
    base = make_pair(n_problems=40, n=1, seed=31)
    cfg = EvalConfig(calibration="none", budgets=(1,), n_subsets=5)
    names = ["majority", "best_of_n", "vanilla_wv", "kde_wv"]
    a = crossfit_strategies(base, names, cfg)
    b = crossfit_strategies(_scrambled(base), names, cfg)
    assert "kde_wv" in a.skipped and "two or more responses" in a.skipped["kde_wv"]
    for name in ("best_of_n", "vanilla_wv"):
        np.testing.assert_array_equal(a.inputs[name].weight, b.inputs[name].weight)


def test_semi_supervised_with_few_unlabelled_problems_still_fits() -> None:
    pair = make_pair(n_problems=60, seed=32)
    cfg = EvalConfig(calibration="semi:40", budgets=(4,), n_subsets=10)  # 8 unlabelled
    cf = crossfit_strategies(pair, ["kde_wv", "posterior_vote"], cfg)
    assert not cf.skipped, cf.skipped


def test_weak_supervision_reads_reversed_signals_the_right_way(sim_store: Store) -> None:
    from core.cli import DEMO_NAME
    from core.studies.combine import load_multi, weak_inputs

    info = sim_store.get_dataset(DEMO_NAME)
    mp = load_multi(sim_store, info, "sim-llm-D", ["sim-grm-orm", "sim-internlm2-orm"])
    flipped = MultiPair(mp.base, mp.verifiers, 1.0 - mp.scores)  # lower is now better
    for m in (mp, flipped):
        w = weak_inputs(m, StrategyParams()).weight
        assert np.corrcoef(w, m.base.correct.astype(float))[0, 1] > 0.2
