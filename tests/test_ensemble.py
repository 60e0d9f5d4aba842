"""Multi-LLM ensembles (core.studies.ensemble, `ttslab ensemble`)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from core.cli import main
from core.evaluation.config import EvalConfig
from core.evaluation.engine import accuracy_curves, make_subsets
from core.evaluation.pipeline import AnalysisError, load_pair
from core.methods import get_strategy
from core.methods.params import StrategyParams
from core.store import Store
from core.studies.ensemble import ensemble_study
from core.synth.demo import DEMO_NAME, build_demo


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("ens") / "e.duckdb"
    with Store(db) as s:
        build_demo(s, n_problems=30, n_samples=8)
    return db


def test_single_llms_are_fixed_n_majority_and_weights_are_log_odds(demo_db: Path) -> None:
    config = EvalConfig(n_subsets=20, n_boot=200)
    llms = ["sim-llm-A", "sim-llm-E"]
    with Store(demo_db) as s:
        info = s.get_dataset(DEMO_NAME)
        res = ensemble_study(s, info, llms, "sim-qwen-orm", config, budgets=[2, 4, 8])
        pairs = [load_pair(s, info, m, "sim-qwen-orm", "stored") for m in llms]
    assert res.ensemble.shape == (3, 30) and res.single.shape == (2, 3, 30)
    # alone, each LLM is majority vote on the fixed-N curves' own subsets
    for li, pair in enumerate(pairs):
        strat = get_strategy("majority")
        vi = strat.vote_inputs(strat.fit(pair, StrategyParams()), pair)
        sub = make_subsets(pair, [2, 4, 8], n_subsets=20, seed=0)
        fixed = accuracy_curves(pair, {"majority": vi}, subsets=sub)
        # N = 1 is exact in the engine; here every budget is >= 2, so sampled alike
        np.testing.assert_allclose(res.single[li], fixed.per_problem[0], atol=1e-12)
    # a weight is the log odds of the LLM's (shrunk) accuracy on the other folds
    acc_a = (pairs[0].correct.sum() + 1) / (pairs[0].n_responses + 2)
    assert np.all(res.weights[:, 0] > res.weights[:, 1])  # A is the stronger LLM
    assert abs(float(np.mean(res.weights[:, 0])) - math.log(acc_a / (1 - acc_a))) < 0.5
    df = res.table()
    assert list(df["total_budget"]) == [2, 4, 8] and list(df["per_llm"]) == [1, 2, 4]
    assert (df["gain_low"] <= df["gain"] + 1e-12).all() and (
        df["gain"] <= df["gain_high"] + 1e-12
    ).all()
    np.testing.assert_allclose(df["gain"], df["ensemble"] - df["single"], atol=1e-12)


def test_ensemble_refuses_what_it_cannot_do(demo_db: Path) -> None:
    with Store(demo_db) as s:
        info = s.get_dataset(DEMO_NAME)
        with pytest.raises(AnalysisError, match="at least two LLMs"):
            ensemble_study(s, info, ["sim-llm-A"], "sim-qwen-orm", EvalConfig())
        with pytest.raises(AnalysisError, match="multiples"):
            ensemble_study(
                s, info, ["sim-llm-A", "sim-llm-B"], "sim-qwen-orm", EvalConfig(), budgets=[3]
            )
        with pytest.raises(AnalysisError, match="no LLM"):
            ensemble_study(s, info, ["sim-llm-A", "nope"], "sim-qwen-orm", EvalConfig())


def test_cli_ensemble(demo_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(
        [
            "--db",
            str(demo_db),
            "ensemble",
            DEMO_NAME,
            "--llm",
            "sim-llm-C",
            "--llm",
            "sim-llm-D",
            "--subsets",
            "10",
            "--quiet",
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "ensemble of sim-llm-C, sim-llm-D" in out and "gain (points)" in out
