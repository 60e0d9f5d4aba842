"""Dashboard pages driven by Streamlit's AppTest (no browser)."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.cli import DEMO_NAME, build_demo
from core.examples import EXAMPLE_FILES, EXAMPLES_DIR
from core.importers import import_path
from core.store import Store

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "dashboard" / "app.py")


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "dash.duckdb"
    with Store(path) as s:
        build_demo(s, n_problems=12, n_samples=4)
        import_path(s, EXAMPLES_DIR / EXAMPLE_FILES["long-csv"], name="example csv")
    monkeypatch.setenv("TTSLAB_DB", str(path))
    return path


def test_datasets_page_lists_and_labels(db: Path) -> None:
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    table = at.dataframe[0].value
    assert set(table["name"]) == {DEMO_NAME, "example csv"}
    kinds = dict(zip(table["name"], table["kind"], strict=True))
    assert kinds[DEMO_NAME] == "simulated"
    assert kinds["example csv"] == "real"
    # the first dataset (the demo) is selected: it is flagged as simulated
    assert any("Simulated benchmark" in w.value for w in at.warning)
    at.selectbox[0].select("example csv").run()
    assert not at.warning
    pairs = at.dataframe[1].value
    assert len(pairs) == 4  # 2 LLMs x 2 verifiers in the example file


def test_empty_store_explains_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTSLAB_DB", str(tmp_path / "empty.duckdb"))
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert "ttslab demo" in at.info[0].value
