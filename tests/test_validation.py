"""Every validation error of the generic importers, one test each.

Each test builds a file with exactly one kind of defect and checks that the error names the
file, the line/row and the column, and that nothing reached the database.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.importers import ImportValidationError, import_path
from core.importers.errors import MAX_SHOWN
from core.store import Store

HEADER = "problem_id,sample_idx,llm,verifier,answer,gold_answer,is_correct,score,step_scores"
GOOD = [
    'p1,0,m,prm,3,3,true,0.9,"[0.5, 0.9]"',
    'p1,1,m,prm,4,3,false,0.2,"[0.5, 0.2]"',
    'p2,0,m,prm,7,7,true,0.7,"[0.7]"',
]


def write_csv(tmp_path: Path, lines: list[str], header: str = HEADER, name: str = "in.csv") -> Path:
    p = tmp_path / name
    p.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    return p


def issues_of(store: Store, path: Path, **kw: object) -> list:
    with pytest.raises(ImportValidationError) as ei:
        import_path(store, path, **kw)  # type: ignore[arg-type]
    assert store.list_datasets() == [], "a failed import must leave the store unchanged"
    return ei.value.issues


def test_good_file_imports(store: Store, tmp_path: Path) -> None:
    res = import_path(store, write_csv(tmp_path, GOOD), name="ok")
    assert res.info.n_responses == 3
    assert res.info.n_problems == 2


def test_missing_column_suggests_closest_name(store: Store, tmp_path: Path) -> None:
    header = HEADER.replace("sample_idx", "sample_index")
    issues = issues_of(store, write_csv(tmp_path, GOOD, header=header))
    msgs = {i.column: i.message for i in issues}
    assert "sample_idx" in msgs
    assert "sample_index" in msgs["sample_idx"], "the closest present column is named"
    assert all(i.file == "in.csv" for i in issues)


def test_misnamed_optional_column_is_flagged(store: Store, tmp_path: Path) -> None:
    header = HEADER.replace("verifier", "verifer")
    issues = issues_of(store, write_csv(tmp_path, GOOD, header=header))
    assert [i.column for i in issues] == ["verifer"]
    assert "did you mean 'verifier'" in issues[0].message


def test_missing_score_and_correctness_sources(store: Store, tmp_path: Path) -> None:
    header = "problem_id,sample_idx,answer"
    issues = issues_of(store, write_csv(tmp_path, ["p,0,1"], header=header))
    cols = sorted(i.column for i in issues)
    assert cols == ["is_correct", "score"]


@pytest.mark.parametrize(
    ("bad_line", "column", "fragment"),
    [
        ('p2,x,m,prm,7,7,true,0.7,"[0.7]"', "sample_idx", "expected a number, got 'x'"),
        ('p2,1.5,m,prm,7,7,true,0.7,"[0.7]"', "sample_idx", "expected an integer"),
        ('p2,-1,m,prm,7,7,true,0.7,"[0.7]"', "sample_idx", "must be >= 0"),
        ('p2,1,m,prm,7,7,true,high,"[0.7]"', "score", "expected a number, got 'high'"),
        ('p2,1,m,prm,7,7,maybe,0.7,"[0.7]"', "is_correct", "expected true/false"),
        ('p2,1,m,prm,7,7,true,0.7,"[0.7, oops]"', "step_scores", "JSON list"),
        ('p2,1,m,prm,7,7,true,0.7,"{""a"": 1}"', "step_scores", "expected a list"),
    ],
)
def test_wrong_types(
    store: Store, tmp_path: Path, bad_line: str, column: str, fragment: str
) -> None:
    issues = issues_of(store, write_csv(tmp_path, [*GOOD, bad_line]))
    assert len(issues) == 1, issues
    (i,) = issues
    assert (i.file, i.line, i.column) == ("in.csv", 5, column)
    assert fragment in i.message


@pytest.mark.parametrize(
    ("value", "fragment"),
    [("nan", "NaN"), ("NaN", "NaN"), ("inf", "infinite"), ("-inf", "infinite")],
)
def test_non_finite_scores(store: Store, tmp_path: Path, value: str, fragment: str) -> None:
    issues = issues_of(store, write_csv(tmp_path, [*GOOD, f"p2,1,m,prm,7,7,true,{value},"]))
    assert [(i.line, i.column) for i in issues] == [(5, "score")]
    assert fragment in issues[0].message


def test_non_finite_step_scores(store: Store, tmp_path: Path) -> None:
    p = tmp_path / "in.jsonl"
    recs = [
        {
            "problem_id": "a",
            "sample_idx": 0,
            "is_correct": True,
            "score": 0.5,
            "step_scores": [0.5],
        },
        {
            "problem_id": "a",
            "sample_idx": 1,
            "is_correct": True,
            "score": 0.5,
            "step_scores": [0.1, float("nan")],
        },
    ]
    p.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    issues = issues_of(store, p)
    # JSON has no NaN: the line is refused as it is read, naming the field
    assert [i.line for i in issues] == [2]
    assert "'step_scores'" in issues[0].message and "NaN" in issues[0].message


def test_empty_step_score_list(store: Store, tmp_path: Path) -> None:
    issues = issues_of(store, write_csv(tmp_path, [*GOOD, 'p2,1,m,prm,7,7,true,0.5,"[]"']))
    assert [(i.line, i.column) for i in issues] == [(5, "step_scores")]
    assert "empty step-score list" in issues[0].message


def test_missing_score_without_steps(store: Store, tmp_path: Path) -> None:
    issues = issues_of(store, write_csv(tmp_path, [*GOOD, "p2,1,m,prm,7,7,true,,"]))
    assert [(i.line, i.column) for i in issues] == [(5, "score")]


def test_score_taken_from_last_step_when_absent(store: Store, tmp_path: Path) -> None:
    header = "problem_id,sample_idx,is_correct,step_scores"
    p = write_csv(tmp_path, ['a,0,1,"[0.1, 0.8]"', 'a,1,0,"[0.3]"'], header=header)
    import_path(store, p, name="steps")
    assert store.scores("steps")["score"].tolist() == [0.8, 0.3]


def test_duplicate_keys(store: Store, tmp_path: Path) -> None:
    issues = issues_of(store, write_csv(tmp_path, [*GOOD, 'p1,1,m,prm,4,3,false,0.3,"[0.3]"']))
    dup = [i for i in issues if "duplicate" in i.message]
    assert len(dup) == 1
    assert dup[0].line == 5 and "first seen at line 3" in dup[0].message


def test_conflicting_gold_answers(store: Store, tmp_path: Path) -> None:
    issues = issues_of(store, write_csv(tmp_path, [*GOOD, 'p2,1,m,prm,7,8,true,0.7,"[0.7]"']))
    assert [(i.line, i.column) for i in issues] == [(5, "gold_answer")]
    assert "'8' here, '7' at line 4" in issues[0].message


def test_conflicting_answer_across_verifiers(store: Store, tmp_path: Path) -> None:
    # the same response (m, p1, 0) scored by a second verifier claims another answer
    issues = issues_of(store, write_csv(tmp_path, [*GOOD, 'p1,0,m,orm,5,3,true,0.4,"[0.4]"']))
    assert any(i.column == "answer" and i.line == 5 for i in issues)


def test_empty_file(store: Store, tmp_path: Path) -> None:
    for name in ("e.csv", "e.jsonl", "e.parquet"):
        p = tmp_path / name
        p.write_bytes(b"")
        issues = issues_of(
            store,
            p,
            fmt={"e.csv": "long-csv", "e.jsonl": "long-jsonl", "e.parquet": "long-parquet"}[name],
        )
        assert [i.message for i in issues] == ["the file is empty"]
        assert issues[0].file == name


def test_header_only_csv(store: Store, tmp_path: Path) -> None:
    issues = issues_of(store, write_csv(tmp_path, []))
    assert "no data rows" in issues[0].message


def test_undecodable_file(store: Store, tmp_path: Path) -> None:
    p = tmp_path / "latin1.csv"
    p.write_bytes(
        (HEADER + "\n" + GOOD[0] + "\n").encode() + "p2,0,m,prm,é,7,true,0.7,\n".encode("latin-1")
    )
    issues = issues_of(store, p)
    assert [(i.file, i.line) for i in issues] == [("latin1.csv", 3)]
    assert "UTF-8" in issues[0].message


def test_binary_garbage_as_parquet(store: Store, tmp_path: Path) -> None:
    p = tmp_path / "x.parquet"
    p.write_bytes(b"this is not parquet at all")
    issues = issues_of(store, p)
    assert "Parquet" in issues[0].message


def test_truncated_last_line(store: Store, tmp_path: Path) -> None:
    p = tmp_path / "t.jsonl"
    good = {"problem_id": "a", "sample_idx": 0, "is_correct": True, "score": 0.5}
    p.write_text(json.dumps(good) + "\n" + json.dumps({**good, "sample_idx": 1})[:30])
    issues = issues_of(store, p, fmt="long-jsonl")
    assert [(i.line, i.file) for i in issues] == [(2, "t.jsonl")]
    assert "truncated record" in issues[0].message


def test_invalid_json_in_the_middle_is_not_called_truncated(store: Store, tmp_path: Path) -> None:
    p = tmp_path / "m.jsonl"
    good = {"problem_id": "a", "sample_idx": 0, "is_correct": True, "score": 0.5}
    p.write_text(json.dumps(good) + "\n{oops\n" + json.dumps({**good, "sample_idx": 1}) + "\n")
    issues = issues_of(store, p, fmt="long-jsonl")
    assert [i.line for i in issues] == [2]
    assert "invalid JSON" in issues[0].message


def test_many_errors_reported_together(store: Store, tmp_path: Path) -> None:
    bad = [f'p{k},0,m,prm,1,1,true,bad{k},"[0.1]"' for k in range(30)]
    with pytest.raises(ImportValidationError) as ei:
        import_path(store, write_csv(tmp_path, bad))
    err = ei.value
    assert len(err.issues) == 30
    text = str(err)
    assert text.startswith("30 problems found")
    assert text.count("\n  - ") == MAX_SHOWN
    assert "... and 10 more" in text
    assert list(err.to_frame().columns) == ["file", "where", "column", "problem"]


def test_parquet_errors_name_rows(store: Store, tmp_path: Path) -> None:
    p = tmp_path / "x.parquet"
    df = pd.DataFrame(
        {
            "problem_id": ["a", "a", "b"],
            "sample_idx": [0, 1, 0],
            "is_correct": [True, False, True],
            "score": [0.5, float("inf"), 0.1],
        }
    )
    pq.write_table(pa.Table.from_pandas(df), p)
    issues = issues_of(store, p)
    assert [(i.location_kind, i.line, i.column) for i in issues] == [("row", 2, "score")]


def test_wide_jsonl_length_mismatch(store: Store, tmp_path: Path) -> None:
    p = tmp_path / "w.jsonl"
    lines = [
        {
            "problem_id": "a",
            "gold_answer": "1",
            "answers": ["1", "2"],
            "scores": {"prm": [0.1, 0.2]},
        },
        {
            "problem_id": "b",
            "gold_answer": "1",
            "answers": ["1", "2", "3"],
            "scores": {"prm": [0.1, 0.2]},
        },
    ]
    p.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    issues = issues_of(store, p)
    assert [(i.line, i.column) for i in issues] == [(2, "scores")]
    assert "has 2 values but answers has 3" in issues[0].message


def test_unknown_format_is_explained(store: Store, tmp_path: Path) -> None:
    p = tmp_path / "odd.jsonl"
    p.write_text(json.dumps({"foo": 1}) + "\n")
    issues = issues_of(store, p)
    assert "matches no known format" in issues[0].message
    q = tmp_path / "odd.txt"
    q.write_text("hello")
    assert "unsupported file type" in issues_of(store, q)[0].message


def test_existing_name_requires_replace(store: Store, tmp_path: Path) -> None:
    p = write_csv(tmp_path, GOOD)
    import_path(store, p, name="d")
    with pytest.raises(ImportValidationError, match="exists"):
        import_path(store, p, name="d")
    assert len(store.list_datasets()) == 1
    old_id = store.get_dataset("d").dataset_id
    import_path(store, p, name="d", replace=True)
    assert store.get_dataset("d").dataset_id != old_id
    assert len(store.list_datasets()) == 1
