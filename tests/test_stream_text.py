"""CSV and JSON Lines imports read in chunks of whole lines (issue 12: streaming import).

The chunk size is made tiny here so that files of a few kilobytes cross many chunk
boundaries: every rule of the whole-file reader must still hold, and every error must
still name the file's own line.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest

import core.importers.generic as generic
from core.importers import ImportValidationError, ReadOptions, import_path
from core.importers.chunks import line_chunks
from core.store import Store

HEADER = "problem_id,sample_idx,llm,verifier,answer,gold_answer,is_correct,score,n_tokens"


def csv_rows(n_problems: int, n_samples: int) -> list[str]:
    return [
        f"p{p},{s},m,prm,{s % 3},1,{str(s % 3 == 1).lower()},{(p * 7 + s) % 10 / 10},{10 + s}"
        for p in range(n_problems)
        for s in range(n_samples)
    ]


@pytest.fixture
def tiny_chunks(monkeypatch: pytest.MonkeyPatch) -> int:
    """Chunks of 97 bytes: every few lines start a new batch."""
    monkeypatch.setattr(generic, "TEXT_CHUNK_BYTES", 97)
    return 97


def issues_of(store: Store, path: Path, **kw: object) -> list:  # type: ignore[type-arg]
    before = store.list_datasets()
    with pytest.raises(ImportValidationError) as ei:
        import_path(store, path, **kw)  # type: ignore[arg-type]
    assert store.list_datasets() == before, "a failed import must leave the store unchanged"
    return ei.value.issues


# ---- the chunker ----------------------------------------------------------------------


def test_chunks_are_whole_lines_numbered_from_the_file(tmp_path: Path) -> None:
    lines = [f"line {i} " + "x" * (i % 13) for i in range(1, 201)]
    p = tmp_path / "t.txt"
    p.write_bytes(("\n".join(lines) + "\n").encode())
    chunks = list(line_chunks(p, "t.txt", chunk_bytes=50))
    assert len(chunks) > 20
    seen: list[str] = []
    offset = 0
    for c in chunks:
        assert c.complete and c.offset == offset
        got = c.data.decode().splitlines()
        assert got[0] == f"line {c.first_line} " + "x" * (c.first_line % 13)
        seen.extend(got)
        offset += len(c.data)
    assert seen == lines


def test_chunker_skips_an_overlong_line_and_keeps_counting(tmp_path: Path) -> None:
    p = tmp_path / "t.txt"
    p.write_bytes(b"a\nb\n" + b"z" * 500 + b"\nc\nd")  # no final newline
    digest = hashlib.sha256()
    chunks = list(line_chunks(p, "t.txt", chunk_bytes=64, max_line=100, digest=digest))
    long = [c for c in chunks if c.overlong]
    assert [(c.first_line, c.overlong) for c in long] == [(3, 500)]
    text = [(c.first_line, c.data) for c in chunks if not c.overlong]
    assert b"".join(d for _, d in text) == b"a\nb\nc\nd"
    assert text[-1][0] + text[-1][1].count(b"\n") == 5  # "d" is line 5
    assert not chunks[-1].complete
    assert digest.hexdigest() == hashlib.sha256(p.read_bytes()).hexdigest()


def test_chunker_refuses_bare_cr_and_blank_files(tmp_path: Path) -> None:
    mac = tmp_path / "mac.csv"
    mac.write_bytes(b"a,b\r1,2\r3,4\r")
    with pytest.raises(ImportValidationError, match="bare CR"):
        list(line_chunks(mac, "mac.csv", chunk_bytes=4))
    blank = tmp_path / "blank.csv"
    blank.write_bytes(b"  \n\n \t\n")
    with pytest.raises(ImportValidationError, match="the file is empty"):
        list(line_chunks(blank, "blank.csv", chunk_bytes=4))


# ---- CSV ---------------------------------------------------------------------------------


def test_csv_batches_equal_an_independent_reader(tmp_path: Path, tiny_chunks: int) -> None:
    rows = csv_rows(6, 5)
    text = HEADER + "\n" + "\n".join(rows[:10]) + "\n\n  \n" + "\n".join(rows[10:]) + "\n"
    p = tmp_path / "in.csv"
    p.write_text(text)
    sr = generic.stream_long_csv(p)
    frames = [f for f, issues in sr.batches() if f is not None and not issues]
    assert len(frames) > 5, "tiny chunks give many batches"
    got = pd.concat(frames, ignore_index=True)
    ref = pd.read_csv(p, dtype=str, keep_default_na=False, skip_blank_lines=True)
    assert got.drop(columns="_loc").to_numpy().tolist() == ref.to_numpy().tolist()
    # line numbers of the file: rows 11+ come after two blank lines
    expected = [*range(2, 12), *range(14, 14 + len(rows) - 10)]
    assert got["_loc"].tolist() == expected
    assert sr.sha256 == hashlib.sha256(text.encode()).hexdigest()
    assert sr.done_bytes == len(text.encode())


def test_csv_streamed_import_matches_one_chunk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = tmp_path / "in.csv"
    p.write_text(HEADER + "\n" + "\n".join(csv_rows(8, 6)) + "\n")
    one = Store(tmp_path / "one.duckdb")
    many = Store(tmp_path / "many.duckdb")
    try:
        a = import_path(one, p, name="d")
        monkeypatch.setattr(generic, "TEXT_CHUNK_BYTES", 61)
        b = import_path(many, p, name="d")
        assert (a.info.n_responses, a.info.n_problems) == (48, 8)
        assert (b.info.n_responses, b.info.n_problems, b.info.content_sha256) == (
            48,
            8,
            a.info.content_sha256,
        )
        key = ["problem_id", "sample_idx"]
        ra = one.responses("d").sort_values(key).reset_index(drop=True)
        rb = many.responses("d").sort_values(key).reset_index(drop=True)
        pd.testing.assert_frame_equal(ra, rb)
    finally:
        one.close()
        many.close()


def test_csv_error_in_a_late_chunk_names_its_line(
    store: Store, tmp_path: Path, tiny_chunks: int
) -> None:
    rows = csv_rows(10, 4)
    rows[33] = rows[33].replace(",m,prm,", ",m,prm,").rsplit(",", 2)[0] + ",oops,12"
    p = tmp_path / "in.csv"
    p.write_text(HEADER + "\n" + "\n".join(rows) + "\n")
    issues = issues_of(store, p)
    assert [(i.file, i.line, i.column) for i in issues] == [("in.csv", 35, "score")]


def test_csv_ragged_row_in_a_late_chunk_names_its_line(
    store: Store, tmp_path: Path, tiny_chunks: int
) -> None:
    rows = csv_rows(10, 4)
    rows[25] += ",extra"
    p = tmp_path / "in.csv"
    p.write_text(HEADER + "\n" + "\n".join(rows) + "\n")
    issues = issues_of(store, p)
    assert len(issues) == 1 and issues[0].line == 27
    assert "CSV parse error" in issues[0].message


def test_csv_undecodable_byte_in_a_late_chunk(
    store: Store, tmp_path: Path, tiny_chunks: int
) -> None:
    head = (HEADER + "\n" + "\n".join(csv_rows(5, 4)) + "\n").encode()
    bad = "p9,0,m,prm,é,1,true,0.5,3\n".encode("latin-1")
    p = tmp_path / "latin1.csv"
    p.write_bytes(head + bad)
    issues = issues_of(store, p)
    assert [(i.file, i.line) for i in issues] == [("latin1.csv", 22)]
    assert f"byte {len(head) + bad.index(0xE9)} of the file" in issues[0].message


def test_csv_cut_off_last_row(store: Store, tmp_path: Path, tiny_chunks: int) -> None:
    text = HEADER + "\n" + "\n".join(csv_rows(5, 4)) + "\np9,0,m,prm,1,1,tr"
    p = tmp_path / "cut.csv"
    p.write_text(text)
    issues = issues_of(store, p)
    assert [(i.line, "final newline" in i.message) for i in issues] == [(22, True)]
    res = import_path(store, p, name="kept", complete_records_only=True)
    assert res.info.n_responses == 20
    assert any("skipped the last line" in n for n in res.notes)
    complete = text[: text.rfind("\n") + 1].encode()
    assert res.info.content_sha256 == hashlib.sha256(complete).hexdigest()


def test_csv_header_problems_are_found_before_any_batch(store: Store, tmp_path: Path) -> None:
    p = tmp_path / "dup.csv"
    p.write_text("problem_id,score,score\np,1,2\n")
    assert [(i.line, i.column) for i in issues_of(store, p)] == [(1, "score")]
    blank = tmp_path / "blankhead.csv"
    blank.write_text("\n" + HEADER + "\n")
    assert "header (line 1) is blank" in issues_of(store, blank)[0].message


# ---- JSON Lines ------------------------------------------------------------------------


def jsonl_records(n: int) -> list[dict[str, object]]:
    return [
        {
            "problem_id": f"p{k // 4}",
            "sample_idx": k % 4,
            "answer": str(k % 3),
            "gold_answer": "1",
            "is_correct": k % 3 == 1,
            "score": (k % 10) / 10,
        }
        for k in range(n)
    ]


def write_jsonl(p: Path, records: list[dict[str, object]], tail: str = "") -> Path:
    p.write_text("".join(json.dumps(r) + "\n" for r in records) + tail)
    return p


def test_jsonl_batches_keep_line_numbers_and_fingerprint(tmp_path: Path, tiny_chunks: int) -> None:
    recs = jsonl_records(30)
    p = write_jsonl(tmp_path / "l.jsonl", recs)
    sr = generic.stream_long_jsonl(p)
    frames = [f for f, issues in sr.batches() if f is not None]
    assert len(frames) > 5
    got = pd.concat(frames, ignore_index=True)
    assert got["_loc"].tolist() == list(range(1, 31))
    assert got["score"].tolist() == [r["score"] for r in recs]
    assert sr.sha256 == hashlib.sha256(p.read_bytes()).hexdigest()


def test_jsonl_errors_in_late_chunks(store: Store, tmp_path: Path, tiny_chunks: int) -> None:
    recs = jsonl_records(40)
    lines = [json.dumps(r) for r in recs]
    lines[22] = "{oops"
    p = tmp_path / "bad.jsonl"
    p.write_text("\n".join(lines) + "\n" + json.dumps(recs[0])[:25])
    issues = issues_of(store, p)
    assert [i.line for i in issues] == [23, 41]
    assert "invalid JSON" in issues[0].message and "truncated record" in issues[1].message
    res = import_path(store, p, name="kept", complete_records_only=True)
    assert res.info.n_responses == 39
    assert any("skipped 2 incomplete records" in n and "line 23" in n for n in res.notes)


def test_jsonl_field_that_appears_late(store: Store, tmp_path: Path, tiny_chunks: int) -> None:
    recs = jsonl_records(40)
    for r in recs[:20]:
        del r["is_correct"]  # graded by string match in the first batches...
    p = write_jsonl(tmp_path / "late.jsonl", recs)
    issues = issues_of(store, p)
    assert [(i.line, i.column) for i in issues] == [(1, "is_correct")]
    assert "first appears on line 21" in issues[0].message
    # arriving late as nulls only: still refused, named at the first record of its batch
    recs = jsonl_records(40)
    for k, r in enumerate(recs):
        if k < 20:
            del r["is_correct"]
        else:
            r["is_correct"] = None
    issues = issues_of(store, write_jsonl(tmp_path / "nulls.jsonl", recs))
    assert [(i.line, i.column) for i in issues[:1]] == [(1, "is_correct")]
    assert "first appears on line" in issues[0].message
    # an optional field arriving late is only a null in the early records
    recs = jsonl_records(40)
    for k, r in enumerate(recs[20:]):
        r["n_tokens"] = 100 + k
    res = import_path(store, write_jsonl(tmp_path / "ok.jsonl", recs), name="ok")
    tokens = store.responses("ok").sort_values(["problem_id", "sample_idx"])["n_tokens"]
    assert tokens.isna().sum() == 20 and tokens.dropna().astype(int).min() == 100
    assert res.info.n_responses == 40


def test_wide_jsonl_streams_like_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lines = [
        {
            "problem_id": f"q{k}",
            "gold_answer": "2",
            "answers": [str(j % 3) for j in range(5)],
            "scores": {"a": [j / 10 for j in range(5)], "b": [1 - j / 10 for j in range(5)]},
        }
        for k in range(12)
    ]
    p = write_jsonl(tmp_path / "w.jsonl", lines)
    whole = generic.read_wide_jsonl(p, ReadOptions()).frame
    monkeypatch.setattr(generic, "TEXT_CHUNK_BYTES", 150)
    sr = generic.stream_wide_jsonl(p)
    frames = [f for f, _ in sr.batches() if f is not None]
    assert len(frames) == 12  # one line per chunk
    got = pd.concat(frames, ignore_index=True)
    assert len(got) == 12 * 5 * 2
    assert got["_loc"].tolist() == [k + 1 for k in range(12) for _ in range(10)]
    assert got["score"].tolist() == whole["score"].tolist()
    assert got["answer"].tolist() == [str(j % 3) for _ in range(12) for _ in "ab" for j in range(5)]


def test_failed_late_batch_leaves_the_store_as_it_was(
    store: Store, tmp_path: Path, tiny_chunks: int
) -> None:
    good = tmp_path / "good.csv"
    good.write_text(HEADER + "\n" + "\n".join(csv_rows(3, 2)) + "\n")
    import_path(store, good, name="keep")
    rows = csv_rows(12, 4)
    rows[-1] = rows[-1].replace(",prm,", ",,")  # a missing verifier on the last line
    bad = tmp_path / "keep.csv"
    bad.write_text(HEADER + "\n" + "\n".join(rows) + "\n")
    issues = issues_of(store, bad, name="keep", replace=True)
    assert [(i.line, i.column) for i in issues] == [(49, "verifier")]
    assert store.get_dataset("keep").n_responses == 6 and len(store.responses("keep")) == 6
