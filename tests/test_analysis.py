"""Pair-level analyses: cross-fitted curves, the DuckDB result cache, export, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.cli import DEMO_NAME, build_demo, main
from core.evaluation import (
    AnalysisError,
    EvalConfig,
    fit_pair,
    load_pair,
    pair_curves,
    response_weights,
)
from core.importers import import_path
from core.importers.writers import write_long_csv
from core.info import calibrate_table
from core.methods import FittedWeights, default_strategies
from core.methods.reduce import ReductionError
from core.store import Store
from tests.conftest import make_long_frame


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("an") / "demo.duckdb"
    with Store(db) as s:
        build_demo(s, n_problems=60, n_samples=16)
    return db


def test_pair_curves_cached_and_identical(demo_db: Path) -> None:
    config = EvalConfig(n_subsets=50, n_boot=200)
    pair = (DEMO_NAME, "sim-llm-C", "sim-qwen-orm")
    strategies = default_strategies()
    with Store(demo_db) as s:
        info = s.get_dataset(DEMO_NAME)
        n_before = s._cur().execute("SELECT count(*) FROM results").fetchone()
        first = pair_curves(s, info, *pair[1:], strategies, config)
        second = pair_curves(s, info, *pair[1:], strategies, config)
        n_after = s._cur().execute("SELECT count(*) FROM results").fetchone()
    assert not first.from_cache and second.from_cache
    assert n_before is not None and n_after is not None and n_after[0] == n_before[0] + 1
    np.testing.assert_array_equal(first.curves.per_problem, second.curves.per_problem)
    np.testing.assert_array_equal(first.intervals.low, second.intervals.low)
    assert first.curves.strategies == strategies
    # a parameter change is a different cache entry
    with Store(demo_db) as s:
        other = pair_curves(
            s, s.get_dataset(DEMO_NAME), *pair[1:], strategies, config.with_(fold_seed=1)
        )
    assert not other.from_cache


def test_curves_frame_is_sane(demo_db: Path) -> None:
    with Store(demo_db) as s:
        res = pair_curves(
            s,
            s.get_dataset(DEMO_NAME),
            "sim-llm-D",
            "sim-shepherd-min",
            default_strategies(),
            EvalConfig(n_subsets=50, n_boot=200),
        )
    df = res.to_frame()
    assert set(df["strategy"]) == set(default_strategies())
    assert (df["low"] <= df["accuracy"] + 1e-12).all()
    assert (df["accuracy"] <= df["high"] + 1e-12).all()
    # at N=1 every strategy answers with one random sample: exact strategies give the
    # mean per-problem fraction correct, sampled ones the same up to sampling noise
    with Store(demo_db, read_only=True) as s:
        pair = s.load_pair(DEMO_NAME, "sim-llm-D", "sim-shepherd-min")
    frac = np.mean(
        [pair.correct[a:b].mean() for a, b in zip(pair.offsets[:-1], pair.offsets[1:], strict=True)]
    )
    at1 = df[df["budget"] == 1].set_index("strategy")["accuracy"]
    assert at1["best_of_n"] == pytest.approx(frac, abs=1e-12)
    assert at1["pass_at_n"] == pytest.approx(frac, abs=1e-12)
    assert np.all(np.abs(at1.to_numpy() - frac) < 0.02)
    # pass@N bounds every non-oracle strategy at every budget
    wide = df.pivot(index="budget", columns="strategy", values="accuracy")
    for col in ("majority", "vanilla_wv", "logit_wv", "kde_wv", "best_of_n"):
        assert (wide[col] <= wide["pass_at_n"] + 0.02).all()  # sampled vs exact: noise
    assert df[df["strategy"] == "pass_at_n"]["oracle"].all()


def test_step_reduction_changes_scores(tmp_path: Path) -> None:
    df = make_long_frame(n_problems=6, n_samples=4)
    df["score"] = 0.5  # stored score differs from every reduction
    with Store(tmp_path / "r.duckdb") as s:
        import_path(s, write_long_csv(df, tmp_path / "d.csv"), name="d")
        info = s.get_dataset("d")
        stored = load_pair(s, info, "m1", "prm")
        lo = load_pair(s, info, "m1", "prm", "min")
        hi = load_pair(s, info, "m1", "prm", "max")
        with pytest.raises(ReductionError, match="unknown step reduction"):
            load_pair(s, info, "m1", "prm", "median")
    assert np.all(stored.score == 0.5)
    sub = df[(df.llm == "m1") & (df.verifier == "prm")].sort_values(["problem_id", "sample_idx"])
    np.testing.assert_allclose(lo.score, [min(x) for x in sub["step_scores"]])
    np.testing.assert_allclose(hi.score, [max(x) for x in sub["step_scores"]])


def test_export_round_trip_and_calibrate_table(
    demo_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "w.json"
    code = main(
        [
            "--db",
            str(demo_db),
            "export-weights",
            DEMO_NAME,
            "--llm",
            "sim-llm-B",
            "--verifier",
            "sim-shepherd-last",
            "--strategy",
            "kde_wv",
            "-o",
            str(out),
        ]
    )
    assert code == 0
    loaded = FittedWeights.from_json(out.read_text())
    config = EvalConfig()
    with Store(demo_db, read_only=True) as s:
        info = s.get_dataset(DEMO_NAME)
        direct = fit_pair(s, info, "sim-llm-B", "sim-shepherd-last", "kde_wv", config)
        pair = s.load_pair(info, "sim-llm-B", "sim-shepherd-last")
        table = calibrate_table(
            s, info, "sim-llm-B", "sim-shepherd-last", ["logit_wv", "kde_wv"], config
        )
    np.testing.assert_array_equal(response_weights(loaded, pair), response_weights(direct, pair))
    assert json.loads(out.read_text())["kind"] == "kde_wv"
    assert list(table["strategy"]) == ["logit_wv", "kde_wv"]
    kde_row = table.set_index("strategy").loc["kde_wv"]
    assert kde_row["negative_intervals"] != ()  # the simulator's LR is negative there
    with pytest.raises(AnalysisError, match="oracle"), Store(demo_db, read_only=True) as s:
        fit_pair(
            s,
            s.get_dataset(DEMO_NAME),
            "sim-llm-B",
            "sim-shepherd-last",
            "kde_wv_oracle",
            config,
        )


def test_cli_curves_and_calibrate(
    demo_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = tmp_path / "c.csv"
    code = main(
        [
            "--db",
            str(demo_db),
            "curves",
            DEMO_NAME,
            "--llm",
            "sim-llm-E",
            "--verifier",
            "sim-grm-orm",
            "--subsets",
            "40",
            "--csv",
            str(csv),
            "--quiet",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "sim-llm-E x sim-grm-orm" in out and "KDE WV" in out
    assert "logit WV" in out and "vanilla WV@16" in out
    import pandas as pd

    df = pd.read_csv(csv)
    assert set(df["budget"]) == {1, 2, 4, 8, 16}
    code = main(
        [
            "--db",
            str(demo_db),
            "calibrate",
            DEMO_NAME,
            "--verifier",
            "sim-grm-orm",
            "--strategy",
            "logit_wv",
            "--csv",
            str(tmp_path / "k.csv"),
            "--quiet",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert out.count("== sim-llm-") == 5  # one table per pair (5 LLMs x 1 verifier)
    assert len(pd.read_csv(tmp_path / "k.csv")) == 5
    code = main(["--db", str(demo_db), "curves", DEMO_NAME, "--verifier", "nope"])
    assert code == 1 and "no verifier 'nope'" in capsys.readouterr().err


def test_non_iid_dataset_uses_sampling_order(tmp_path: Path) -> None:
    # ordered groups (beam search): budget N must mean "the first N samples"
    df = make_long_frame(n_problems=10, n_samples=4, llms=("m",), verifiers=("v",))
    df["is_correct"] = df["sample_idx"] == 0  # only the first sample is ever right
    df["answer"] = [f"a{i}" for i in df["sample_idx"]]
    df["gold_answer"] = "a0"
    with Store(tmp_path / "o.duckdb") as s:
        path = write_long_csv(df, tmp_path / "o.csv")
        import_path(s, path, name="beam", iid=False)
        import_path(s, path, name="iid")
        strategies = ("majority", "best_of_n", "pass_at_n")
        config = EvalConfig(folds=2, n_boot=50)
        beam, iid = s.get_dataset("beam"), s.get_dataset("iid")
        assert not beam.iid and iid.iid
        ordered = pair_curves(s, beam, "m", "v", strategies, config).to_frame()
        shuffled = pair_curves(s, iid, "m", "v", strategies, config).to_frame()
    acc = ordered.set_index(["strategy", "budget"])["accuracy"]
    # first sample always right: pass@N is 1 at every N; majority at N=1 takes sample 0
    assert acc["pass_at_n"].tolist() == [1.0, 1.0, 1.0]
    assert acc[("majority", 1)] == 1.0
    rnd = shuffled.set_index(["strategy", "budget"])["accuracy"]
    assert rnd[("pass_at_n", 1)] == pytest.approx(0.25)  # exact: 1 of 4 samples right


def test_cli_compare_allocate_transfer_combine(
    demo_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import pandas as pd

    db = ["--db", str(demo_db)]
    code = main(
        [
            *db,
            "compare",
            DEMO_NAME,
            "--verifier",
            "sim-qwen-orm",
            "--budget",
            "8",
            "--strategy",
            "kde_wv",
            "--csv",
            str(tmp_path / "c.csv"),
            "--latex",
            str(tmp_path / "c.tex"),
            "--quiet",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "gain over Majority vote" in out and "[SIMULATED]" in out
    df = pd.read_csv(tmp_path / "c.csv")
    assert len(df) == 5 and set(df["budget"]) == {8}  # 5 LLMs x 1 strategy
    assert "\\begin{tabular}" in (tmp_path / "c.tex").read_text()

    code = main(
        [
            *db,
            "allocate",
            DEMO_NAME,
            "--llm",
            "sim-llm-E",
            "--verifier",
            "sim-shepherd-min",
            "--bins",
            "2",
            "--subsets",
            "30",
            "--csv",
            str(tmp_path / "a.csv"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "per-bin choice" in out
    table = pd.read_csv(tmp_path / "a.csv")
    assert set(table["bin"]) == {1, 2} and set(table["fold"]) == {1, 2}  # numbered from 1

    code = main(
        [
            *db,
            "transfer",
            "--source",
            DEMO_NAME,
            "sim-llm-C",
            "sim-shepherd-last",
            "--source",
            DEMO_NAME,
            "sim-llm-D",
            "sim-shepherd-last",
            "--budget",
            "8",
            "--subsets",
            "30",
            "--csv",
            str(tmp_path / "t.csv"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "calibrated on" in out
    assert len(pd.read_csv(tmp_path / "t.csv")) == 4

    code = main(
        [
            *db,
            "combine",
            DEMO_NAME,
            "--llm",
            "sim-llm-D",
            "--verifier",
            "sim-shepherd-last",
            "--verifier",
            "sim-internlm2-orm",
            "--subsets",
            "30",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "Sum of per-signal LLRs" in out and "Logistic over signals" in out


def test_reduction_without_step_scores_is_a_clear_error(tmp_path: Path) -> None:
    df = make_long_frame(n_problems=6, n_samples=4, steps=False).drop(columns="step_scores")
    with Store(tmp_path / "n.duckdb") as s:
        import_path(s, write_long_csv(df, tmp_path / "n.csv"), name="n")
        with pytest.raises(AnalysisError, match="without step scores"):
            load_pair(s, s.get_dataset("n"), "m1", "prm", "min")
