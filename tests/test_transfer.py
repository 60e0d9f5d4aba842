"""Calibration transfer matrix."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from core.calibration import StrategyParams, kfold_problems, response_rows, select_problems
from core.demo import canonical_from_benchmark
from core.simulate import simulate
from core.store import Store
from core.transfer import PairRef, TransferError, transfer_inputs, transfer_matrix

P = StrategyParams(offset_n_subsets=20)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    db = tmp_path_factory.mktemp("t") / "t.duckdb"
    bench = simulate(
        seed=5,
        n_problems=120,
        n_samples=16,
        llms=["sim-llm-C", "sim-llm-D"],
        verifiers=["sim-shepherd-last"],
    )
    s = Store(db)
    s.ingest(
        canonical_from_benchmark(bench),
        name="sim",
        source_format="simulator",
        content_sha256="t",
        simulated=True,
    )
    return s


def test_shared_problems_are_cross_fitted(store: Store) -> None:
    src = store.load_pair("sim", "sim-llm-C", "sim-shepherd-last")
    tgt = store.load_pair("sim", "sim-llm-D", "sim-shepherd-last")
    base = transfer_inputs(src, tgt, "kde_wv", P, k=4, seed=2)
    for fold in kfold_problems(tgt.n_problems, 4, 2):
        # flip the SOURCE labels of exactly the problems of this target fold
        rows = response_rows(src, fold)
        flipped_correct = src.correct.copy()
        flipped_correct[rows] = ~flipped_correct[rows]
        again = transfer_inputs(
            replace(src, correct=flipped_correct), tgt, "kde_wv", P, k=4, seed=2
        )
        trows = response_rows(tgt, fold)
        np.testing.assert_array_equal(again.weight[trows], base.weight[trows])
        assert again.g is not None and base.g is not None
        np.testing.assert_array_equal(again.g[trows], base.g[trows])
        # ...while the other folds, whose fits did use those labels, do change
        others = np.setdiff1d(np.arange(tgt.n_responses), trows)
        assert not np.array_equal(again.weight[others], base.weight[others])


def test_disjoint_problems_fit_on_the_whole_source(store: Store) -> None:
    src = store.load_pair("sim", "sim-llm-C", "sim-shepherd-last")
    tgt = store.load_pair("sim", "sim-llm-D", "sim-shepherd-last")
    a = select_problems(src, np.arange(0, 60))
    b = select_problems(tgt, np.arange(60, 120))
    vi = transfer_inputs(a, b, "logit_wv", P)
    from core.strategies import get_strategy

    s = get_strategy("logit_wv")
    direct = s.vote_inputs(s.fit(a, P), b)
    np.testing.assert_array_equal(vi.weight, direct.weight)
    with pytest.raises(TransferError, match="oracle"):
        transfer_inputs(a, b, "oracle_optimal", P)


def test_matrix_gains_are_paired_differences(store: Store) -> None:
    refs = [PairRef("sim", m, "sim-shepherd-last") for m in ("sim-llm-C", "sim-llm-D")]
    mat = transfer_matrix(
        store,
        refs,
        refs,
        strategy="kde_wv",
        baseline="majority",
        budget=8,
        params=P,
        k=4,
        n_subsets=50,
        n_boot=300,
    )
    assert mat.accuracy.shape == (2, 2)
    np.testing.assert_allclose(mat.gain, mat.accuracy - mat.baseline_accuracy[None, :], atol=1e-12)
    assert (mat.low <= mat.gain).all() and (mat.gain <= mat.high).all()
    # a good verifier's calibrated weights beat majority vote, also when transferred
    assert (mat.gain > 0).all()
    df = mat.to_frame()
    assert len(df) == 4 and {"calibrated on", "evaluated on", "gain"} <= set(df.columns)
