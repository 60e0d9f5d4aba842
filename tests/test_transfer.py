"""Calibration transfer matrix."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from core.evaluation import EvalConfig, fit_strategy, kfold
from core.info import transfer_view
from core.methods import StrategyParams, get_strategy
from core.store import Store
from core.studies.transfer import (
    PairRef,
    TransferCell,
    TransferError,
    transfer_cells,
    transfer_inputs,
)
from core.synth.demo import canonical_from_benchmark
from core.synth.simulate import simulate

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
    assert src.problem_ids == tgt.problem_ids
    config = EvalConfig(params=P, folds=4, fold_seed=2)
    base = transfer_inputs(src, tgt, "kde_wv", config)
    for fold in kfold(tgt.n_problems, 4, 2):
        # flip the SOURCE labels of exactly the problems of this target fold
        rows = src.rows(fold.test)
        flipped_correct = src.correct.copy()
        flipped_correct[rows] = ~flipped_correct[rows]
        again = transfer_inputs(replace(src, correct=flipped_correct), tgt, "kde_wv", config)
        trows = tgt.rows(fold.test)
        np.testing.assert_array_equal(again.weight[trows], base.weight[trows])
        assert again.g is not None and base.g is not None
        np.testing.assert_array_equal(again.g[trows], base.g[trows])
        # ...while the other folds, whose fits did use those labels, do change
        others = np.setdiff1d(np.arange(tgt.n_responses), trows)
        assert not np.array_equal(again.weight[others], base.weight[others])


def test_disjoint_problems_fit_on_the_whole_source(store: Store) -> None:
    src = store.load_pair("sim", "sim-llm-C", "sim-shepherd-last")
    tgt = store.load_pair("sim", "sim-llm-D", "sim-shepherd-last")
    a = src.select(np.arange(0, 60))
    b = tgt.select(np.arange(60, 120))
    vi = transfer_inputs(a, b, "logit_wv", EvalConfig(params=P))
    s = get_strategy("logit_wv")
    direct = s.vote_inputs(fit_strategy(s, a, P), b)
    np.testing.assert_array_equal(vi.weight, direct.weight)
    with pytest.raises(TransferError, match="oracle"):
        transfer_inputs(a, b, "kde_wv_oracle", EvalConfig(params=P))


def test_matrix_gains_are_paired_differences(store: Store) -> None:
    info = store.get_dataset("sim")
    refs = [PairRef("sim", m, "sim-shepherd-last") for m in ("sim-llm-C", "sim-llm-D")]
    config = EvalConfig(params=P, folds=4, n_subsets=50, n_boot=300)
    cells = transfer_cells(
        store,
        [(info, r) for r in refs],
        [(info, r) for r in refs],
        strategy="kde_wv",
        baseline="majority",
        budget=8,
        config=config,
    )
    assert set(cells) == {(i, j) for i in range(2) for j in range(2)}
    ok = {ij: c for ij, c in cells.items() if isinstance(c, TransferCell)}
    assert ok.keys() == cells.keys(), cells
    for (_, j), cell in ok.items():
        assert cell.budget == 8 and cell.n_problems == 120 and cell.shared
        assert cell.gain == pytest.approx(cell.accuracy - cell.baseline_accuracy, abs=1e-12)
        assert cell.low <= cell.gain <= cell.high
        # one baseline per target, whatever the source
        assert cell.baseline_accuracy == ok[(0, j)].baseline_accuracy
        # a good verifier's calibrated weights beat majority vote, also when transferred
        assert cell.gain > 0
    view = transfer_view(store, refs, refs, "kde_wv", "majority", 8, config)
    assert view.accuracy.shape == (2, 2)
    np.testing.assert_allclose(
        view.gain, view.accuracy - view.baseline_accuracy[None, :], atol=1e-12
    )
    assert (view.low <= view.gain).all() and (view.gain <= view.high).all()
    assert (view.gain > 0).all()
    df = view.to_frame()
    assert len(df) == 4 and {"calibrated on", "evaluated on", "gain"} <= set(df.columns)
