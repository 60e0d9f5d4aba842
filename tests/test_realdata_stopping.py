"""Early stopping on the real BoInf AIME 2024 + 2025 files and on the simulator: the README
quotes the tables this computes, and the test regenerates them so the README cannot drift
from the code; and every rule runs on all 11 LLMs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.evaluation.config import EvalConfig
from core.evaluation.stopping import NO_VERIFIER_RULES
from core.info.stopping import stopping_view
from core.reports import (
    BOINF_RULES,
    DEMO_VERIFIER,
    SIM_RULES,
    build_boinf_aime,
    stopping_table,
)
from core.store import Store
from core.synth.demo import DEMO_NAME, build_demo
from tests.conftest import SHARED_DATA

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.realdata
def test_stopping_tables_match_the_readme(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    with Store(tmp_path / "stop.duckdb") as s:
        build_boinf_aime(s, SHARED_DATA / "boinf")
        info = s.get_dataset("boinf-aime")
        assert len(info.llms) == 11
        for llm in info.llms:
            view = stopping_view(s, info, llm, "length", NO_VERIFIER_RULES, EvalConfig())
            assert [r.rule for r in view.rules] == list(NO_VERIFIER_RULES)
            assert view.has_tokens and view.n_problems == 60
            for r in view.rules:
                # more samples are used as the threshold tightens, never more than the cap
                assert np.all(np.diff(r.samples) >= -1e-9) and r.samples.max() <= view.cap
                assert np.all((r.low <= r.accuracy + 1e-12) & (r.accuracy <= r.high + 1e-12))
            for sv in view.savings:
                if np.isfinite(sv.cost):
                    assert sv.cost_low <= sv.cost + 1e-9
        table = stopping_table(s, "boinf-aime", "length", BOINF_RULES, "majority", 32)
        assert table in readme, f"README's BoInf stopping table is stale:\n{table}"
        build_demo(s)
        table = stopping_table(s, DEMO_NAME, DEMO_VERIFIER, SIM_RULES, "best", 64)
        assert table in readme, f"README's simulator stopping table is stale:\n{table}"
