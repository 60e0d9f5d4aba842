"""Early-stopping replay (core.evaluation.stopping): hand-worked stops, the posterior
stop's "none is correct" term against an independent formula, savings at equal accuracy."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.evaluation import stopping as S
from core.evaluation.engine import make_subsets
from core.methods.posterior import AnswerPrior
from core.types import PairData, VoteInputs


def one_problem(
    answers: list[int],
    correct_answer: int,
    tokens: list[float] | None = None,
    scores: list[float] | None = None,
) -> PairData:
    n = len(answers)
    return PairData(
        dataset_id="d",
        llm="m",
        verifier="v",
        problem_ids=("p",),
        offsets=np.array([0, n], dtype=np.int64),
        cluster=np.array(answers, dtype=np.int64),
        score=np.array(scores if scores is not None else [0.5] * n, dtype=np.float64),
        correct=np.array([a == correct_answer for a in answers], dtype=bool),
        sample_idx=np.arange(n, dtype=np.int64),
        n_tokens=np.array(tokens if tokens is not None else [10.0] * n, dtype=np.float64),
    )


def in_order(pair: PairData):  # type: ignore[no-untyped-def]
    return make_subsets(pair, order="sample")


def test_adaptive_consistency_stops_where_the_beta_criterion_first_holds() -> None:
    # counts (lead, second) after each response: (1,0) (2,0) (2,1) (3,1) (4,1) (5,1)
    # P[Beta(v1+1, v2+1) > 1/2] = P[Bin(v1+v2+1, 1/2) <= v2]: .75 .875 .6875 .8125 .8906 .9375
    pair = one_problem([0, 0, 1, 0, 0, 0, 0, 0], correct_answer=0, tokens=[1, 2, 3, 4, 5, 6, 7, 8])
    c = S.replay(
        pair, "adaptive-consistency", in_order(pair), thresholds=[0.7, 0.87, 0.88, 0.9, 0.95]
    )
    assert c.samples[:, 0].tolist() == [1, 2, 5, 6, 7]
    assert c.tokens[:, 0].tolist() == [1, 3, 15, 21, 28]
    assert c.credit[:, 0].tolist() == [1, 1, 1, 1, 1]
    table = S.ac_table(8)
    assert table[2, 1] == pytest.approx(0.6875) and table[5, 1] == pytest.approx(0.9375)
    assert table[6, 1] == pytest.approx(1 - 9 / 256)  # P[Bin(8, 1/2) >= 7]


def test_esc_stops_at_the_first_unanimous_window_and_answers_it() -> None:
    # windows of 2: (1,0) (1,1) -> stops at 4 with answer 1, which is wrong
    pair = one_problem([1, 0, 1, 1, 0, 0, 0, 0], correct_answer=0)
    c = S.replay(pair, "esc", in_order(pair), thresholds=[1, 2, 3, 8])
    assert c.samples[:, 0].tolist() == [1, 4, 8, 8]
    # w=1: the first answer (wrong); w=2: the window's answer (wrong); w=3: no unanimous
    # window, so the cap's majority (0: five of eight); w=8: the cap too
    assert c.credit[:, 0].tolist() == [0, 0, 1, 1]


def test_a_tie_at_the_cap_gets_fractional_credit() -> None:
    pair = one_problem([0, 1, 0, 1], correct_answer=1)
    c = S.replay(pair, "adaptive-consistency", in_order(pair), thresholds=[0.999])
    assert c.samples[0, 0] == 4 and c.credit[0, 0] == pytest.approx(0.5)


def two_problems(
    answers: list[int], correct_answer: int, scores: list[float], reference: list[float]
) -> PairData:
    """Problem "p" as given, and a reference problem "r" whose scores set the confidence
    scale (a response's confidence is its score's rank among the other problems')."""
    n, m = len(answers), len(reference)
    return PairData(
        dataset_id="d",
        llm="m",
        verifier="v",
        problem_ids=("p", "r"),
        offsets=np.array([0, n, n + m], dtype=np.int64),
        cluster=np.array([*answers, *([0] * m)], dtype=np.int64),
        score=np.array([*scores, *reference], dtype=np.float64),
        correct=np.array([a == correct_answer for a in answers] + [True] * m, dtype=bool),
        sample_idx=np.concatenate([np.arange(n), np.arange(m)]).astype(np.int64),
        n_tokens=np.full(n + m, 10.0),
    )


def test_confidence_is_the_rank_among_other_problems_only() -> None:
    pair = two_problems([0, 1, 0], 0, [0.2, 0.6, 0.9], reference=[0.1, 0.5, 0.5, 0.8])
    conf = S._confidence(pair)
    # 0.2: above 1 of the 4 reference scores -> (1 + 0.5) / 5; 0.6: above 3 -> 3.5 / 5;
    # 0.9: above all 4 -> 4.5 / 5. The reference: ranked among problem p's 3 scores.
    np.testing.assert_allclose(conf[:3], [1.5 / 5, 3.5 / 5, 4.5 / 5])
    np.testing.assert_allclose(conf[3:], [0.5 / 4, 1.5 / 4, 1.5 / 4, 2.5 / 4])


def test_confidence_stop_leaves_out_low_confidence_responses() -> None:
    # warm-up of 4; the lowest-scored response (answer 1) falls below the warm-up's 10 %
    # quantile and is left out, so answer 0 holds 100 % after the warm-up
    pair = two_problems(
        [1, 0, 0, 0, 2, 2], 0, [0.1, 0.5, 0.6, 0.7, 0.9, 0.95], reference=[0.05, 0.3, 0.65, 0.8]
    )
    c = S.replay(pair, "confidence", in_order(pair), thresholds=[0.99])
    assert c.samples[0, 0] == S.WARMUP and c.credit[0, 0] == 1.0


def _log_eppf(sizes: list[int], d: float, alpha: float) -> float:
    """Pitman-Yor EPPF of a partition, written out as the product it is."""
    if not sizes:
        return 0.0
    k, m = len(sizes), sum(sizes)
    out = sum(math.log(alpha + i * d) for i in range(1, k))
    out -= sum(math.log(alpha + i) for i in range(1, m))
    for n in sizes:
        out += sum(math.log(j - d) for j in range(1, n))
    return out


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


@pytest.mark.parametrize("sizes", [[5], [3, 2], [4, 1, 1], [1, 1, 1, 1], [2, 2, 1, 3]])
def test_posterior_odds_against_none_match_the_model(sizes: list[int]) -> None:
    prior = AnswerPrior(a=1.7, b=2.3, discount=0.3, concentration=0.8)
    n_total, m = sum(sizes), len(sizes)
    h = prior.size_table(10)
    z = prior.none_table(10)
    none = _log_beta(prior.a, prior.b + n_total) + _log_eppf(sizes, 0.3, 0.8)
    for c, n_c in enumerate(sizes):
        others = sizes[:c] + sizes[c + 1 :]
        a_correct = _log_beta(prior.a + n_c, prior.b + n_total - n_c) + _log_eppf(others, 0.3, 0.8)
        assert h[n_c, n_total] - z[m, n_total] == pytest.approx(a_correct - none, abs=1e-9)


def test_fixed_cost_in_tokens_is_the_expected_subset_total() -> None:
    pair = one_problem([0, 1, 0], 0, tokens=[10, 20, 60])
    assert S.fixed_cost(pair, [1, 2, 8], "tokens")[:, 0].tolist() == pytest.approx([30, 60, 90])
    assert S.fixed_cost(pair, [1, 2, 8], "samples")[:, 0].tolist() == [1, 2, 3]


def test_cost_at_accuracy_interpolates_and_says_when_never_reached() -> None:
    acc = np.array([0.5, 0.6, 0.8])
    cost = np.array([1.0, 2.0, 4.0])
    assert S.cost_at_accuracy(acc, cost, 0.7) == pytest.approx(3.0)
    assert S.cost_at_accuracy(acc, cost, 0.4) == pytest.approx(1.0)
    assert math.isnan(S.cost_at_accuracy(acc, cost, 0.81))


def test_saving_against_a_reference_with_paired_interval() -> None:
    rng = np.random.default_rng(0)
    p = 400
    # two thresholds: the second reaches the reference's accuracy at 8 of its 32 samples
    credit = np.vstack([rng.random(p) < 0.5, rng.random(p) < 0.8]).astype(float)
    curve = S.StopCurve(
        "esc",
        (1.0, 2.0),
        32,
        credit,
        np.vstack([np.full(p, 4.0), np.full(p, 8.0)]),
        np.full((2, p), np.nan),
    )
    ref = credit[1].copy()  # the same problems right: same accuracy
    sv = S.saving(curve, ref, np.full(p, 32.0), n_boot=300)
    assert sv.cost == pytest.approx(8.0) and sv.saved == pytest.approx(0.75)
    assert sv.cost_low <= 8.0 <= sv.cost_high and sv.saved_low <= 0.75 <= sv.saved_high
    assert sv.unreached_share == 0.0
    worse = S.saving(curve, np.ones(p), np.full(p, 32.0), n_boot=100)
    assert math.isnan(worse.cost) and worse.unreached_share == 1.0


def test_rules_reject_what_they_cannot_run() -> None:
    pair = one_problem([0, 1], 0)
    with pytest.raises(S.StoppingError, match="unknown stopping rule"):
        S.replay(pair, "nope", in_order(pair))
    with pytest.raises(S.StoppingError, match="posterior vote"):
        S.replay(pair, "posterior", in_order(pair))
    with pytest.raises(S.StoppingError, match="whole numbers"):
        S.replay(pair, "esc", in_order(pair), thresholds=[1.5])


# --------------------------------------------------------------------------------------
# against the fixed-N engine, and on a stored pair
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_pair(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from core.evaluation.config import EvalConfig
    from core.evaluation.pipeline import crossfit_strategies, load_pair
    from core.store import Store
    from core.synth.demo import DEMO_NAME, build_demo

    with Store(tmp_path_factory.mktemp("stop") / "d.duckdb") as s:
        build_demo(s, n_problems=80, n_samples=16, seed=3)
        pair = load_pair(s, s.get_dataset(DEMO_NAME), "sim-llm-D", "sim-qwen-orm", "stored")
    cf = crossfit_strategies(pair, ["majority", "posterior_vote"], EvalConfig(n_subsets=40))
    return pair, cf.inputs


def test_a_rule_that_never_stops_early_is_fixed_n_majority_at_its_cap(demo_pair) -> None:  # type: ignore[no-untyped-def]
    """The replay walks the fixed-N curves' own orders: with a threshold no count can meet,
    Adaptive-Consistency capped at N is majority vote at N, problem by problem, at every
    budget up to the full one."""
    from core.evaluation.engine import accuracy_curves

    pair, inputs = demo_pair
    budgets = (1, 2, 3, 4, 8, 16)
    subsets = make_subsets(pair, budgets, n_subsets=40, seed=5)
    fixed = accuracy_curves(pair, {"majority": inputs["majority"]}, subsets=subsets)
    for b_i, cap in enumerate(budgets):
        c = S.replay(pair, "adaptive-consistency", subsets, cap=cap, thresholds=[2.0])
        np.testing.assert_allclose(c.samples[0], np.minimum(cap, pair.sizes()))
        if cap == 1:
            # the engine's N = 1 is exact (each problem's share of correct responses); the
            # replay's is the mean over its 40 first draws
            assert abs(c.accuracy[0] - fixed.per_problem[0, b_i].mean()) < 0.03
        else:
            np.testing.assert_allclose(c.credit[0], fixed.per_problem[0, b_i], atol=1e-12)


def test_posterior_stop_at_its_cap_is_the_posterior_vote(demo_pair) -> None:  # type: ignore[no-untyped-def]
    from core.evaluation.engine import accuracy_curves

    pair, inputs = demo_pair
    subsets = make_subsets(pair, (4, 16), n_subsets=40, seed=5)
    fixed = accuracy_curves(pair, {"pv": inputs["posterior_vote"]}, subsets=subsets)
    for b_i, cap in enumerate((4, 16)):
        c = S.replay(
            pair,
            "posterior",
            subsets,
            cap=cap,
            thresholds=[1.5],
            calibrated=inputs["posterior_vote"],
        )
        np.testing.assert_allclose(c.credit[0], fixed.per_problem[0, b_i], atol=1e-9)
    # a strict threshold saves samples at (nearly) the full vote's accuracy
    c = S.replay(
        pair, "posterior", subsets, thresholds=[0.999], calibrated=inputs["posterior_vote"]
    )
    assert c.mean_samples[0] < 16
    assert c.accuracy[0] >= fixed.per_problem[0, 1].mean() - 0.03


def test_cli_stopping_prints_curves_and_savings(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from core.cli import main
    from core.store import Store
    from core.synth.demo import DEMO_NAME, build_demo

    db = tmp_path / "s.duckdb"
    with Store(db) as s:
        build_demo(s, n_problems=40, n_samples=16)
    csv = tmp_path / "stop.csv"
    rc = main(
        [
            "--db",
            str(db),
            "stopping",
            DEMO_NAME,
            "--llm",
            "sim-llm-C",
            "--verifier",
            "sim-qwen-orm",
            "--reference-budget",
            "8",
            "--csv",
            str(csv),
            "--quiet",
            "--subsets",
            "20",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0
    for label in ("Adaptive-Consistency", "ESC", "confidence stop", "calibrated posterior stop"):
        assert label in out
    assert "at the accuracy of fixed N = 8, less 0.5 points" in out
    assert "tokens" in out and "Majority vote at N = 8" in out
    import pandas as pd

    df = pd.read_csv(csv)
    assert set(df["kind"]) == {"stopping rule", "fixed N"}
    assert (df["low"] <= df["accuracy"] + 1e-12).all() and (
        df["accuracy"] <= df["high"] + 1e-12
    ).all()


def test_curves_against_tokens_and_flops(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    import pandas as pd

    from core.cli import main
    from core.evaluation.pipeline import load_pair
    from core.store import Store
    from core.synth.demo import DEMO_NAME, build_demo

    db = tmp_path / "x.duckdb"
    with Store(db) as s:
        build_demo(s, n_problems=30, n_samples=8)
        pair = load_pair(s, s.get_dataset(DEMO_NAME), "sim-llm-A", "sim-qwen-orm", "stored")
    per_problem = [
        pair.n_tokens[a:b].mean() for a, b in zip(pair.offsets[:-1], pair.offsets[1:], strict=True)
    ]
    base = [
        "--db",
        str(db),
        "curves",
        DEMO_NAME,
        "--llm",
        "sim-llm-A",
        "--verifier",
        "sim-qwen-orm",
        "--strategy",
        "majority",
        "--quiet",
        "--subsets",
        "10",
    ]
    csv = tmp_path / "c.csv"
    assert main([*base, "--x", "flops", "--params", "sim-llm-A=7", "--csv", str(csv)]) == 0
    out = capsys.readouterr().out
    assert "FLOPs)" in out
    df = pd.read_csv(csv)
    row = df[df["budget"] == 4].iloc[0]
    # expected tokens of 4 responses: 4 x each problem's mean, averaged over problems
    assert row["mean_tokens"] == pytest.approx(4 * float(np.mean(per_problem)), rel=1e-9)
    assert row["flops"] == pytest.approx(2 * 7e9 * row["mean_tokens"], rel=1e-9)
    assert main([*base, "--x", "flops"]) == 0
    assert "give --params sim-llm-A=BILLIONS" in capsys.readouterr().out
    assert main([*base, "--x", "tokens"]) == 0
    assert " tok)" in capsys.readouterr().out
    assert main([*base, "--x", "flops", "--params", "sim-llm-A=-1"]) != 0
    assert "LLM=BILLIONS" in capsys.readouterr().err


def test_full_majority_is_the_vote_over_every_sample() -> None:
    from core.evaluation.stopping import full_majority

    # problem 1: answer 0 (right) wins 3-2; problem 2: a 2-2 tie between right and wrong
    pair = PairData(
        "d",
        "m",
        "v",
        ("a", "b"),
        np.array([0, 5, 9], dtype=np.int64),
        np.array([0, 0, 0, 1, 1, 0, 0, 1, 1], dtype=np.int64),
        np.zeros(9),
        np.array([1, 1, 1, 0, 0, 1, 1, 0, 0], dtype=bool),
        np.array([0, 1, 2, 3, 4, 0, 1, 2, 3], dtype=np.int64),
        np.full(9, np.nan),
    )
    assert full_majority(pair) == pytest.approx((1.0 + 0.5) / 2)


# --------------------------------------------------------------------------------------
# no rule peeks at responses it has not drawn; thresholds that never fire
# --------------------------------------------------------------------------------------


def _random_problem(rng: np.random.Generator, n: int) -> tuple[list[int], list[float], list[float]]:
    answers = [int(a) for a in rng.choice(4, size=n, p=[0.55, 0.25, 0.15, 0.05])]
    scores = [float(x) for x in np.round(rng.random(n), 2)]
    tokens = [float(x) for x in rng.integers(50, 500, size=n)]
    return answers, scores, tokens


def _pair_with(answers: list[int], scores: list[float], tokens: list[float]) -> PairData:
    n = len(answers)
    ref = [0.1, 0.3, 0.5, 0.7, 0.9]
    uniq = {a: i for i, a in enumerate(dict.fromkeys(answers))}  # dense cluster ids
    return PairData(
        "d",
        "m",
        "v",
        ("p", "r"),
        np.array([0, n, n + len(ref)], dtype=np.int64),
        np.array([uniq[a] for a in answers] + [0] * len(ref), dtype=np.int64),
        np.array(scores + ref, dtype=np.float64),
        np.array([a == 0 for a in answers] + [True] * len(ref), dtype=bool),
        np.concatenate([np.arange(n), np.arange(len(ref))]).astype(np.int64),
        np.array(tokens + [1.0] * len(ref), dtype=np.float64),
    )


def _calibrated(pair: PairData, rng: np.random.Generator) -> VoteInputs:
    from core.methods.posterior import AnswerPrior, size_inputs

    return size_inputs(
        rng.normal(0.0, 1.5, pair.n_responses), AnswerPrior(1.5, 1.0, 0.3, 1.0), pair
    )


@pytest.mark.parametrize("rule", list(S.RULES))
def test_no_rule_reads_a_response_after_it_stopped(rule: str) -> None:
    """Replay, then change everything about the responses after the stop (answers,
    correctness, scores, weights, tokens): the decision, samples and tokens stay put."""
    rng = np.random.default_rng(11)
    stops_seen = set()
    for _ in range(30):
        n = 12
        answers, scores, tokens = _random_problem(rng, n)
        pair = _pair_with(answers, scores, tokens)
        cal = _calibrated(pair, rng)
        thresholds = list(S.RULES[rule].thresholds)
        c = S.replay(pair, rule, in_order(pair), calibrated=cal, thresholds=thresholds)
        for j, stop in enumerate(c.samples[:, 0].astype(int)):
            if stop >= n:
                continue
            stops_seen.add(stop)
            later = n - stop
            new_answers = answers[:stop] + [9] * later  # a new wrong answer
            new_scores = scores[:stop] + [float(x) for x in rng.random(later)]
            new_tokens = tokens[:stop] + [1e6] * later
            changed = _pair_with(new_answers, new_scores, new_tokens)
            w = np.asarray(cal.weight).copy()
            w[stop:n] = rng.normal(0.0, 5.0, later)
            cal2 = VoteInputs(
                weight=w,
                size_tables=cal.size_tables,
                size_index=cal.size_index,
                none_tables=cal.none_tables,
            )
            c2 = S.replay(
                changed, rule, in_order(changed), calibrated=cal2, thresholds=[thresholds[j]]
            )
            assert c2.samples[0, 0] == stop
            assert c2.credit[0, 0] == pytest.approx(c.credit[j, 0])
            assert c2.tokens[0, 0] == pytest.approx(c.tokens[j, 0])
    assert len(stops_seen) >= 2  # the check covered stops at several points


def test_thresholds_that_never_fire_end_on_the_full_vote_at_the_cap(demo_pair) -> None:  # type: ignore[no-untyped-def]
    """ESC with a window longer than the cap, and the confidence stop with tau > 1, replay
    to the cap: ESC ends on majority vote (the engine's, on the same subsets), and the
    confidence stop on its filtered, confidence-weighted vote over the first `cap`
    responses (computed here from the definition)."""
    from core.evaluation.engine import accuracy_curves

    pair, inputs = demo_pair
    subsets = make_subsets(pair, (4, 8), n_subsets=10, seed=1)
    fixed = accuracy_curves(pair, {"majority": inputs["majority"]}, subsets=subsets)
    conf = S._confidence(pair)
    for b_i, cap in enumerate((4, 8)):
        esc = S.replay(pair, "esc", subsets, cap=cap, thresholds=[float(cap + 1)])
        np.testing.assert_allclose(esc.credit[0], fixed.per_problem[0, b_i], atol=1e-12)
        cf = S.replay(pair, "confidence", subsets, cap=cap, thresholds=[1.5])
        expected = np.zeros(pair.n_problems)
        for p in range(pair.n_problems):
            lo = int(pair.offsets[p])
            for perm in subsets.permutations(p, cap):
                rows = lo + perm
                c = conf[rows]
                floor = np.percentile(c[: min(S.WARMUP, len(c))], 100 * S.CONF_QUANTILE)
                keep = c >= floor
                tot: dict[int, float] = {}
                for r, k in zip(rows, keep, strict=True):
                    tot.setdefault(int(pair.cluster[r]), 0.0)
                    if k:
                        tot[int(pair.cluster[r])] += conf[r]
                best = max(tot.values())
                tied = [a for a, v in tot.items() if v >= best - 1e-9]
                right = [bool(pair.correct[rows][pair.cluster[rows] == a].any()) for a in tied]
                expected[p] += np.mean(right) / subsets.n_subsets
        np.testing.assert_allclose(cf.credit[0], expected, atol=1e-9)
        np.testing.assert_allclose(cf.samples[0], np.minimum(cap, pair.sizes()))


@pytest.mark.parametrize("rule", list(S.RULES))
def test_replay_kernel_equals_the_plain_python_reference(rule: str, demo_pair) -> None:  # type: ignore[no-untyped-def]
    from tests import reference

    pair, inputs = demo_pair
    problems = list(range(12))
    sub = pair.select(problems)
    subsets = make_subsets(sub, n_subsets=8, seed=4)
    cal = inputs["posterior_vote"]
    rows = pair.rows(problems)
    cal_sub = VoteInputs(
        weight=np.asarray(cal.weight)[rows],
        size_tables=cal.size_tables,
        size_index=np.asarray(cal.size_index)[rows],
        none_tables=cal.none_tables,
    )
    thresholds = list(S.RULES[rule].thresholds)
    got = S.replay(sub, rule, subsets, thresholds=thresholds, calibrated=cal_sub)
    if rule == "posterior":
        weight = list(np.asarray(cal_sub.weight))
        fold = [int(np.asarray(cal_sub.size_index)[sub.offsets[p]]) for p in range(sub.n_problems)]
        h = [np.asarray(cal_sub.size_tables)[t].tolist() for t in fold]
        z = [np.asarray(cal_sub.none_tables)[t].tolist() for t in fold]
    else:
        weight = list(S._confidence(sub)) if rule == "confidence" else [0.0] * sub.n_responses
        h = z = None
    ref = reference.stopping_replay(sub, rule, subsets, thresholds, weight, 16, h=h, z=z)
    for p in range(sub.n_problems):
        for j in range(len(thresholds)):
            c, s, tok = ref[p][j]
            assert got.credit[j, p] == pytest.approx(c, abs=1e-9), (p, j)
            assert got.samples[j, p] == pytest.approx(s, abs=1e-9), (p, j)
            assert got.tokens[j, p] == pytest.approx(tok, rel=1e-9), (p, j)


def test_efficiency_is_also_stated_in_tokens(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from core.evaluation.config import EvalConfig
    from core.info.budget import budget_view
    from core.reports import efficiency_sentence
    from core.store import Store
    from core.synth.demo import DEMO_NAME, build_demo

    with Store(tmp_path / "e.duckdb") as s:
        build_demo(s, n_problems=40, n_samples=16)
        info = s.get_dataset(DEMO_NAME)
        view = budget_view(
            s,
            info,
            [("sim-llm-C", "sim-qwen-orm")],
            ["majority", "logit_wv"],
            EvalConfig(n_subsets=20, n_boot=100),
            efficiency=("logit_wv", "majority"),
        )
    (e,) = view.efficiencies
    assert e.result.reached and e.tokens is not None
    tok = view.tokens[0]
    assert tok is not None
    budgets = np.log2(np.asarray(view.budgets, dtype=float))
    used, ref = e.tokens
    assert ref == pytest.approx(float(np.interp(np.log2(e.ref_budget), budgets, tok)))
    assert used == pytest.approx(float(np.interp(np.log2(e.result.budget), budgets, tok)))
    assert used < ref
    assert f"in tokens, {used:,.0f} instead of {ref:,.0f} per problem" in efficiency_sentence(e)


def test_fixed_n_references_are_the_pairs_budget_curves(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """One result for one question: the Adaptive page's fixed-N curves are the budget
    curves the budget pages and the background warm-up cache, not a second computation;
    a replay only adds its rules (and the posterior vote it reads)."""
    from core.cli import DEMO_NAME, build_demo
    from core.evaluation.config import EvalConfig
    from core.evaluation.pipeline import pair_curves
    from core.methods.registry import default_strategies
    from core.store import Store
    from core.studies.stopping import pair_stopping

    config = EvalConfig(budgets=(1, 2, 4, 8), n_subsets=20)
    with Store(tmp_path / "s.duckdb") as store:
        build_demo(store, n_problems=40, n_samples=8)
        info = store.get_dataset(DEMO_NAME)
        m, v = "sim-llm-C", "sim-qwen-orm"
        curves = pair_curves(store, info, m, v, default_strategies(simulated=True), config)
        assert not curves.from_cache and store.cache_kinds() == {"pair_curves": 1}
        res = pair_stopping(store, info, m, v, ["esc", "posterior"], config)
        assert store.cache_kinds() == {"pair_curves": 1, "stopping": 1}
        assert res.fixed.strategies == (
            "majority", "linear_wv", "logit_wv", "kde_wv", "posterior_vote",
        )  # fmt: skip
        for s in res.fixed.strategies:
            np.testing.assert_array_equal(
                res.fixed.per_problem[res.fixed.index(s)],
                curves.curves.per_problem[curves.curves.index(s)],
            )
        assert [c.rule for c in res.curves] == ["esc", "posterior"]
        again = pair_stopping(store, info, m, v, ["esc", "posterior"], config)
        assert again.from_cache and store.cache_kinds() == {"pair_curves": 1, "stopping": 1}
        # a pair with nothing cached: the replay computes (and caches) its budget curves
        pair_stopping(store, info, "sim-llm-A", v, ["esc"], config)
        assert store.cache_kinds() == {"pair_curves": 2, "stopping": 2}


def test_a_saving_without_a_lower_end_reads_minus_infinity() -> None:
    """Where the rule never reaches the target in some resamples it spends without bound:
    the saving's interval starts at −∞ (it read '-inf')."""
    from core.reports import saving_text

    s = S.Saving(
        rule="confidence",
        unit="samples",
        reference="majority",
        target_accuracy=0.8,
        reference_cost=32.0,
        cost=9.0,
        cost_low=4.0,
        cost_high=math.inf,
        saved=1 - 9 / 32,
        saved_low=-math.inf,
        saved_high=1 - 4 / 32,
        unreached_share=0.1,
    )
    text = saving_text(s, 32, "stop when confident")
    assert text.endswith("saves 72% [−∞, 88%]"), text
    assert "[4.0, never]" in text and "-inf" not in text
    bounded = saving_text(
        S.Saving(**{**s.__dict__, "cost_high": 20.0, "saved_low": 1 - 20 / 32}), 32, "r"
    )
    assert bounded.endswith("saves 72% [38%, 88%]"), bounded
