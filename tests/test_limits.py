"""The documented input limits (core.importers.limits): each exceeded limit is a named
error at the right file, line and column, and the store is left unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import core.importers.generic as generic
from core.importers import ImportValidationError, import_path
from core.importers.errors import loads
from core.importers.limits import MAX_ANSWER_CHARS, MAX_BOXES, MAX_DEPTH
from core.store import Store


def refused(store: Store, path: Path, **kw: object) -> list:
    with pytest.raises(ImportValidationError) as ei:
        import_path(store, path, **kw)  # type: ignore[arg-type]
    assert store.list_datasets() == []
    return ei.value.issues


def long_rows(answers: list[str]) -> str:
    rows = [
        {
            "problem_id": f"p{i // 2}",
            "sample_idx": i % 2,
            "answer": a,
            "gold_answer": "3",
            "is_correct": a == "3",
            "score": 0.5,
        }
        for i, a in enumerate(answers)
    ]
    return "".join(json.dumps(r) + "\n" for r in rows)


def nest(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth  # `depth` levels of lists


def test_nesting_depth_limit_is_exact() -> None:
    inner_ok = {"k": json.loads(nest(MAX_DEPTH - 1))}  # the object is level 1
    assert loads(json.dumps(inner_ok)) == inner_ok
    with pytest.raises(json.JSONDecodeError, match=f"more than {MAX_DEPTH} levels"):
        loads(json.dumps({"k": json.loads(nest(MAX_DEPTH))}))
    with pytest.raises(json.JSONDecodeError, match=f"more than {MAX_DEPTH} levels"):
        loads("[" * 5000 + "]" * 5000)  # deeper than Python's recursion limit


def test_deep_record_is_a_named_error(store: Store, tmp_path: Path) -> None:
    text = long_rows(["3", "4", "3", "3"])
    deep = json.dumps({"problem_id": "p9", "sample_idx": 0, "score": json.loads(nest(70))})
    p = tmp_path / "deep.jsonl"
    p.write_text(text + deep + "\n", encoding="utf-8")
    (issue,) = refused(store, p)
    assert issue.file == "deep.jsonl" and issue.line == 5
    assert f"more than {MAX_DEPTH} levels" in issue.message


def test_long_answer_is_refused_before_grading(store: Store, tmp_path: Path) -> None:
    long = "1" * (MAX_ANSWER_CHARS + 1)
    ok = "2" * MAX_ANSWER_CHARS
    p = tmp_path / "long.jsonl"
    p.write_text(long_rows(["3", ok, long, "3"]), encoding="utf-8")
    (issue,) = refused(store, p)
    assert (issue.line, issue.column) == (3, "answer")
    assert f"{MAX_ANSWER_CHARS + 1:,} characters" in issue.message
    # graded input (no is_correct): refused the same way, before any grading
    rows = [json.loads(x) for x in long_rows(["3", ok, long, "3"]).splitlines()]
    for r in rows:
        del r["is_correct"]
    p.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (issue,) = refused(store, p)
    assert (issue.line, issue.column) == (3, "answer")


def test_long_gold_answer_is_refused(store: Store, tmp_path: Path) -> None:
    rows = [json.loads(x) for x in long_rows(["3", "4"]).splitlines()]
    rows[1]["gold_answer"] = "9" * (MAX_ANSWER_CHARS + 5)
    p = tmp_path / "gold.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    issues = refused(store, p)
    assert any(i.line == 2 and i.column == "gold_answer" for i in issues)


def test_a_line_over_the_limit_is_named(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(generic, "MAX_LINE_CHARS", 200)
    rows = long_rows(["3", "4", "3", "3"]).splitlines()
    rec = json.loads(rows[2])
    rec["problem_text"] = "x" * 300
    rows[2] = json.dumps(rec)
    p = tmp_path / "wide.jsonl"
    p.write_text("\n".join(rows) + "\n", encoding="utf-8")
    (issue,) = refused(store, p)
    assert issue.line == 3 and "the limit is 200" in issue.message
    c = tmp_path / "wide.csv"
    c.write_text(
        "problem_id,sample_idx,answer,gold_answer,is_correct,score\n"
        "p1,0,3,3,true,0.5\n"
        f"p1,1,{'4' * 300},3,false,0.5\n"
        "p2,0,3,3,true,0.5\n" + "p3,0,3,3,true,0.5\n" * 0,
        encoding="utf-8",
    )
    (issue,) = refused(store, c)
    assert issue.file == "wide.csv" and issue.line == 3 and "the limit is 200" in issue.message


def test_too_many_boxes_in_a_completion(store: Store, tmp_path: Path) -> None:
    rec = {
        "unique_id": "p1",
        "problem": "1+2",
        "answer": "3",
        "completions": ["so \\boxed{3}", "\\boxed{" * (MAX_BOXES + 1)],
        "scores": [[0.9], [0.1]],
    }
    ok = dict(rec, unique_id="p0", completions=["\\boxed{3}", "\\boxed{4}"])
    p = tmp_path / "sal.jsonl"
    p.write_text(json.dumps(ok) + "\n" + json.dumps(rec) + "\n", encoding="utf-8")
    (issue,) = refused(store, p, fmt="sal")
    assert issue.line == 2 and issue.column == "completions"
    assert "completion 1" in issue.message and f"{MAX_BOXES:,}" in issue.message
