"""The ttslab command line, driven in-process through core.cli.main."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from core.cli import DEMO_NAME, main
from core.examples import EXAMPLE_FILES, EXAMPLES_DIR, write_examples
from core.importers.validate import LONG_COLUMNS
from core.store import Store

ROOT = Path(__file__).resolve().parents[1]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_demo_list_show_delete(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "c.duckdb")
    code, out, _ = run(capsys, "--db", db, "list")
    assert code == 0 and "no database" in out
    code, out, _ = run(capsys, "--db", db, "demo", "--problems", "20", "--samples", "8", "--quiet")
    assert code == 0 and "SIMULATED" in out
    code, out, _ = run(capsys, "--db", db, "demo", "--if-missing", "--quiet")
    assert code == 0 and "already" in out
    code, _, err = run(capsys, "--db", db, "demo", "--quiet")
    assert code == 2 and "--replace" in err
    code, out, _ = run(capsys, "--db", db, "list")
    assert code == 0 and DEMO_NAME in out and "simulated" in out
    code, out, _ = run(capsys, "--db", db, "show", DEMO_NAME)
    assert code == 0 and "SIMULATED benchmark" in out
    with Store(db, read_only=True) as s:
        info = s.get_dataset(DEMO_NAME)
        assert (info.n_problems, info.n_responses) == (20, 20 * 8 * len(info.llms))
        assert info.simulated
        n_pairs = len(info.llms) * len(info.verifiers)
    # one line per pair in `show`
    assert sum(1 for line in out.splitlines() if line.strip().startswith("sim-llm")) == n_pairs
    code, _, err = run(capsys, "--db", db, "delete", DEMO_NAME)
    assert code == 2 and "--yes" in err  # no terminal under pytest: refuse, keep
    code, out, _ = run(capsys, "--db", db, "delete", DEMO_NAME, "--yes")
    assert code == 0
    code, out, _ = run(capsys, "--db", db, "list")
    assert "empty" in out


@pytest.mark.parametrize("fmt", list(EXAMPLE_FILES))
def test_import_each_example(tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str) -> None:
    db = str(tmp_path / "c.duckdb")
    path = EXAMPLES_DIR / EXAMPLE_FILES[fmt]
    code, out, err = run(capsys, "--db", db, "import", str(path), "--name", "ex", "--quiet")
    assert code == 0, err
    assert f"format {fmt}" in out
    m = re.search(r"(\d+) problems, (\d+) responses, (\d+) scores", out)
    assert m is not None
    # counted independently from the file itself
    if fmt == "long-parquet":
        df = pq.read_table(path).to_pandas()
    elif fmt == "long-csv":
        df = pd.read_csv(path)
    else:
        df = None
    if df is not None:
        assert int(m.group(1)) == df["problem_id"].nunique()
        assert int(m.group(2)) == len(df.drop_duplicates(["llm", "problem_id", "sample_idx"]))
        assert int(m.group(3)) == len(df)


def test_import_error_exit_code_and_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("problem_id,sample_idx,score,is_correct\np,0,nan,1\np,1,0.5,maybe\n")
    code, _, err = run(capsys, "--db", str(tmp_path / "c.duckdb"), "import", str(bad), "--quiet")
    assert code == 1
    assert "bad.csv, line 2, column 'score': value is NaN" in err
    assert "bad.csv, line 3, column 'is_correct'" in err


def test_formats_lists_every_column(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "formats")
    assert code == 0
    for col in LONG_COLUMNS:
        assert col in out


def test_readme_documents_every_column() -> None:
    readme = (ROOT / "README.md").read_text()
    for col in LONG_COLUMNS:
        assert f"| `{col}` |" in readme, f"README lacks column {col}"


def test_committed_examples_are_what_the_simulator_makes(tmp_path: Path) -> None:
    fresh = write_examples(tmp_path)
    for p in fresh:
        committed = EXAMPLES_DIR / p.name
        if p.suffix == ".parquet":
            assert pq.read_table(p).equals(pq.read_table(committed))
        else:
            assert p.read_text() == committed.read_text(), p.name
