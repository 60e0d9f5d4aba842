"""The ttslab command line, driven in-process through core.cli.main."""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from core.cli import DEMO_NAME, main
from core.importers.validate import LONG_COLUMNS
from core.store import Store
from core.synth.examples import EXAMPLE_FILES, EXAMPLES_DIR, write_examples

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
    # within 100 columns, imported to the minute (not to the microsecond)
    lines = out.rstrip("\n").splitlines()
    assert max(map(len, lines)) <= 100, out
    assert re.search(r"(^| )\d{4}-\d\d-\d\d \d\d:\d\d$", lines[-1].rstrip()), out
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


def test_list_of_the_full_size_demo_fits_100_columns_in_one_block(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the default demo (500 problems x 64 samples x 5 LLMs: "160000" responses) printed
    # 103 columns, which pandas split into two blocks (a line ending in a backslash)
    db = str(tmp_path / "c.duckdb")
    assert run(capsys, "--db", db, "demo", "--quiet")[0] == 0
    code, out, _ = run(capsys, "--db", db, "list")
    lines = out.rstrip("\n").splitlines()
    assert code == 0 and len(lines) == 2, out  # a header and one row
    assert max(map(len, lines)) <= 100, out
    assert "160000" in lines[1] and "simulator" in lines[1] and "\\" not in out
    code, out, _ = run(capsys, "--db", db, "list", "--wide")  # every column
    assert code == 0 and "kind" in out.splitlines()[0] and "simulated" in out.splitlines()[1]


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


def _close(a: object, b: object, where: str) -> None:
    """Recursive equality with a tolerance on floats: other CPUs and numpy builds give
    other last digits, so simulator output is compared structurally, never byte for byte."""
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        assert a == b, where
    elif isinstance(a, int | float) and isinstance(b, int | float):
        assert math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12), (where, a, b)
    elif isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _close(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list | tuple) and isinstance(b, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, f"{where}[{i}]")
    else:
        assert a == b, (where, a, b)


def _cell(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _records(path: Path) -> list[object]:
    """The file's records as plain Python values (CSV cells parsed as JSON where they are)."""
    if path.suffix == ".parquet":
        return [
            {k: (list(v) if hasattr(v, "tolist") else v) for k, v in row.items()}
            for row in pq.read_table(path).to_pylist()
        ]
    if path.suffix == ".csv":
        with path.open(newline="") as fh:
            return [[_cell(c) for c in row] for row in csv.reader(fh)]
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_committed_examples_are_what_the_simulator_makes(tmp_path: Path) -> None:
    fresh = write_examples(tmp_path)
    for p in fresh:
        _close(_records(p), _records(EXAMPLES_DIR / p.name), p.name)


def test_output_fits_100_columns_unless_wide(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Tables are rendered to fit 100 columns and prose wraps there; --wide prints them as
    they are; a budget that is not a power of two is evaluated, not replaced."""
    db = tmp_path / "w.duckdb"
    assert main(["--db", str(db), "demo", "--problems", "40", "--samples", "16", "--quiet"]) == 0
    capsys.readouterr()
    base = ["--db", str(db), "compare", DEMO_NAME, "--budget", "3", "--quiet"]
    assert main(base) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 100
    assert "accuracy at N=3 " in out and "not among the evaluated budgets" not in out
    assert main([*base, "--wide"]) == 0
    wide = capsys.readouterr().out
    assert max(len(line) for line in wide.splitlines()) > 100
    # the same words and numbers either way (pandas marks a wrapped table row with "\\")
    assert set(out.split()) - {"\\"} == set(wide.split())


def test_a_closed_output_pipe_ends_quietly(tmp_path: Path) -> None:
    """`ttslab ... | head` closes the pipe early: no traceback, and the command stops."""
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "core.cli", "--db", str(tmp_path / "x.duckdb"), "formats"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before the first line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 1
    assert "Traceback" not in err and "BrokenPipe" not in err, err
