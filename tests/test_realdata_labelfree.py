"""Label-free against labelled calibration on the real Qwen2.5-Math, OpenR (Math-Shepherd)
and BoInf AIME files: the README quotes the tables this computes, and the test regenerates
them so the README cannot drift from the code."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.importers import import_path
from core.reports import build_boinf_aime, label_free_markdown, label_free_vs_labelled
from core.store import Store
from tests.conftest import SHARED_DATA

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.realdata
def test_label_free_tables_match_the_readme(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    with Store(tmp_path / "lf.duckdb") as s:
        import_path(s, SHARED_DATA / "qwen25math_rm_maj" / "math_cot_100.jsonl", name="qwen25-math")
        import_path(s, SHARED_DATA / "openr_math500_bon", name="openr-shepherd")
        build_boinf_aime(s, SHARED_DATA / "boinf")
        for name in ("qwen25-math", "openr-shepherd", "boinf-aime"):
            df = label_free_vs_labelled(s, name)
            info = s.get_dataset(name)
            assert set(zip(df["llm"], df["verifier"], strict=True)) == set(info.pairs), name
            # every interval holds its estimate, and a difference of accuracies is in [-1, 1]
            assert (df["diff_low"] <= df["diff"] + 1e-12).all()
            assert (df["diff"] <= df["diff_high"] + 1e-12).all()
            assert np.all(np.abs(df["diff"]) <= 1)
            np.testing.assert_allclose(df["diff"], df["label_free"] - df["labelled"], atol=1e-9)
            table = label_free_markdown(df)
            assert table in readme, f"README's label-free table for {name} is stale:\n{table}"
