"""Partitioned Parquet storage (#12 item 2): a dataset's score rows kept as files
partitioned by LLM and verifier (hive layout), written by the store for big imports or
registered in place (``ttslab import --in-place FOLDER``) without a copy. Every query
gives what the DuckDB-table storage gives, loading a pair reads only its files, a changed
file is an error, validation runs as queries naming file, row and column, and a failure
leaves the store (and the folder) exactly as they were."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

import core.store as store_mod
from core.importers import ImportValidationError, import_path
from core.importers.inplace import register_in_place
from core.parts import PartsError, keys_of, list_parts
from core.store import Store
from tests.conftest import ROOT, make_long_frame
from tests.test_store import snapshot


def _frame(**kw: object) -> pd.DataFrame:
    df = make_long_frame(
        n_problems=7, n_samples=5, llms=("m/1", "m 2"), verifiers=("prm", "7"), **kw
    )
    return df


def _write_folder(df: pd.DataFrame, root: Path) -> Path:
    """The frame as a hive-partitioned folder, as DuckDB writes one (values URL-encoded)."""
    con = duckdb.connect()
    con.register("df", df)
    con.execute(
        "COPY (SELECT * FROM df) TO ? (FORMAT parquet, PARTITION_BY (llm, verifier))", [str(root)]
    )
    con.close()
    return root


def _long(df: pd.DataFrame, path: Path) -> Path:
    df.to_parquet(path, index=False)
    return path


def _same_queries(store: Store, a: str, b: str) -> None:
    """Every query of the store gives the same rows for datasets a and b."""
    ia, ib = store.get_dataset(a), store.get_dataset(b)
    assert (ia.n_problems, ia.n_responses, ia.n_scores) == (
        ib.n_problems,
        ib.n_responses,
        ib.n_scores,
    )
    assert (ia.llms, ia.verifiers) == (ib.llms, ib.verifiers)
    for q in ("problems", "responses", "scores", "pair_summary", "export_long"):
        fa, fb = getattr(store, q)(a), getattr(store, q)(b)
        pd.testing.assert_frame_equal(fa, fb, check_dtype=False, rtol=1e-12)
    assert store.all_distinct_share(a) == pytest.approx(store.all_distinct_share(b))
    for m, v in ia.pairs:
        pa_, pb = store.load_pair(a, m, v), store.load_pair(b, m, v)
        assert pa_.problem_ids == pb.problem_ids
        for field in ("offsets", "cluster", "score", "correct", "sample_idx", "n_tokens"):
            np.testing.assert_array_equal(getattr(pa_, field), getattr(pb, field), err_msg=field)
        sa, sb = store.load_steps(a, m, v), store.load_steps(b, m, v)
        np.testing.assert_array_equal(sa[0], sb[0])
        np.testing.assert_array_equal(sa[1], sb[1])


def test_parquet_storage_gives_what_the_table_gives(store: Store, tmp_path: Path) -> None:
    df = _frame()
    df.loc[df["sample_idx"] == 2, "n_tokens"] = None  # some lengths unknown
    path = _long(df, tmp_path / "d.parquet")
    import_path(store, path, name="table", storage="table")
    res = import_path(store, path, name="parquet", storage="parquet")
    assert store.get_dataset("table").storage == "table"
    assert res.info.storage == "parquet"
    _same_queries(store, "table", "parquet")
    # the rows are in the files, not in the database; the files sit beside it
    cur = store._cur()
    assert cur.execute(
        "SELECT count(*) FROM scores WHERE dataset_id = ?", [res.info.dataset_id]
    ).fetchone() == (0,)
    parts, stray = list_parts(store.parts_root / f"dataset={res.info.dataset_id}")
    assert not stray
    assert sorted({(p.llm, p.verifier) for p in parts}) == sorted(res.info.pairs)


def test_auto_storage_switches_at_the_threshold(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _long(_frame(), tmp_path / "d.parquet")
    n = len(pd.read_parquet(path))
    monkeypatch.setattr(store_mod, "PARQUET_MIN_SCORES", n + 1)
    assert import_path(store, path, name="small").info.storage == "table"
    monkeypatch.setattr(store_mod, "PARQUET_MIN_SCORES", n)
    assert import_path(store, path, name="big").info.storage == "parquet"


def test_in_place_registration_gives_what_an_import_gives(store: Store, tmp_path: Path) -> None:
    df = _frame()
    df["answer_key"] = df["answer"]  # in place, keys are taken as written
    import_path(store, _long(df, tmp_path / "d.parquet"), name="imported")
    folder = _write_folder(df, tmp_path / "study")
    before = sorted(p.name for p in folder.rglob("*"))
    info, files, notes = register_in_place(store, folder, name="in place")
    assert info.storage == "in-place" and info.source_path == str(folder.resolve())
    assert len(files) == 4
    _same_queries(store, "imported", "in place")
    # nothing was copied or written into the folder, nor beside the database
    assert sorted(p.name for p in folder.rglob("*")) == before
    assert not store.parts_root.exists()
    assert any("registered in place" in n for n in notes)
    # the content hash identifies the rows: the same folder again gives the same hash
    again, _, _ = register_in_place(store, folder, name="again")
    assert (
        again.content_sha256 == info.content_sha256 != store.get_dataset("imported").content_sha256
    )


def test_folders_written_by_pyarrow_register_too(store: Store, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    df = _frame(steps=False).drop(columns=["step_scores"])
    df["llm"] = df["llm"].str.replace("/", "-")
    df["answer_key"] = df["answer"]
    pq.write_to_dataset(
        pa.Table.from_pandas(df), tmp_path / "pa", partition_cols=["llm", "verifier"]
    )
    info, _, _ = register_in_place(store, tmp_path / "pa", name="pa")
    assert info.llms == ("m 2", "m-1") and info.verifiers == ("7", "prm")  # "7" stays text
    assert info.n_scores == len(df)
    pair = store.load_pair("pa", "m-1", "7")
    sub = df[(df.llm == "m-1") & (df.verifier == "7")].sort_values(["problem_id", "sample_idx"])
    np.testing.assert_allclose(pair.score, sub["score"].to_numpy())
    np.testing.assert_array_equal(pair.correct, sub["is_correct"].to_numpy())


def test_loading_a_pair_reads_only_its_files(store: Store, tmp_path: Path) -> None:
    df = _frame()
    folder = _write_folder(df, tmp_path / "study")
    register_in_place(store, folder, name="s")
    gone = next(
        p
        for p in folder.rglob("*.parquet")
        if keys_of(p, folder) == {"llm": "m 2", "verifier": "prm"}
    )
    gone.unlink()
    pair = store.load_pair("s", "m/1", "7")  # another pair's file is not read
    assert len(pair.problem_ids) == 7
    with pytest.raises(PartsError, match="is missing"):
        store.load_pair("s", "m 2", "prm")
    with pytest.raises(PartsError, match="is missing"):
        store.pair_summary("s")


def test_a_changed_file_is_an_error_until_registered_again(store: Store, tmp_path: Path) -> None:
    df = _frame()
    folder = _write_folder(df, tmp_path / "study")
    info, _, _ = register_in_place(store, folder, name="s")
    victim = next(folder.rglob("*.parquet"))
    table = pd.read_parquet(victim)
    table["score"] = table["score"] + 1.0
    table.to_parquet(victim, index=False)
    os.utime(victim, ns=(1, 1))  # a different time (the size may be the same)
    with pytest.raises(PartsError, match="changed since it was stored"):
        store.pair_summary("s")
    again, _, _ = register_in_place(store, folder, name="s", replace=True)
    assert again.content_sha256 != info.content_sha256
    assert len(store.pair_summary("s")) == 4


def _issues(store: Store, folder: Path) -> list[str]:
    before = snapshot(store)
    with pytest.raises(ImportValidationError) as err:
        register_in_place(store, folder, name="bad")
    assert snapshot(store) == before  # nothing registered
    return [str(i) for i in err.value.issues]


def test_row_problems_name_file_row_and_column(store: Store, tmp_path: Path) -> None:
    df = (
        _frame().sort_values(["llm", "verifier", "problem_id", "sample_idx"]).reset_index(drop=True)
    )
    sub = (df.llm == "m/1") & (df.verifier == "prm")
    rows = df.index[sub]
    df.loc[rows[3], "score"] = np.inf
    df.loc[rows[4], "score"] = np.nan  # written as a null
    df.loc[rows[5], "sample_idx"] = -2
    df.loc[rows[6], "n_tokens"] = -1
    folder = _write_folder(df, tmp_path / "study")
    # one file per pair, rows in the frame's order: the 4th to 7th rows of that file
    found = _issues(store, folder)
    f = "llm=m%2F1/verifier=prm/data_0.parquet"
    assert f"{f}, row 4, column 'score': value is infinite (inf)" in found
    assert f"{f}, row 5, column 'score': missing value" in found
    assert f"{f}, row 6, column 'sample_idx': must be >= 0, got -2" in found
    assert f"{f}, row 7, column 'n_tokens': must be >= 0, got -1" in found
    assert len(found) == 4


def test_checks_across_files(store: Store, tmp_path: Path) -> None:
    df = _frame()
    folder = _write_folder(df, tmp_path / "study")
    # a second file in one pair's folder repeating one of its keys
    pair_dir = folder / "llm=m%2F1" / "verifier=prm"
    first = pd.read_parquet(pair_dir / "data_0.parquet")
    first.iloc[[2]].to_parquet(pair_dir / "data_1.parquet", index=False)
    key = first.iloc[2]
    # the same response labelled differently by the other verifier's file
    other = folder / "llm=m 2" / "verifier=7" / "data_0.parquet"
    if not other.exists():
        other = next(
            p
            for p in folder.rglob("*.parquet")
            if keys_of(p, folder) == {"llm": "m 2", "verifier": "7"}
        )
    o = pd.read_parquet(other)
    o.loc[0, "is_correct"] = not o.loc[0, "is_correct"]
    o.loc[1, "gold_answer"] = "not the gold"
    o.to_parquet(other, index=False)
    found = _issues(store, folder)
    rel_other = str(other.relative_to(folder))
    assert any(
        s.startswith(
            "llm=m%2F1/verifier=prm/data_1.parquet, row 1, column 'sample_idx': duplicate key"
        )
        and f"problem_id={key['problem_id']!r}" in s
        and "first seen at row 3 of llm=m%2F1/verifier=prm/data_0.parquet" in s
        for s in found
    ), found
    # the files are read in path order: the other verifier's file of that LLM comes later
    later = next(
        p
        for p in folder.rglob("*.parquet")
        if keys_of(p, folder) == {"llm": "m 2", "verifier": "prm"}
    )
    assert (
        f"{later.relative_to(folder)}, row 1, column 'is_correct': is_correct of response "
        f"(llm='m 2', problem_id='q00', sample_idx=0) differs from row 1 of {rel_other} "
        f"({not bool(o.loc[0, 'is_correct'])})"  # this row's value, as on import
    ) in found
    assert any(
        s.startswith(f"{rel_other}, row 2, column 'gold_answer': conflicting gold answers")
        for s in found
    ), found
    assert len(found) == 3


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        ("drop_score", "column 'score': missing column; required in place"),
        ("text_label", "column 'is_correct': type VARCHAR; expected boolean"),
        (
            "llm_column",
            "column 'llm': the llm is the folder's name (llm=NAME/); remove this column",
        ),
        ("typo", "unknown column (did you mean 'sample_idx'?)"),
        ("stray", "extra.parquet: not inside llm=NAME/verifier=NAME/ folders"),
        ("not_parquet", "cannot be read as Parquet"),
    ],
)
def test_file_problems(store: Store, tmp_path: Path, damage: str, expected: str) -> None:
    df = _frame()
    folder = _write_folder(df, tmp_path / "study")
    victim = next(folder.rglob("*.parquet"))
    t = pd.read_parquet(victim)
    if damage == "drop_score":
        t = t.drop(columns=["score"])
    elif damage == "text_label":
        t["is_correct"] = t["is_correct"].map({True: "yes", False: "no"})
    elif damage == "llm_column":
        t["llm"] = "x"
    elif damage == "typo":
        t["sample_idxx"] = 1
    elif damage == "stray":
        t.to_parquet(folder / "extra.parquet", index=False)
    if damage == "not_parquet":
        victim.write_bytes(b"this is not parquet")
    elif damage != "stray":
        t.to_parquet(victim, index=False)
    found = _issues(store, folder)
    assert any(expected in s for s in found), found


def test_an_empty_or_missing_folder_is_a_clear_error(store: Store, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert any("holds no Parquet files" in s for s in _issues(store, tmp_path / "empty"))
    assert any("not a folder" in s for s in _issues(store, tmp_path / "nowhere"))


def test_delete_and_replace_remove_own_files_never_a_registered_folder(
    store: Store, tmp_path: Path
) -> None:
    df = _frame()
    path = _long(df, tmp_path / "d.parquet")
    first = import_path(store, path, name="big", storage="parquet").info
    own = store.parts_root / f"dataset={first.dataset_id}"
    assert own.is_dir()
    second = import_path(store, path, name="big", storage="parquet", replace=True).info
    assert not own.exists() and (store.parts_root / f"dataset={second.dataset_id}").is_dir()
    store.delete_dataset("big")
    assert list(store.parts_root.iterdir()) == []
    folder = _write_folder(df, tmp_path / "study")
    n_files = len(list(folder.rglob("*.parquet")))
    register_in_place(store, folder, name="mine")
    store.delete_dataset("mine")
    assert len(list(folder.rglob("*.parquet"))) == n_files


def test_a_failed_parquet_import_leaves_no_files(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _long(_frame(), tmp_path / "d.parquet")
    before = snapshot(store)

    def boom(*a: object, **k: object) -> None:
        raise RuntimeError("disk full while auditing")

    monkeypatch.setattr(Store, "_audit", staticmethod(boom))
    with pytest.raises(RuntimeError, match="disk full"):
        import_path(store, path, name="big", storage="parquet")
    assert snapshot(store) == before
    assert not store.parts_root.exists() or list(store.parts_root.iterdir()) == []


def test_cli_in_place_and_storage(tmp_path: Path) -> None:
    df = _frame()
    folder = _write_folder(df, tmp_path / "study")
    db = tmp_path / "cli.duckdb"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "core.cli", "--db", str(db), *args],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=300,
        )

    out = run("import", str(folder), "--in-place", "--name", "study", "--quiet")
    assert out.returncode == 0, out.stderr
    assert "imported 'study': 7 problems, 70 responses, 140 scores" in out.stdout
    assert "registered in place" in out.stdout
    refused = run("import", str(folder), "--in-place", "--llm", "x", "--name", "s2")
    assert refused.returncode == 2 and "--llm cannot apply" in refused.stderr
    out = run(
        "import",
        str(_long(df, tmp_path / "d.parquet")),
        "--storage",
        "parquet",
        "--name",
        "copy",
        "--quiet",
    )
    assert out.returncode == 0, out.stderr
    shown = run("show", "study")
    assert shown.returncode == 0 and "m/1" in shown.stdout
    flat = " ".join(shown.stdout.split())  # output wraps at 100 columns
    assert f"score rows: registered in place, read from {folder.resolve()}" in flat
    assert "score rows: Parquet files partitioned" in run("show", "copy").stdout
    a = run("curves", "study", "--quiet")
    b = run("curves", "copy", "--quiet")
    assert a.returncode == 0, a.stderr
    assert a.stdout.replace("study", "X") == b.stdout.replace("copy", "X")
    shutil.rmtree(folder)
    gone = run("show", "study")
    assert gone.returncode != 0 and "is missing" in gone.stderr and "Traceback" not in gone.stderr


def test_every_file_has_the_same_columns_and_no_reserved_ones(store: Store, tmp_path: Path) -> None:
    df = _frame()
    folder = _write_folder(df, tmp_path / "study")
    victim = next(p for p in folder.rglob("*.parquet") if keys_of(p, folder)["llm"] == "m/1")
    t = pd.read_parquet(victim).drop(columns=["n_tokens"])
    t["_loc"] = 777
    t.to_parquet(victim, index=False)
    found = _issues(store, folder)
    rel = str(victim.relative_to(folder))
    assert any(s.startswith(rel) and "lacks n_tokens" in s for s in found), found
    assert f"{rel}, column '_loc': a reserved column name; rename it" in found


def test_awkward_names_and_paths(store: Store, tmp_path: Path) -> None:
    """Glob characters in folder names, a hive-looking folder above the root, a pair an
    in-place folder lacks."""
    df = _frame(steps=False).drop(columns=["step_scores"])
    df["answer_key"] = df["answer"]
    root = tmp_path / "llm=outer" / "stu[dy]"
    for (m, v), sub in df.groupby(["llm", "verifier"]):
        name = {"m/1": "m[1]", "m 2": "m*2"}[str(m)]
        if (name, v) == ("m*2", "7"):
            continue  # a combination the folder does not have
        folder = root / f"llm={name}" / f"verifier={v}"
        folder.mkdir(parents=True)
        sub.drop(columns=["llm", "verifier"]).to_parquet(folder / "part.parquet", index=False)
    info, _, _ = register_in_place(store, root, name="awkward")
    assert info.llms == ("m*2", "m[1]") and info.verifiers == ("7", "prm")
    pair = store.load_pair("awkward", "m[1]", "7")
    want = df[(df.llm == "m/1") & (df.verifier == "7")].sort_values(["problem_id", "sample_idx"])
    np.testing.assert_allclose(pair.score, want["score"].to_numpy())
    assert set(store.pair_summary("awkward")["llm"]) == {"m[1]", "m*2"}  # not "outer"
    empty = store.load_pair("awkward", "m*2", "7")
    assert len(empty.problem_ids) == 0 and empty.score.size == 0


def test_a_typed_file_under_a_hive_looking_folder_keeps_its_own_names(
    store: Store, tmp_path: Path
) -> None:
    df = _frame(steps=False).drop(columns=["step_scores"])
    folder = tmp_path / "llm=foo"
    folder.mkdir()
    path = _long(df, folder / "d.parquet")
    info = import_path(store, path, name="d", storage="parquet").info
    assert info.llms == ("m 2", "m/1")
    assert set(store.scores("d")["llm"]) == {"m 2", "m/1"}
    assert len(store.load_pair("d", "m/1", "prm").problem_ids) == 7


def test_a_relative_database_path_stores_absolute_file_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _long(_frame(), tmp_path / "d.parquet")
    monkeypatch.chdir(tmp_path)
    with Store("rel.duckdb") as s:
        import_path(s, path, name="big", storage="parquet")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    with Store(tmp_path / "rel.duckdb") as s:
        assert len(s.load_pair("big", "m/1", "7").problem_ids) == 7


def test_a_failure_after_the_commit_keeps_the_new_files(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _long(_frame(), tmp_path / "d.parquet")

    def broken(self: Store, dataset_id: str) -> None:
        raise KeyboardInterrupt  # e.g. Ctrl-C right after the commit

    with monkeypatch.context() as m:
        m.setattr(Store, "get_dataset_by_id", broken)
        with pytest.raises(KeyboardInterrupt):
            import_path(store, path, name="big", storage="parquet")
    # committed: the catalog lists the files, and they are there
    assert len(store.load_pair("big", "m/1", "7").problem_ids) == 7


def test_the_stores_own_files_cannot_be_registered_in_place(store: Store, tmp_path: Path) -> None:
    info = import_path(
        store, _long(_frame(), tmp_path / "d.parquet"), name="big", storage="parquet"
    ).info
    own = store.parts_root / f"dataset={info.dataset_id}"
    assert any("the store keeps its own Parquet files here" in s for s in _issues(store, own))
