"""Tests of the simulated benchmark (core.synth.simulate) and its parameter fit
(core.synth.sim_fit).

The statistical tests compare what sampling from the simulator gives with quantities computed
another way (the stated closed-form likelihood ratio, scipy's Beta distribution, the exact
Pitman-Yor expectation, the real-data targets stored in data/sim_params.json). Tolerances are
multiples of standard errors worked out in each test, with fixed seeds; each test also checks a
deliberately broken input or a second statistic so that it can fail.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

from core.synth.simulate import (
    DEFAULT_PARAMS_PATH,
    SIMULATED_TAG,
    SimParams,
    SimParamsError,
    SimulatedBenchmark,
    crp_expected_distinct,
    load_params,
    shared_data_dir,
    simulate,
)

LLMS = ("sim-llm-A", "sim-llm-B", "sim-llm-C", "sim-llm-D", "sim-llm-E")
VERIFIERS = (
    "sim-shepherd-last",
    "sim-shepherd-min",
    "sim-qwen-orm",
    "sim-internlm2-orm",
    "sim-grm-orm",
    "sim-reasoneval34b-min",
    "sim-easy2hard-last",
)


@pytest.fixture(scope="module")
def params() -> SimParams:
    return load_params()


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    out: dict[str, Any] = json.loads(DEFAULT_PARAMS_PATH.read_text(encoding="utf-8"))
    return out


@pytest.fixture(scope="module")
def small(params: SimParams) -> SimulatedBenchmark:
    return simulate(seed=3, n_problems=40, n_samples=12, params=params)


@pytest.fixture(scope="module")
def big(params: SimParams) -> SimulatedBenchmark:
    """Two LLMs with balanced classes, all verifiers: 76,800 responses per pair."""
    return simulate(
        seed=11, n_problems=1200, n_samples=64, llms=["sim-llm-D", "sim-llm-C"], params=params
    )


_PAIR_CACHE: dict[tuple[int, str, str], pd.DataFrame] = {}


def _pair(bench: SimulatedBenchmark, llm: str, verifier: str) -> pd.DataFrame:
    """Scores of one pair joined (by pandas merge, not the simulator's layout) to correctness."""
    key = (id(bench), llm, verifier)
    if key not in _PAIR_CACHE:
        if len(_PAIR_CACHE) > 64:
            _PAIR_CACHE.clear()
        s = bench.scores[(bench.scores["llm"] == llm) & (bench.scores["verifier"] == verifier)]
        r = bench.responses[bench.responses["llm"] == llm]
        out = s.merge(r, on=["llm", "problem_id", "sample_idx"], validate="one_to_one")
        assert len(out) == len(s) == len(r)
        _PAIR_CACHE[key] = out
    return _PAIR_CACHE[key]


# ------------------------------------------------------------------------------------------
# parameters and provenance
# ------------------------------------------------------------------------------------------


def test_parameter_file_is_labelled_and_has_provenance(doc: dict[str, Any]) -> None:
    assert doc["simulated"] is True
    assert doc["schema_version"] == 1
    groups: list[dict[str, Any]] = list(doc["problems"].values())
    for d in doc["llms"].values():
        groups += [d["accuracy"], d["wrong_answers"], d["tokens"]]
    for d in doc["verifiers"].values():
        groups += [d["score_model"], d["llm_effects"]] + ([d["steps"]] if "steps" in d else [])
    assert len(groups) == 3 + 3 * 5 + 2 * 7 + 4
    for g in groups:
        assert g["source"] and all("../shared/data/" in s for s in g["source"])
        assert len(g["statistic"]) > 20
        assert len(g["fitted_on"]) == 10  # ISO date
    assert tuple(doc["llms"]) == LLMS
    assert tuple(doc["verifiers"]) == VERIFIERS


def _compare(a: Any, b: Any, path: str = "") -> list[str]:
    """Differences between two JSON trees (floats to a tolerance, dates ignored)."""
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return [f"{path}: keys {sorted(set(a) ^ set(b))}"]
        return [m for k in a if k != "fitted_on" for m in _compare(a[k], b[k], f"{path}/{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: lengths {len(a)} != {len(b)}"]
        return [
            m
            for i, (x, y) in enumerate(zip(a, b, strict=True))
            for m in _compare(x, y, f"{path}[{i}]")
        ]
    if isinstance(a, bool) or isinstance(b, bool) or isinstance(a, str) or a is None:
        return [] if a == b else [f"{path}: {a!r} != {b!r}"]
    if isinstance(a, int | float) and isinstance(b, int | float):
        return [] if math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-6) else [f"{path}: {a} != {b}"]
    return [f"{path}: types {type(a).__name__} != {type(b).__name__}"]


@pytest.mark.realdata
def test_refit_from_shared_data_reproduces_committed_parameters(doc: dict[str, Any]) -> None:
    root = shared_data_dir()
    # the shared data sits beside every checkout (and CI's): its absence is a failure
    assert (root / "SOURCES.md").is_file(), f"real data not found at {root}"
    from core.synth.sim_fit import fit_params

    refit = fit_params(root)
    assert _compare(refit, doc) == []
    # and the comparison itself is sensitive
    tampered = json.loads(json.dumps(doc))
    tampered["llms"]["sim-llm-C"]["accuracy"]["beta_a"] *= 1.01
    assert _compare(refit, tampered) != []


def test_load_params_rejects_malformed_files(tmp_path: Path, doc: dict[str, Any]) -> None:
    cases: list[dict[str, Any]] = []
    unlabelled = json.loads(json.dumps(doc))
    unlabelled["simulated"] = False
    cases.append(unlabelled)
    future = json.loads(json.dumps(doc))
    future["schema_version"] = 99
    cases.append(future)
    broken = json.loads(json.dumps(doc))
    del broken["verifiers"]["sim-grm-orm"]["llm_effects"]["effects"]["sim-llm-B"]
    cases.append(broken)
    bad_sd = json.loads(json.dumps(doc))
    bad_sd["verifiers"]["sim-grm-orm"]["score_model"]["correct"]["sds"] = [-1.0]
    cases.append(bad_sd)
    for i, case in enumerate(cases):
        p = tmp_path / f"p{i}.json"
        p.write_text(json.dumps(case), encoding="utf-8")
        with pytest.raises(SimParamsError):
            load_params(p)
    ok = tmp_path / "ok.json"
    ok.write_text(json.dumps(doc), encoding="utf-8")
    assert load_params(ok).llm_names == LLMS


# ------------------------------------------------------------------------------------------
# determinism, shapes, labels
# ------------------------------------------------------------------------------------------


def test_same_seed_same_frames_and_different_seed_differs(
    params: SimParams, small: SimulatedBenchmark
) -> None:
    again = simulate(seed=3, n_problems=40, n_samples=12, params=params)
    for name in ("problems", "responses", "scores"):
        pd.testing.assert_frame_equal(getattr(small, name), getattr(again, name))
    pd.testing.assert_frame_equal(small.true_accuracy, again.true_accuracy)
    other = simulate(seed=4, n_problems=40, n_samples=12, params=params)
    assert not other.scores["score"].equals(small.scores["score"])
    assert not other.responses["is_correct"].equals(small.responses["is_correct"])
    assert not other.problems["gold_answer"].equals(small.problems["gold_answer"])


def test_a_pair_does_not_depend_on_which_other_pairs_are_simulated(
    params: SimParams, small: SimulatedBenchmark
) -> None:
    sub = simulate(
        seed=3,
        n_problems=40,
        n_samples=12,
        llms=["sim-llm-C"],
        verifiers=["sim-grm-orm"],
        params=params,
    )
    full = small.scores[
        (small.scores["llm"] == "sim-llm-C") & (small.scores["verifier"] == "sim-grm-orm")
    ]
    np.testing.assert_array_equal(sub.scores["score"].to_numpy(), full["score"].to_numpy())
    full_r = small.responses[small.responses["llm"] == "sim-llm-C"].reset_index(drop=True)
    pd.testing.assert_frame_equal(sub.responses, full_r, check_index_type=False)


def test_shapes_dtypes_and_labels(small: SimulatedBenchmark) -> None:
    p, r, s = small.problems, small.responses, small.scores
    assert list(p.columns) == ["problem_id", "gold_answer", "level", "subject", "text"]
    assert list(r.columns) == [
        "llm",
        "problem_id",
        "sample_idx",
        "answer_raw",
        "answer_key",
        "is_correct",
        "n_tokens",
    ]
    assert list(s.columns) == [
        "llm",
        "verifier",
        "problem_id",
        "sample_idx",
        "score",
        "step_scores",
    ]
    assert len(p) == 40 and p["problem_id"].is_unique
    assert len(r) == 5 * 40 * 12 and len(s) == 5 * 7 * 40 * 12
    for frame, cols in (
        (p, ["problem_id", "gold_answer", "subject", "text"]),
        (r, ["llm", "problem_id", "answer_raw", "answer_key"]),
        (s, ["llm", "verifier", "problem_id"]),
    ):
        for c in cols:
            assert pd.api.types.is_string_dtype(frame[c]), c
    assert p["level"].dtype == np.int64 and p["level"].between(1, 5).all()
    assert r["sample_idx"].dtype == np.int64 and s["sample_idx"].dtype == np.int64
    assert r["is_correct"].dtype == bool
    assert r["n_tokens"].dtype == np.int64 and (r["n_tokens"] >= 1).all()
    assert s["score"].dtype == np.float64
    assert ((s["score"] > 0) & (s["score"] < 1)).all()
    assert set(r["sample_idx"]) == set(range(12))
    assert not r.duplicated(["llm", "problem_id", "sample_idx"]).any()
    assert not s.duplicated(["llm", "verifier", "problem_id", "sample_idx"]).any()
    # labelled as simulated wherever it appears
    assert p["text"].str.startswith(SIMULATED_TAG).all()
    assert all(n.startswith("sim-") for n in [*small.llms, *small.verifiers])
    assert all(f.attrs["simulated"] is True for f in (p, r, s))
    assert "simulated" in small.label.lower()


def test_every_pair_present_and_joined(small: SimulatedBenchmark) -> None:
    pairs = small.scores.groupby(["llm", "verifier"]).size()
    assert set(pairs.index) == set(itertools.product(LLMS, VERIFIERS))
    assert (pairs == 40 * 12).all()
    keys = ["llm", "problem_id", "sample_idx"]
    joined = small.scores.merge(small.responses, on=keys, how="left", indicator=True)
    assert (joined["_merge"] == "both").all()


def test_answers_keys_and_gold(small: SimulatedBenchmark) -> None:
    r = small.responses.merge(small.problems, on="problem_id")
    assert (r.loc[r["is_correct"], "answer_raw"] == r.loc[r["is_correct"], "gold_answer"]).all()
    assert (r.loc[~r["is_correct"], "answer_raw"] != r.loc[~r["is_correct"], "gold_answer"]).all()
    # identical answers within a problem share one key, different answers never do
    per = r.groupby(["problem_id", "answer_raw"])["answer_key"].nunique()
    assert (per == 1).all()
    per_key = r.groupby(["problem_id", "answer_key"])["answer_raw"].nunique()
    assert (per_key == 1).all()


def test_step_scores(small: SimulatedBenchmark, params: SimParams) -> None:
    s = small.scores
    lengths = s["step_scores"].list.len().to_numpy()
    last = s["step_scores"].list[-1].to_numpy(dtype=float)
    np.testing.assert_array_equal(last, s["score"].to_numpy())
    kinds = s["verifier"].map({v: params.verifiers[v].kind for v in VERIFIERS}).to_numpy()
    prm = kinds == "prm"
    assert ((lengths[prm] >= 3) & (lengths[prm] <= 8)).all()
    assert (lengths[~prm] == 1).all()
    mins = np.array([min(x) for x in s["step_scores"].iloc[np.flatnonzero(prm)[:2000]]])
    np.testing.assert_array_equal(mins, s["score"].to_numpy()[np.flatnonzero(prm)[:2000]])
    # the other steps carry information beyond the score: they are not all equal to it
    first = s["step_scores"].list[0].to_numpy(dtype=float)
    assert np.mean(first[prm] > last[prm]) > 0.9
    assert isinstance(s["step_scores"].iloc[0], list)


def test_to_long_frame(small: SimulatedBenchmark) -> None:
    long = small.to_long_frame()
    assert list(long.columns) == [
        "problem_id",
        "sample_idx",
        "llm",
        "verifier",
        "answer",
        "answer_key",
        "is_correct",
        "gold_answer",
        "score",
        "step_scores",
        "n_tokens",
        "level",
        "subject",
        "problem_text",
    ]
    assert len(long) == len(small.scores)
    assert long.attrs["simulated"] is True
    ref = (
        small.scores.merge(small.responses, on=["llm", "problem_id", "sample_idx"])
        .merge(small.problems, on="problem_id")
        .sort_values(["llm", "verifier", "problem_id", "sample_idx"])
        .reset_index(drop=True)
    )
    got = long.sort_values(["llm", "verifier", "problem_id", "sample_idx"]).reset_index(drop=True)
    for mine, theirs in (
        ("answer", "answer_raw"),
        ("is_correct", "is_correct"),
        ("gold_answer", "gold_answer"),
        ("n_tokens", "n_tokens"),
        ("level", "level"),
        ("problem_text", "text"),
        ("score", "score"),
    ):
        np.testing.assert_array_equal(got[mine].to_numpy(), ref[theirs].to_numpy(), err_msg=mine)


# ------------------------------------------------------------------------------------------
# the stated likelihood ratio matches sampling
# ------------------------------------------------------------------------------------------


def _histogram_check(x1: np.ndarray, x0: np.ndarray, llr_at: Any) -> tuple[float, float, int]:
    """Max |z| and mean z^2 of (empirical - stated) log likelihood ratio over dense bins.

    Bins are 0.25 wide in logit(score) and kept when both classes have >= 300 draws. Given
    the correctness labels the scores are independent, so the class bin counts are
    multinomial: SE of log(n1_b/N1) - log(n0_b/N0) is about sqrt(1/n1_b + 1/n0_b) (<= 0.082).
    The stated ratio is evaluated at the bin centre; the log ratio of the bin probabilities
    differs from it by O(h^2 (llr'' + ...)) / 24 < 0.01 for these smooth densities, so it is
    allowed for by adding 0.03 (in units of the SE, a few hundredths) to the tolerance.
    """
    edges = np.arange(-8.0, 8.0001, 0.25)
    n1, _ = np.histogram(x1, edges)
    n0, _ = np.histogram(x0, edges)
    dense = (n1 >= 300) & (n0 >= 300)
    centre = 0.5 * (edges[1:] + edges[:-1])[dense]
    emp = np.log(n1[dense] / x1.size) - np.log(n0[dense] / x0.size)
    se = np.sqrt(1.0 / n1[dense] + 1.0 / n0[dense])
    z = (emp - llr_at(special.expit(centre))) / (se + 0.03 / 4.5)
    return float(np.max(np.abs(z))), float(np.mean(z**2)), int(dense.sum())


def test_true_log_lr_matches_histogram_of_sampled_scores(big: SimulatedBenchmark) -> None:
    for llm in ("sim-llm-D", "sim-llm-C"):
        for v in VERIFIERS:
            d = _pair(big, llm, v)
            x = special.logit(d["score"].to_numpy())
            c = d["is_correct"].to_numpy()
            zmax, z2, nbins = _histogram_check(
                x[c], x[~c], lambda s, llm=llm, v=v: big.true_log_lr(llm, v, s)
            )
            assert nbins >= 8, (llm, v)
            # 4.5 sigma per bin (about 14 pairs x 20 bins: false alarm rate ~1e-4);
            # mean z^2 ~ 1 tests calibration of the whole curve (chi2 with >= 8 dof).
            assert zmax < 4.5, (llm, v, zmax)
            assert z2 < 2.5, (llm, v, z2)
    # the check has power: another LLM's ratio for the same verifier is rejected
    d = _pair(big, "sim-llm-D", "sim-internlm2-orm")
    x = special.logit(d["score"].to_numpy())
    c = d["is_correct"].to_numpy()
    zmax, z2, _ = _histogram_check(
        x[c],
        x[~c],
        lambda s: (
            big.params.pair_mixtures("sim-llm-A", "sim-internlm2-orm")[0].logpdf(special.logit(s))
            - big.params.pair_mixtures("sim-llm-A", "sim-internlm2-orm")[1].logpdf(special.logit(s))
        ),
    )
    assert zmax > 6 or z2 > 5


def _cluster_se(resid: np.ndarray, cluster: np.ndarray) -> float:
    """SE of the sum of residuals with problems as clusters (correct answers of one problem
    share its q, so they are not independent given the scores)."""
    sums = np.bincount(cluster, weights=resid)
    return float(np.sqrt(np.sum(sums**2)))


def test_p_correct_given_score_is_sigmoid_of_llr_plus_prior_log_odds(
    big: SimulatedBenchmark,
) -> None:
    for llm in ("sim-llm-D", "sim-llm-C"):
        prior = float(big.true_q(llm).mean())  # pooled P(correct): each problem has n samples
        for v in VERIFIERS:
            d = _pair(big, llm, v)
            s = d["score"].to_numpy()
            c = d["is_correct"].to_numpy().astype(float)
            cluster = d["problem_id"].str.slice(4).astype(int).to_numpy()
            pred = special.expit(big.true_log_lr(llm, v, s) + math.log(prior / (1 - prior)))
            bins = np.quantile(s, np.linspace(0, 1, 11))
            idx = np.clip(np.searchsorted(bins, s, side="right") - 1, 0, 9)
            for b in range(10):
                m = idx == b
                diff = float(np.sum(c[m] - pred[m]))
                se = _cluster_se((c - pred) * m, cluster)
                assert abs(diff) < 4.5 * se + 1e-9, (llm, v, b, diff / m.sum(), se / m.sum())
            # power: the same check without the prior odds (or with the LLR halved) fails
            wrong = special.expit(0.5 * big.true_log_lr(llm, v, s) + math.log(prior / (1 - prior)))
            top = idx == 9
            bot = idx == 0
            off = max(
                abs(np.sum(c[top] - wrong[top])) / _cluster_se((c - wrong) * top, cluster),
                abs(np.sum(c[bot] - wrong[bot])) / _cluster_se((c - wrong) * bot, cluster),
            )
            if v in ("sim-qwen-orm", "sim-shepherd-last", "sim-internlm2-orm"):
                assert off > 4.5, (llm, v, off)


def test_weights_negative_over_part_of_range_and_differ_across_pairs(
    params: SimParams, big: SimulatedBenchmark
) -> None:
    grid = np.linspace(-5, 5, 1001)
    s = special.expit(grid)
    curves = {}
    negative_pairs = 0
    for llm, v in itertools.product(LLMS, VERIFIERS):
        g1, g0 = params.pair_mixtures(llm, v)
        llr = g1.logpdf(grid) - g0.logpdf(grid)
        curves[(llm, v)] = llr
        mass0 = np.exp(g0.logpdf(grid)) * (grid[1] - grid[0])
        mass1 = np.exp(g1.logpdf(grid)) * (grid[1] - grid[0])
        # negative on a region holding >= 20 % of the incorrect and >= 5 % of the correct
        # responses' scores, positive on a region holding >= 5 % of each
        neg = llr < 0
        if (
            mass0[neg].sum() > 0.2
            and mass1[neg].sum() > 0.05
            and mass0[~neg].sum() > 0.05
            and mass1[~neg].sum() > 0.05
        ):
            negative_pairs += 1
    assert negative_pairs >= 10
    # weight functions differ: every two pairs differ by > 0.05 somewhere in [-2, 2]
    central = (grid >= -2) & (grid <= 2)
    for a, b in itertools.combinations(curves, 2):
        assert np.max(np.abs(curves[a] - curves[b])[central]) > 0.05, (a, b)
    # zero crossings are spread out (not one shared threshold)
    crossings = [grid[np.argmax(c > 0)] for c in curves.values() if (c > 0).any()]
    assert np.ptp(crossings) > 2.0
    # some ratios are not monotone in the score
    assert any(np.any(np.diff(c[central]) < -1e-3) for c in curves.values())
    # empirically, responses whose stated ratio is negative are less often correct than average
    for v in VERIFIERS:
        d = _pair(big, "sim-llm-D", v)
        neg = big.true_log_lr("sim-llm-D", v, d["score"].to_numpy()) < 0
        assert d["is_correct"][neg].mean() < d["is_correct"].mean() - 0.05
    assert np.allclose(
        big.true_log_lr("sim-llm-D", "sim-grm-orm", s[::100]),
        curves[("sim-llm-D", "sim-grm-orm")][::100],
    )
    with pytest.raises(ValueError):
        big.true_log_lr("sim-llm-D", "sim-grm-orm", np.array([0.0, 0.5]))


# ------------------------------------------------------------------------------------------
# LLM side: accuracy, shared difficulty, wrong answers
# ------------------------------------------------------------------------------------------


def _max_cdf_z(q: np.ndarray, cdf: Any) -> float:
    """Largest |empirical - stated| CDF on a grid, in binomial standard errors."""
    t = np.array([0.01, 0.05, 0.1, 0.3, 0.5, 0.7, 0.9, 0.95, 0.99])
    f = cdf(t)
    emp = (q[:, None] <= t).mean(axis=0)
    return float(np.max(np.abs(emp - f) / np.sqrt(f * (1 - f) / q.size + 1e-12)))


def test_mean_accuracy_and_beta_marginals_match_fitted_targets(
    params: SimParams, doc: dict[str, Any]
) -> None:
    n_p, n_s = 3000, 8
    b = simulate(seed=21, n_problems=n_p, n_samples=n_s, verifiers=["sim-grm-orm"], params=params)
    for llm in LLMS:
        target = doc["llms"][llm]["accuracy"]["targets"]["mean_accuracy"]  # real pooled accuracy
        a, bb = doc["llms"][llm]["accuracy"]["beta_a"], doc["llms"][llm]["accuracy"]["beta_b"]
        var_q = a * bb / ((a + bb) ** 2 * (a + bb + 1))
        se = math.sqrt(var_q / n_p + target * (1 - target) / (n_p * n_s))
        acc = b.responses.loc[b.responses["llm"] == llm, "is_correct"].mean()
        assert abs(acc - target) < 4 * se, (llm, acc, target, se)
        # the true per-problem accuracies are Beta(a, b) distributed (scipy, not the simulator)
        q = b.true_q(llm)
        assert q.index.equals(pd.Index(b.problems["problem_id"]))
        # (empirical CDF on a grid, not KS: with b ~ 0.01 much of the mass is within 1e-16
        # of 1, where the float CDF is not resolvable)
        assert _max_cdf_z(q.to_numpy(), stats.beta(a, bb).cdf) < 4.5, llm
        assert _max_cdf_z(q.to_numpy(), stats.beta(a * 1.5, bb).cdf) > 4.5, llm
    # shared difficulty: problems are hard for all LLMs alike, and harder at higher levels
    rho = b.true_accuracy.rank().corr().to_numpy()[np.triu_indices(5, 1)]
    assert rho.min() > 0.5
    mean_q = b.true_accuracy.mean(axis=1).to_numpy()
    assert stats.spearmanr(b.problems["level"], mean_q).statistic < -0.05


def _wrong_stats(r: pd.DataFrame) -> pd.DataFrame:
    w = r[~r["is_correct"]]
    c = w.groupby(["problem_id", "answer_key"]).size().rename("c").reset_index()
    g = c.groupby("problem_id")["c"]
    out = pd.DataFrame({"n_wrong": g.sum(), "distinct": g.size(), "top": g.max()})
    out["pairs_same"] = (c["c"] * (c["c"] - 1)).groupby(c["problem_id"]).sum()
    return out


def test_wrong_answers_repeat_like_the_real_data(params: SimParams, doc: dict[str, Any]) -> None:
    b = simulate(seed=5, n_problems=1500, n_samples=80, verifiers=["sim-grm-orm"], params=params)
    for llm in LLMS:
        t = doc["llms"][llm]["wrong_answers"]["targets"]
        ws = _wrong_stats(b.responses[b.responses["llm"] == llm])
        two = ws[ws["n_wrong"] >= 2]
        # fitted moment: rate at which two wrong samples of a problem agree
        rate = two["pairs_same"] / (two["n_wrong"] * (two["n_wrong"] - 1))
        se = rate.std() / math.sqrt(len(rate))
        assert abs(rate.mean() - t["pair_repeat_rate"]) < 4 * se + 0.005, (llm, rate.mean())
        # not fitted: the share of the most common wrong answer, against the real value
        share = two["top"] / two["n_wrong"]
        tol = 3 * math.hypot(t["mean_top_wrong_share_se"], share.std() / math.sqrt(len(share)))
        assert abs(share.mean() - t["mean_top_wrong_share"]) < tol, (llm, share.mean())
        # some wrong answers are repeated often
        assert (two["top"] >= 5).mean() > 0.2, llm
        # the sequential sampler against the exact Pitman-Yor expectation of distinct answers
        lp = params.llms[llm]
        ek = crp_expected_distinct(80, lp.py_discount, lp.py_concentration)[ws["n_wrong"]]
        se_k = ws["distinct"].std() / math.sqrt(len(ws))
        assert abs(ws["distinct"].mean() - ek.mean()) < 4 * se_k, llm


def test_crp_expected_distinct_closed_form() -> None:
    # Pitman (2006): E[K_n] = (alpha/d) [(alpha+d)_n / (alpha)_n - 1] for d > 0;
    # sum_{i<n} alpha / (alpha + i) for d = 0
    d, a, n = 0.4, 1.7, 50
    closed = a / d * (special.poch(a + d, n) / special.poch(a, n) - 1)
    assert crp_expected_distinct(n, d, a)[n] == pytest.approx(closed, rel=1e-10)
    assert crp_expected_distinct(n, 0.0, a)[n] == pytest.approx(
        sum(a / (a + i) for i in range(n)), rel=1e-12
    )


# ------------------------------------------------------------------------------------------
# conditional independence
# ------------------------------------------------------------------------------------------


def _split_half_corr(d: pd.DataFrame, correct: bool) -> tuple[float, int]:
    """Correlation, across problems, of the logit scores of the first two responses of the
    given class: zero under conditional independence (SE about 1/sqrt(n))."""
    x = d[d["is_correct"] == correct].sort_values(["problem_id", "sample_idx"])
    x = x.assign(k=x.groupby("problem_id").cumcount())
    wide = x[x["k"] < 2].pivot(index="problem_id", columns="k", values="score").dropna()
    lw = special.logit(wide.to_numpy())
    return float(np.corrcoef(lw[:, 0], lw[:, 1])[0, 1]), len(wide)


def _difficulty_corr(d: pd.DataFrame, q: pd.Series, correct: bool) -> tuple[float, int]:
    """Correlation between a response's logit score and its problem's true P(correct), within
    one class. Scores are independent draws given the class, so SE is about 1/sqrt(n)."""
    x = d[d["is_correct"] == correct]
    return (
        float(
            np.corrcoef(special.logit(x["score"].to_numpy()), q.loc[x["problem_id"]].to_numpy())[
                0, 1
            ]
        ),
        len(x),
    )


def test_scores_are_conditionally_independent_of_difficulty_and_each_other(
    params: SimParams, big: SimulatedBenchmark
) -> None:
    for llm in ("sim-llm-D", "sim-llm-C"):
        q = big.true_q(llm)
        for v in VERIFIERS:
            d = _pair(big, llm, v)
            for cls in (True, False):
                r, n = _difficulty_corr(d, q, cls)
                assert abs(r) < 4.5 / math.sqrt(n), (llm, v, cls, r)
                r2, n2 = _split_half_corr(d, cls)
                assert abs(r2) < 4.5 / math.sqrt(n2), (llm, v, cls, r2)
    # tokens too
    d = big.responses[big.responses["llm"] == "sim-llm-D"]
    x = d[d["is_correct"]]
    r = np.corrcoef(np.log(x["n_tokens"]), big.true_q("sim-llm-D").loc[x["problem_id"]])[0, 1]
    assert abs(r) < 4.5 / math.sqrt(len(x))
    # the statistics have power: a problem-level effect (CI broken on purpose) is detected,
    # and so is a score that leans on difficulty
    broken = simulate(
        seed=11,
        n_problems=800,
        n_samples=16,
        llms=["sim-llm-D"],
        verifiers=["sim-grm-orm"],
        params=params,
        problem_effect_sd=2.0,
    )
    d = _pair(broken, "sim-llm-D", "sim-grm-orm")
    r2, n2 = _split_half_corr(d, False)
    assert r2 > 6 / math.sqrt(n2)
    d = _pair(big, "sim-llm-D", "sim-grm-orm")
    q = big.true_q("sim-llm-D")
    leaned = d.assign(
        score=special.expit(special.logit(d["score"]) + 0.3 * q.loc[d["problem_id"]].to_numpy())
    )
    r, n = _difficulty_corr(leaned, q, True)
    assert abs(r) > 6 / math.sqrt(n)


def test_problem_effect_keeps_pooled_llr_exact(params: SimParams) -> None:
    b = simulate(
        seed=8,
        n_problems=1500,
        n_samples=32,
        llms=["sim-llm-D"],
        verifiers=["sim-shepherd-last"],
        params=params,
        problem_effect_sd=0.8,
    )
    d = _pair(b, "sim-llm-D", "sim-shepherd-last")
    x = special.logit(d["score"].to_numpy())
    c = d["is_correct"].to_numpy()
    # with the problem effect, draws within a problem are correlated, so bin counts are
    # overdispersed: use a wider per-bin limit and only the mean z^2 against a loose bound
    zmax, z2, nbins = _histogram_check(
        x[c], x[~c], lambda s: b.true_log_lr("sim-llm-D", "sim-shepherd-last", s)
    )
    assert nbins >= 8 and zmax < 8 and z2 < 6


def test_simulate_validates_arguments(params: SimParams) -> None:
    with pytest.raises(ValueError):
        simulate(seed=0, n_problems=0, params=params)
    with pytest.raises(ValueError):
        simulate(seed=0, n_problems=5, llms=["gpt-4"], params=params)
    with pytest.raises(ValueError):
        simulate(seed=0, n_problems=5, verifiers=["sim-grm-orm", "sim-grm-orm"], params=params)
    with pytest.raises(ValueError):
        simulate(seed=-1, n_problems=5, params=params)
