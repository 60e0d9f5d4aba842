"""Calibrated length-weighted voting vs majority vote on the real BoInf AIME files.

The README quotes the table this computes; the test regenerates it so the README cannot
drift from the code, and checks the table's internal consistency.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.reports import build_boinf_aime, length_vs_majority, markdown_table
from core.store import Store
from tests.conftest import SHARED_DATA

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.realdata
def test_length_weighting_table_matches_the_readme(tmp_path: Path) -> None:
    with Store(tmp_path / "aime.duckdb") as s:
        build_boinf_aime(s, SHARED_DATA / "boinf")
        info = s.get_dataset("boinf-aime")
        df = length_vs_majority(s, "boinf-aime")
    assert len(info.llms) == 11 and info.n_problems == 60  # AIME 2024 + 2025, 30 each
    assert set(df["llm"]) == set(info.llms)
    assert (df["gain_low"] <= df["gain"] + 1e-12).all()
    assert (df["gain"] <= df["gain_high"] + 1e-12).all()
    # a gain is a difference of two accuracies in [0, 1]
    assert np.all(np.abs(df["gain"]) <= 1)
    table = markdown_table(df)
    readme = (ROOT / "README.md").read_text()
    assert table in readme, "README's length-weighting table is stale:\n" + table
