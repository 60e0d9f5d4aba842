"""The query path of typed long Parquet (#12): a file whose columns already have their
types is validated and staged as DuckDB queries. It must store exactly what the batch
path (the in-memory validator, batch by batch) stores, with the same content hash and
notes, and find every problem the batch path finds, at the same row and column."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import core.importers as importers
import core.importers.generic as generic
from core.importers import ImportResult, ImportValidationError, import_path
from core.store import Store
from tests.test_store import snapshot


def _frame(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    forms = ["\\boxed{3}", "3", "$3$", " 3 ", "\\dfrac{1}{2}", "\\frac{1}{2}", "4.", None]
    for p in range(6):
        for m in ("m1", "m2"):
            for i in range(5):
                ans = forms[int(rng.integers(0, len(forms)))]
                tok = None if i == 3 else int(rng.integers(10, 500))
                for v in ("prm", "orm"):
                    rows.append(
                        {
                            "problem_id": f"q{p}",
                            "sample_idx": i,
                            "llm": m,
                            "verifier": v,
                            "answer": ans,
                            "is_correct": ans in ("3", "\\boxed{3}"),
                            "gold_answer": "3" if p % 2 else None,
                            "score": float(np.round(rng.random(), 6)),
                            "n_tokens": tok,
                            "level": None if p == 0 else p,
                            "subject": "Algebra" if p % 2 else None,
                            "problem_text": f"problem {p}",
                        }
                    )
    return pd.DataFrame(rows)


def _write(df: pd.DataFrame, path: Path, types: dict[str, pa.DataType] | None = None) -> Path:
    fields = {
        "problem_id": pa.string(),
        "sample_idx": pa.int64(),
        "llm": pa.string(),
        "verifier": pa.string(),
        "answer": pa.string(),
        "answer_key": pa.string(),
        "is_correct": pa.bool_(),
        "gold_answer": pa.string(),
        "score": pa.float64(),
        "n_tokens": pa.int64(),
        "level": pa.int64(),
        "subject": pa.string(),
        "problem_text": pa.string(),
    }
    fields.update(types or {})
    table = pa.table(
        {
            c: pa.array([None if v is None or v != v else v for v in df[c]], fields[c])
            for c in df.columns
        }
    )
    pq.write_table(table, path)
    return path


def _rows(store: Store, name: str) -> dict[str, Any]:
    info = store.get_dataset(name)
    cur = store._cur()
    out: dict[str, Any] = {}
    for t in ("problems", "responses", "scores"):
        rows = cur.execute(
            f"SELECT * EXCLUDE (dataset_id) FROM {t} WHERE dataset_id = ?", [info.dataset_id]
        ).fetchall()
        out[t] = sorted(rows, key=repr)
    for f in ("content_sha256", "n_problems", "n_responses", "n_scores", "llms", "verifiers"):
        out[f] = getattr(info, f)
    out["grader"], out["notes"], out["format"] = info.grader, info.notes, info.source_format
    return out


def _both(
    store: Store, path: Path, monkeypatch: pytest.MonkeyPatch, **kw: Any
) -> tuple[ImportResult, ImportResult]:
    """The file through the query path (proven: the batch reader is disabled) and
    through the batch path."""
    with monkeypatch.context() as m:
        m.setattr(importers, "stream_long_parquet", _no_batches)
        fast = import_path(store, path, name="typed", **kw)
    with monkeypatch.context() as m:
        m.setattr(importers, "TYPED_PATH", False)
        slow = import_path(store, path, name="batch", **kw)
    return fast, slow


def _no_batches(*a: object, **k: object) -> None:
    raise AssertionError("the typed file took the batch path")


@pytest.mark.parametrize(
    "variant",
    [
        "full",
        "no_names",
        "answer_key",
        "no_answer",
        "float32_int32",
        "raw_differs",
        "full_parquet",
        "no_names_parquet",
        "answer_key_parquet",
        "no_answer_parquet",
    ],
)
def test_the_query_path_stores_what_the_batch_path_stores(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variant: str
) -> None:
    df = _frame()
    types: dict[str, pa.DataType] = {}
    kw: dict[str, Any] = {}
    if variant.endswith("_parquet"):
        kw["storage"] = "parquet"
        variant = variant.removesuffix("_parquet")
    if variant == "no_names":
        df = df[(df.llm == "m1") & (df.verifier == "prm")].drop(columns=["llm", "verifier"])
    elif variant == "answer_key":
        df["answer_key"] = df["answer"].fillna("none").str.strip()
    elif variant == "no_answer":
        df = df.drop(columns=["answer"])
    elif variant == "raw_differs":  # one verifier writes the same answers differently
        orm = (df.verifier == "orm") & (df.answer == "3")
        df.loc[orm, "answer"] = "\\boxed{3}"
    elif variant == "float32_int32":
        types = {"score": pa.float32(), "sample_idx": pa.int32(), "n_tokens": pa.int16()}
    path = _write(df, tmp_path / "d.parquet", types)
    fast, slow = _both(store, path, monkeypatch, **kw)
    assert fast.notes == slow.notes and fast.fmt == slow.fmt == "long-parquet"
    a, b = _rows(store, "typed"), _rows(store, "batch")
    assert a == b
    if kw:
        assert fast.info.storage == slow.info.storage == "parquet"
        for query in ("export_long", "responses", "problems", "pair_summary"):
            pd.testing.assert_frame_equal(
                getattr(store, query)("typed"), getattr(store, query)("batch")
            )
    else:
        assert len(a["scores"]) == len(df)


def _issues(store: Store, path: Path, monkeypatch: pytest.MonkeyPatch, typed: bool) -> list[Any]:
    before = snapshot(store)
    with monkeypatch.context() as m:
        if typed:
            m.setattr(importers, "stream_long_parquet", _no_batches)
        else:
            m.setattr(importers, "TYPED_PATH", False)
        with pytest.raises(ImportValidationError) as err:
            import_path(store, path, name="bad")
    assert snapshot(store) == before
    return list(err.value.issues)


@pytest.mark.parametrize(
    ("damage", "column", "words"),
    [
        ("negative_sample", "sample_idx", "must be >= 0, got -2"),
        ("huge_sample", "sample_idx", "must be at most 2147483647"),
        ("infinite_score", "score", "value is infinite (inf)"),
        ("nan_score", "score", "value is NaN"),
        ("null_score", "score", "missing value"),
        ("null_problem", "problem_id", "missing value"),
        ("null_llm", "llm", "missing value"),
        ("negative_tokens", "n_tokens", "must be >= 0, got -1"),
        ("long_answer", "answer", "20,000 characters; an answer may have at most 10,000"),
        ("huge_level", "level", "expected a level number, got '1234567'"),
        ("duplicate", "sample_idx", "duplicate key (llm='m1', verifier='prm'"),
        ("label_conflict", "is_correct", "is_correct of response (llm='m1'"),
        ("gold_conflict", "gold_answer", "conflicting gold answers for problem 'q1'"),
    ],
)
def test_the_query_path_finds_what_the_batch_path_finds(
    store: Store,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    damage: str,
    column: str,
    words: str,
) -> None:
    df = _frame()
    at = 7  # the 8th row of the file
    if damage == "negative_sample":
        df.loc[at, "sample_idx"] = -2
    elif damage == "huge_sample":
        df.loc[at, "sample_idx"] = 2**31 + 5
    elif damage == "infinite_score":
        df.loc[at, "score"] = np.inf
    elif damage in ("nan_score", "null_score"):
        df["score"] = df["score"].astype(object)
        df.loc[at, "score"] = np.nan if damage == "nan_score" else None
    elif damage == "null_problem":
        df.loc[at, "problem_id"] = None
    elif damage == "null_llm":
        df.loc[at, "llm"] = None
    elif damage == "negative_tokens":
        df.loc[at, "n_tokens"] = -1
    elif damage == "long_answer":
        df.loc[at, "answer"] = "x" * 20_000
    elif damage == "huge_level":
        df.loc[at, "level"] = 1234567
    elif damage == "duplicate":
        df = pd.concat([df, df.iloc[[0]]], ignore_index=True)
        at = len(df) - 1
    elif damage == "label_conflict":
        df.loc[1, "is_correct"] = not df.loc[1, "is_correct"]  # row 2: orm of row 1's response
        at = 1
    elif damage == "gold_conflict":
        first = df.index[df.problem_id == "q1"][3]
        df.loc[first, "gold_answer"] = "4"
        at = int(first)
    path = _write(df, tmp_path / "d.parquet")
    if damage == "nan_score":  # NaN, not null: write the float column directly
        t = pq.read_table(path)
        vals = [float("nan") if i == at else v for i, v in enumerate(df["score"].tolist())]
        t = t.set_column(t.schema.get_field_index("score"), "score", pa.array(vals, pa.float64()))
        pq.write_table(t, path)
    fast = _issues(store, path, monkeypatch, typed=True)
    slow = _issues(store, path, monkeypatch, typed=False)
    hit = [i for i in fast if i.column == column and i.line == at + 1]
    assert hit and words in hit[0].message, [str(i) for i in fast]
    assert all(i.file == "d.parquet" and i.location_kind == "row" for i in fast)
    # the batch path names the same row and column
    assert any(i.column == column and i.line == at + 1 for i in slow), [str(i) for i in slow]


def test_an_untyped_file_takes_the_batch_path(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    df = _frame()
    df["is_correct"] = df["is_correct"].map({True: "yes", False: "no"})
    path = _write(df, tmp_path / "d.parquet", {"is_correct": pa.string()})
    calls: list[Path] = []
    real = generic.stream_long_parquet

    def spy(p: Path, *a: Any, **k: Any) -> Any:
        calls.append(p)
        return real(p, *a, **k)

    monkeypatch.setitem(importers.STREAMERS, "long-parquet", spy)
    res = import_path(store, path, name="text labels")
    assert calls == [path]
    assert res.info.n_scores == len(df)


@pytest.mark.parametrize("bits", [64, 1])
def test_duplicates_are_found_with_and_without_the_verifier_bitmask(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bits: int
) -> None:
    import core.importers.sqlcheck as sqlcheck

    monkeypatch.setattr(sqlcheck, "MAX_VERIFIER_BITS", bits)  # 1 < 2 verifiers: a hash pass
    df = _frame()
    df = pd.concat([df, df.iloc[[5]]], ignore_index=True)
    found = _issues(store, _write(df, tmp_path / "d.parquet"), monkeypatch, typed=True)
    assert [(i.line, i.column) for i in found] == [(len(df), "sample_idx")]
    assert "first seen at row 6" in found[0].message
    clean = _write(_frame(), tmp_path / "clean.parquet")
    assert import_path(store, clean, name="clean").info.n_scores == len(_frame())


def test_a_query_that_fails_is_a_named_problem_and_nothing_is_stored(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import duckdb

    import core.importers.sqlcheck as sqlcheck

    def broken(self: object, types: object) -> None:
        raise duckdb.OutOfMemoryException("Out of Memory Error: could not allocate block")

    monkeypatch.setattr(sqlcheck.QueryChecks, "row_issues", broken)
    found = _issues(store, _write(_frame(), tmp_path / "d.parquet"), monkeypatch, typed=True)
    assert [str(i) for i in found] == [
        "d.parquet: could not be checked: Out of Memory Error: could not allocate block"
    ]


def test_an_aggregate_out_of_memory_is_run_again_on_one_thread(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import duckdb

    import core.importers.sqlcheck as sqlcheck

    real = sqlcheck.QueryChecks.spilling
    seen: list[str] = []

    def once_out_of_memory(self: sqlcheck.QueryChecks, table: str, sql: str) -> None:
        if not seen:  # the first aggregate's first attempt runs out of memory
            seen.append(table)
            con = self._con()
            original = con.execute

            class Flaky:
                calls = 0

            def execute(q: str, *a: object) -> object:
                if q == sql and Flaky.calls == 0:
                    Flaky.calls += 1
                    raise duckdb.OutOfMemoryException("Out of Memory Error")
                if q == "SET threads = 1":
                    seen.append("one thread")
                return original(q, *a)

            self.con = type(
                "Con",
                (),
                {"execute": staticmethod(execute), "__getattr__": lambda _s, n: getattr(con, n)},
            )()  # type: ignore[assignment]
            try:
                real(self, table, sql)
            finally:
                self.con = con
            return
        real(self, table, sql)

    monkeypatch.setattr(sqlcheck.QueryChecks, "spilling", once_out_of_memory)
    res = import_path(store, _write(_frame(), tmp_path / "d.parquet"), name="d")
    assert seen == ["r_first", "one thread"]
    assert res.info.n_scores == len(_frame())
