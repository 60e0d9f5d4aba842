"""Streamed import (#12): a long Parquet file is read and validated in batches, written to a
staging database, checked across batches by queries, and copied into the store in one
transaction. The stored dataset equals a one-batch import of the same file, every rule
still holds across batch boundaries with the file and row named, and a failure leaves the
store exactly as it was."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import core.importers as importers
import core.importers.generic as generic
from core.importers import ImportValidationError, import_path
from core.importers.generic import read_long_parquet
from core.importers.validate import ValidationContext, to_canonical
from core.importers.writers import write_long_parquet
from core.store import Store
from tests.conftest import make_long_frame
from tests.test_store import snapshot

BATCH = 7  # rows per batch in these tests: every file spans many batches


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(generic, "STREAM_BATCH_ROWS", BATCH)
    monkeypatch.setattr(importers, "TYPED_PATH", False)  # the batch path, whatever the types


def _tables(store: Store, name: str) -> dict[str, list[tuple[object, ...]]]:
    info = store.get_dataset(name)
    cur = store._cur()
    out = {}
    for t in ("problems", "responses", "scores"):
        rows = cur.execute(
            f"SELECT * EXCLUDE (dataset_id) FROM {t} WHERE dataset_id = ?", [info.dataset_id]
        ).fetchall()
        out[t] = sorted(rows, key=repr)
    return out


def _frame() -> pd.DataFrame:
    # verifiers in separate runs of rows: a response's verifiers land in different batches
    df = make_long_frame(n_problems=9, n_samples=5, llms=("m1", "m2"), verifiers=("a", "b"))
    return df.sort_values(["verifier", "llm", "problem_id", "sample_idx"]).reset_index(drop=True)


def _parquet(df: pd.DataFrame, path: Path) -> Path:
    return write_long_parquet(df, path)


def test_many_batches_store_what_one_batch_stores(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    df = _frame()
    path = _parquet(df, tmp_path / "d.parquet")
    one = import_path(store, path, name="one")
    monkeypatch.setattr(generic, "STREAM_BATCH_ROWS", BATCH)
    many = import_path(store, path, name="many")
    assert len(df) > 20 * BATCH
    assert _tables(store, "one") == _tables(store, "many")
    a, b = one.info, many.info
    assert (a.n_problems, a.n_responses, a.n_scores) == (9, 90, 180)
    assert (b.n_problems, b.n_responses, b.n_scores, b.llms, b.verifiers) == (
        9,
        90,
        180,
        ("m1", "m2"),
        ("a", "b"),
    )
    assert a.content_sha256 == b.content_sha256  # the file's hash, read in chunks
    assert one.notes == many.notes
    # and both equal the tables written without any staging: the whole file validated at
    # once and stored by Store.ingest
    data, _ = to_canonical(read_long_parquet(path).frame, ValidationContext("d.parquet", "row"))
    store.ingest(data, name="direct", source_format="long-parquet", content_sha256="x")
    assert _tables(store, "direct") == _tables(store, "many")


def test_a_problem_fields_first_value_wins_across_batches(
    store: Store, tmp_path: Path, small_batches: None
) -> None:
    df = _frame()
    # the level is given only on a later row of problem q03 (the first rows have none)
    df["level"] = df["level"].astype(object)
    rows = np.flatnonzero(df["problem_id"] == "q03")
    df.loc[rows, "level"] = None
    df.loc[rows[-1], "level"] = 4
    import_path(store, _parquet(df, tmp_path / "d.parquet"), name="x")
    probs = store.problems("x").set_index("problem_id")
    assert probs.loc["q03", "level"] == 4
    assert probs.loc["q02", "level"] == 3  # 1 + p % 5, from make_long_frame


def _fails(store: Store, path: Path) -> ImportValidationError:
    before = snapshot(store)
    with pytest.raises(ImportValidationError) as info:
        import_path(store, path, name="bad")
    assert snapshot(store) == before
    assert not list(store.path.parent.glob("ttslab-import-*")), "staging folder removed"
    return info.value


def test_a_duplicate_in_another_batch_names_both_rows(
    store: Store, tmp_path: Path, small_batches: None
) -> None:
    df = _frame()
    dup = df.iloc[[3]].copy()
    df = pd.concat([df, dup], ignore_index=True)  # row 4 again, as the last row
    exc = _fails(store, _parquet(df, tmp_path / "dup.parquet"))
    (issue,) = exc.issues
    assert issue.file == "dup.parquet" and issue.line == len(df) and issue.column == "sample_idx"
    assert "duplicate key" in issue.message and "first seen at row 4" in issue.message


def test_a_response_whose_verifiers_disagree_across_batches(
    store: Store, tmp_path: Path, small_batches: None
) -> None:
    df = _frame()
    # the last row (verifier b) contradicts the same response's row under verifier a
    last = len(df) - 1
    key = df.loc[last, ["llm", "problem_id", "sample_idx"]]
    first = int(
        np.flatnonzero(
            (df["llm"] == key["llm"])
            & (df["problem_id"] == key["problem_id"])
            & (df["sample_idx"] == key["sample_idx"])
        )[0]
    )
    df.loc[last, "is_correct"] = not df.loc[last, "is_correct"]
    exc = _fails(store, _parquet(df, tmp_path / "c.parquet"))
    msgs = [(i.line, i.column, i.message) for i in exc.issues]
    assert any(
        line == last + 1 and col == "is_correct" and f"differs from row {first + 1}" in msg
        for line, col, msg in msgs
    ), msgs


def test_conflicting_gold_answers_across_batches(
    store: Store, tmp_path: Path, small_batches: None
) -> None:
    df = _frame()
    # every row of one (verifier, LLM) run of problem q05 says another gold answer: no
    # batch disagrees with itself, only with the batches before
    late = (df["problem_id"] == "q05") & (df["verifier"] == "b") & (df["llm"] == "m2")
    df.loc[late, "gold_answer"] = "999"
    exc = _fails(store, _parquet(df, tmp_path / "g.parquet"))
    assert any(
        i.column == "gold_answer" and "conflicting gold answers for problem 'q05'" in i.message
        for i in exc.issues
    ), [i.message for i in exc.issues]


def test_problems_in_several_batches_are_all_reported(
    store: Store, tmp_path: Path, small_batches: None
) -> None:
    df = _frame()
    df["sample_idx"] = df["sample_idx"].astype(np.int64)
    df.loc[2, "sample_idx"] = -1  # batch 1
    df.loc[100, "sample_idx"] = -5  # batch 15
    exc = _fails(store, _parquet(df, tmp_path / "neg.parquet"))
    assert {i.line for i in exc.issues if i.column == "sample_idx"} == {3, 101}


def test_nan_in_a_later_batch_names_its_row(
    store: Store, tmp_path: Path, small_batches: None
) -> None:
    df = _frame()
    table = pa.Table.from_pandas(df, preserve_index=False)
    score = table.column("score").to_numpy().copy()
    score[150] = np.nan
    table = table.set_column(table.schema.get_field_index("score"), "score", pa.array(score))
    path = tmp_path / "nan.parquet"
    pq.write_table(table, path, row_group_size=50)
    exc = _fails(store, path)
    assert [(i.line, i.column, i.message) for i in exc.issues] == [(151, "score", "value is NaN")]


def test_renaming_refuses_several_llms_spread_over_batches(
    store: Store, tmp_path: Path, small_batches: None
) -> None:
    df = _frame().sort_values(["llm", "verifier", "problem_id", "sample_idx"])
    path = _parquet(df.reset_index(drop=True), tmp_path / "two.parquet")
    before = snapshot(store)
    with pytest.raises(ImportValidationError, match=r"input holds several \(m1, m2\)"):
        import_path(store, path, name="r", llm="one-name")
    assert snapshot(store) == before


def test_a_folder_of_parquet_files_is_checked_across_files(
    store: Store, tmp_path: Path, small_batches: None
) -> None:
    df = _frame()
    folder = tmp_path / "run"
    folder.mkdir()
    _parquet(df[df["verifier"] == "a"], folder / "a.parquet")
    _parquet(df[df["verifier"] == "b"], folder / "b.parquet")
    res = import_path(store, folder, name="folder")
    assert res.info.n_scores == len(df) and res.info.n_responses == 90
    # the same row in both files: named by file and row
    _parquet(df[df["verifier"] == "a"].iloc[:3], folder / "c.parquet")
    exc = _fails(store, folder)
    assert {i.file for i in exc.issues} == {"c.parquet"}
    assert [i.line for i in exc.issues] == [1, 2, 3]
    assert all(
        "first seen at row" in i.message and i.message.endswith("of a.parquet") for i in exc.issues
    )


def test_a_failed_copy_leaves_the_connection_as_it_was(store: Store, tmp_path: Path) -> None:
    path = _parquet(_frame(), tmp_path / "d.parquet")
    import_path(store, path, name="taken")
    cur = store._cur()
    limit = cur.execute("SELECT current_setting('memory_limit')").fetchall()
    with pytest.raises(ImportValidationError, match="exists"):
        import_path(store, path, name="taken")
    from core.importers.staging import Staging

    staged = Staging(tmp_path)
    try:
        data, _ = to_canonical(
            read_long_parquet(path).frame, ValidationContext("d.parquet", "row"), keep_locs=True
        )
        staged.add(data)
        figures = staged.finish()
        with pytest.raises(Exception, match="exists"):
            store.ingest_staged(
                staged.path, figures, name="taken", source_format="x", content_sha256="y"
            )
    finally:
        staged.close()
    cur = store._cur()
    assert cur.execute("SELECT current_setting('memory_limit')").fetchall() == limit
    names = {r[0] for r in cur.execute("SELECT database_name FROM duckdb_databases()").fetchall()}
    assert not any(n.startswith("_stage") for n in names), names
    assert not staged.dir.exists()
