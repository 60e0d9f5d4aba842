"""Compute frontier across LLMs (core.info.frontier, `ttslab frontier`)."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from core.cli import main
from core.evaluation.config import EvalConfig
from core.evaluation.pipeline import load_pair
from core.info.common import ViewError
from core.info.frontier import frontier_view, pareto
from core.store import Store
from core.synth.demo import DEMO_NAME, build_demo


def test_pareto_keeps_exactly_the_undominated_points() -> None:
    cost = np.array([1.0, 2.0, 2.0, 3.0, 4.0, 4.0])
    acc = np.array([0.5, 0.4, 0.6, 0.6, 0.7, 0.7])
    # (2, .4) is beaten by (1, .5); (3, .6) by (2, .6); the two (4, .7) tie and both stay
    assert pareto(cost, acc).tolist() == [True, False, True, False, True, True]


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("frontier") / "f.duckdb"
    with Store(db) as s:
        build_demo(s, n_problems=40, n_samples=8)
    return db


def test_frontier_points_costs_and_best_at(demo_db: Path) -> None:
    config = EvalConfig(n_subsets=20, n_boot=200)
    with Store(demo_db) as s:
        info = s.get_dataset(DEMO_NAME)
        view = frontier_view(s, info, "sim-qwen-orm", config, strategies=["majority", "logit_wv"])
        pair = load_pair(s, info, "sim-llm-B", "sim-qwen-orm", "stored")
        with pytest.raises(ViewError, match="parameter count"):
            frontier_view(s, info, "sim-qwen-orm", config, unit="flops")
        with pytest.raises(ViewError, match="at least two LLMs"):
            frontier_view(s, info, "sim-qwen-orm", config, llms=["sim-llm-A"])
    assert view.n_problems == 40 and {p.llm for p in view.points} == set(info.llms)
    # the cost of N responses: N times each problem's mean token count, averaged
    mean_tok = np.mean(
        [
            pair.n_tokens[a:b].mean()
            for a, b in zip(pair.offsets[:-1], pair.offsets[1:], strict=True)
        ]
    )
    b4 = next(p for p in view.points if p.llm == "sim-llm-B" and p.budget == 4)
    assert b4.cost == pytest.approx(4 * mean_tok, rel=1e-9)
    assert all(p.low <= p.accuracy <= p.high for p in view.points)
    front = view.frontier()
    # cheaper frontier points are less accurate, and nothing off the frontier beats one
    assert all(a.accuracy <= b.accuracy for a, b in itertools.pairwise(front))
    for p in view.points:
        if not p.on_frontier:
            assert any(f.cost <= p.cost and f.accuracy >= p.accuracy for f in front)
    best = view.best_at(front[1].cost * 1.0001)
    assert best == front[1]
    assert view.best_at(front[0].cost * 0.5) is None


def test_cli_frontier(demo_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = [
        "--db",
        str(demo_db),
        "frontier",
        DEMO_NAME,
        "--verifier",
        "sim-qwen-orm",
        "--subsets",
        "20",
        "--quiet",
        "--at",
        "1e9",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "compute frontier over 5 LLMs" in out and "at 1e+09 tokens per problem:" in out
    assert main([*args, "--x", "flops"]) != 0
    assert "parameter count" in capsys.readouterr().err
    params = [x for m in "ABCDE" for x in ("--params", f"sim-llm-{m}=7")]
    assert main([*args[:-2], "--x", "flops", *params]) == 0
    assert "flops per problem" in capsys.readouterr().out
