"""Combined verifiers on the simulator, whose verifiers are conditionally independent
given correctness by construction, so the sum of per-signal LLRs is the Bayes-optimal
weight and must beat each signal alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.evaluation import EvalConfig
from core.evaluation.stats import paired_difference_cis
from core.methods import StrategyParams
from core.store import Store
from core.studies.combine import CombineError, combined_curves, fit_combined, load_multi
from core.synth.demo import canonical_from_benchmark
from core.synth.simulate import simulate

VERS = ("sim-shepherd-last", "sim-internlm2-orm")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    db = tmp_path_factory.mktemp("c") / "c.duckdb"
    bench = simulate(
        seed=3,
        n_problems=300,
        n_samples=16,
        llms=["sim-llm-D"],
        verifiers=[*VERS, "sim-shepherd-min"],
    )
    s = Store(db)
    s.ingest(
        canonical_from_benchmark(bench),
        name="sim",
        source_format="simulator",
        content_sha256="sim",
        simulated=True,
    )
    return s


def test_sum_of_llrs_beats_each_signal_alone(store: Store) -> None:
    info = store.get_dataset("sim")
    res = combined_curves(store, info, "sim-llm-D", list(VERS), EvalConfig(n_subsets=100))
    assert not res.from_cache
    c = res.curves
    combined = c.per_problem[c.index("sum_llr")]
    for v in VERS:
        alone = c.per_problem[c.index(f"kde_wv[{v}]")]
        d = paired_difference_cis(combined, alone)
        # budgets 2..16: the paired 95% interval of the gain lies above zero
        assert (d.low[1:] > 0).all(), (v, d.low, d.estimate)
    logistic = c.curve("logistic")
    assert (logistic[1:] > c.curve("majority")[1:]).all()
    assert set(res.labels) == set(c.strategies)
    again = combined_curves(store, info, "sim-llm-D", list(VERS), EvalConfig(n_subsets=100))
    assert again.from_cache
    np.testing.assert_array_equal(again.curves.per_problem, c.per_problem)


def test_combiners_use_only_calibration_labels(store: Store) -> None:
    mp = load_multi(store, store.get_dataset("sim"), "sim-llm-D", list(VERS))
    calib = mp.select(np.arange(0, 150))
    held = mp.select(np.arange(150, 300))
    flipped = mp.select(np.arange(150, 300))
    object.__setattr__(flipped.base, "correct", ~flipped.base.correct)
    for kind in ("sum_llr", "logistic"):
        fit = fit_combined(calib, kind, StrategyParams())
        np.testing.assert_array_equal(fit.llr(held), fit.llr(flipped))


def test_combining_needs_aligned_signals(store: Store) -> None:
    info = store.get_dataset("sim")
    with pytest.raises(CombineError, match="at least two"):
        load_multi(store, info, "sim-llm-D", ["sim-shepherd-last"])
    with pytest.raises(CombineError, match="at least two"):
        combined_curves(store, info, "sim-llm-D", ["sim-shepherd-last"] * 2, EvalConfig())
    with pytest.raises(CombineError, match="unknown combiner"):
        fit_combined(load_multi(store, info, "sim-llm-D", list(VERS)), "product")


def test_misaligned_verifiers_are_refused(tmp_path: Path) -> None:
    bench = simulate(seed=1, n_problems=6, n_samples=4, llms=["sim-llm-A"], verifiers=list(VERS))
    data = canonical_from_benchmark(bench)
    scores = data.scores
    keep = ~((scores["verifier"] == VERS[1]) & (scores["sample_idx"] == 3))
    with Store(tmp_path / "m.duckdb") as s:
        info = s.ingest(
            type(data)(data.problems, data.responses, scores[keep]),
            name="m",
            source_format="x",
            content_sha256="m",
        )
        with pytest.raises(CombineError, match="does not score the same responses"):
            load_multi(s, info, "sim-llm-A", list(VERS))
