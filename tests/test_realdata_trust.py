"""Orientation and transforms on real files: BoInf length is lower-is-better, and wide
RewardMATH scores keep their order under the default transform."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from core.cli import main as cli_main
from core.evaluation import EvalConfig
from core.evaluation.pipeline import crossfit_strategies, evaluate, load_pair
from core.importers import import_path
from core.store import Store
from tests.conftest import SHARED_DATA


def shortest_wins(lengths: np.ndarray, correct: np.ndarray, n: int, longest: bool) -> float:
    """Exact expected credit of picking the shortest (or longest) of a uniform random
    size-n subset, ties sharing the credit, counted with binomial coefficients here."""
    order = -lengths if longest else lengths
    total = len(order)
    n = min(n, total)
    values = np.unique(order)
    out = 0.0
    below = 0
    for v in values:  # from the best value on
        group = order == v
        g = int(group.sum())
        # the subset's best value is v: no better response, at least one of this group
        p = (math.comb(total - below, n) - math.comb(total - below - g, n)) / math.comb(total, n)
        out += p * float(correct[group].mean())
        below += g
    return out


@pytest.fixture(scope="module")
def aime25(tmp_path_factory: pytest.TempPathFactory) -> Store:
    db = tmp_path_factory.mktemp("aime25") / "a.duckdb"
    store = Store(db)
    import_path(store, SHARED_DATA / "boinf", name="aime25", include="analysis_aime2025*")
    return store


@pytest.mark.realdata
def test_best_of_n_by_length_picks_the_shortest(aime25: Store) -> None:
    info = aime25.get_dataset("aime25")
    assert info.lower_is_better == ("length",)  # declared by the BoInf importer
    pair = load_pair(aime25, info, "Qwen3-4B", "length", "stored")
    assert pair.orientation == "lower"
    config = EvalConfig(budgets=(32,), n_subsets=20)
    by_problem = [
        (pair.score[a:b], pair.correct[a:b])
        for a, b in zip(pair.offsets[:-1], pair.offsets[1:], strict=True)
    ]
    shortest = float(np.mean([shortest_wins(s, c, 32, False) for s, c in by_problem]))
    longest = float(np.mean([shortest_wins(s, c, 32, True) for s, c in by_problem]))
    assert shortest == pytest.approx(0.744, abs=0.01)
    assert longest == pytest.approx(0.405, abs=0.01)
    cf = crossfit_strategies(pair, ["best_of_n"], config)
    got = evaluate(pair, cf.inputs, config).curve("best_of_n")[0]
    assert got == pytest.approx(shortest, abs=1e-9)
    # forcing the wrong direction reproduces the old verdict
    wrong = config.with_(orientation="higher")
    cf = crossfit_strategies(pair, ["best_of_n"], wrong)
    assert evaluate(pair, cf.inputs, wrong).curve("best_of_n")[0] == pytest.approx(
        longest, abs=1e-9
    )


@pytest.mark.realdata
def test_length_direction_is_estimated_when_not_declared(aime25: Store) -> None:
    """Without a declaration, every fold estimates the direction on its calibration labels
    and finds lower-is-better."""
    info = aime25.get_dataset("aime25")
    pair = replace(load_pair(aime25, info, "Qwen3-4B", "length", "stored"), orientation="auto")
    config = EvalConfig(budgets=(32,), n_subsets=20)
    cf = crossfit_strategies(pair, ["best_of_n"], config)
    declared = load_pair(aime25, info, "Qwen3-4B", "length", "stored")
    cf2 = crossfit_strategies(declared, ["best_of_n"], config)
    np.testing.assert_array_equal(cf.inputs["best_of_n"].weight, cf2.inputs["best_of_n"].weight)
    assert np.all(cf.inputs["best_of_n"].weight <= 0)  # -length: the shortest is the best


@pytest.mark.realdata
def test_rewardmath_logit_wv_matches_best_of_n_with_the_default_transform(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Store(tmp_path / "rm.duckdb") as store:
        import_path(store, SHARED_DATA / "rewardmath", name="rm")
        info = store.get_dataset("rm")
        assert len(info.verifiers) == 10
        config = EvalConfig(n_subsets=100)
        for ver in info.verifiers:
            pair = load_pair(store, info, "rewardmath", ver, "stored")
            cf = crossfit_strategies(pair, ["best_of_n", "logit_wv"], config)
            cs = evaluate(pair, cf.inputs, config)
            gap = cs.curve("logit_wv") - cs.curve("best_of_n")
            assert np.all(np.abs(gap) <= 0.01), (ver, gap)
    # Eurus-RM's scores span -1102 to 396: a sigmoid saturates them, the rank does not
    assert (
        cli_main(
            [
                "--db",
                str(tmp_path / "rm.duckdb"),
                "calibrate",
                "rm",
                "--verifier",
                "Eurus-RM",
                "--strategy",
                "logit_wv",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "rank" in out and "sigmoid" not in out
