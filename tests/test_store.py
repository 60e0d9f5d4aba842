"""Store: atomic imports, round trips of every format, concurrency, safety, migrations."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import core.store as store_mod
from core.importers import ImportValidationError, collect_files, import_path
from core.importers.writers import WRITERS
from core.store import Store, StoreError
from tests.conftest import ROOT, make_long_frame

LONG_COLS = [
    "problem_id",
    "sample_idx",
    "llm",
    "verifier",
    "answer",
    "is_correct",
    "gold_answer",
    "score",
    "step_scores",
    "n_tokens",
    "level",
    "subject",
    "problem_text",
]


def snapshot(store: Store) -> dict[str, list[tuple]]:
    """Every row of every table (sorted), to compare database states exactly."""
    cur = store._cur()
    out = {}
    for t in ("meta", "datasets", "problems", "responses", "scores", "parts", "results"):
        rows = cur.execute(f"SELECT * FROM {t}").fetchall()
        out[t] = sorted(rows, key=repr)
    return out


def normalise(df: pd.DataFrame) -> pd.DataFrame:
    out = df[LONG_COLS].sort_values(["llm", "verifier", "problem_id", "sample_idx"])
    out = out.reset_index(drop=True).copy()
    out["step_scores"] = [list(map(float, s)) for s in out["step_scores"]]
    for c in ("sample_idx", "n_tokens", "level"):
        out[c] = out[c].astype(np.int64)
    out["is_correct"] = out["is_correct"].astype(bool)
    for c in ("problem_id", "llm", "verifier", "answer", "gold_answer", "subject", "problem_text"):
        out[c] = out[c].astype(str)
    return out


@pytest.mark.parametrize("fmt", list(WRITERS))
def test_round_trip_every_format(store: Store, tmp_path: Path, fmt: str) -> None:
    df = make_long_frame()
    writer, suffix = WRITERS[fmt]
    path = writer(df, tmp_path / f"data{suffix}")
    res = import_path(store, path, name="rt")
    assert res.fmt == fmt, "format detection picks the writer's format"
    back = store.export_long("rt").rename(columns={})
    pd.testing.assert_frame_equal(normalise(back), normalise(df), check_dtype=False)
    # and out again through the same writer gives an identical import
    path2 = writer(back, tmp_path / f"again{suffix}")
    import_path(store, path2, name="rt2")
    pd.testing.assert_frame_equal(
        normalise(store.export_long("rt2")), normalise(df), check_dtype=False
    )


def test_export_parquet_reimports(store: Store, tmp_path: Path) -> None:
    df = make_long_frame(seed=3)
    import_path(store, WRITERS["long-csv"][0](df, tmp_path / "a.csv"), name="a")
    out = store.export_parquet("a", tmp_path / "a.parquet")
    import_path(store, out, name="b")
    pd.testing.assert_frame_equal(
        normalise(store.export_long("b")), normalise(df), check_dtype=False
    )


def test_failure_midway_leaves_everything_as_it_was(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    df = make_long_frame()
    path = WRITERS["long-csv"][0](df, tmp_path / "d.csv")
    import_path(store, path, name="keep")
    store.cached(store.get_dataset("keep"), "curve", {"a": 1}, lambda: {"x": np.ones(3)})
    before = snapshot(store)
    calls = {"n": 0}
    original = Store._insert_table

    def failing(self: Store, cur, table, dataset_id, arrow):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if table == "scores":  # problems and responses are already written by now
            raise RuntimeError("disk full (injected)")
        return original(self, cur, table, dataset_id, arrow)

    monkeypatch.setattr(Store, "_insert_table", failing)
    with pytest.raises(RuntimeError, match="injected"):
        import_path(store, path, name="new")
    assert calls["n"] == 3
    assert snapshot(store) == before
    # a replace that fails midway keeps the old dataset, untouched
    with pytest.raises(RuntimeError, match="injected"):
        import_path(store, path, name="keep", replace=True)
    assert snapshot(store) == before
    monkeypatch.setattr(Store, "_insert_table", original)
    import_path(store, path, name="new")
    assert {d.name for d in store.list_datasets()} == {"keep", "new"}


def test_atomic_across_reopen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "x.duckdb"
    path = WRITERS["long-jsonl"][0](make_long_frame(), tmp_path / "d.jsonl")
    with Store(db) as s:
        import_path(s, path, name="one")
        before = snapshot(s)

        def boom(*a: object, **k: object) -> None:
            raise KeyboardInterrupt

        monkeypatch.setattr(Store, "_insert_table", boom)
        with pytest.raises(KeyboardInterrupt):
            import_path(s, path, name="two")
    monkeypatch.undo()
    with Store(db, read_only=True) as s:
        assert snapshot(s) == before


def test_reads_from_threads_while_import_runs(store: Store, tmp_path: Path) -> None:
    small = WRITERS["long-csv"][0](make_long_frame(n_problems=5), tmp_path / "s.csv")
    import_path(store, small, name="base")
    base_n = store.get_dataset("base").n_scores
    big = WRITERS["long-parquet"][0](
        make_long_frame(n_problems=300, n_samples=8, seed=1), tmp_path / "b.parquet"
    )
    stop = threading.Event()
    errors: list[BaseException] = []
    seen_counts: list[int] = []

    def reader() -> None:
        try:
            while not stop.is_set():
                names = [d.name for d in store.list_datasets()]
                assert "base" in names
                n = len(store.scores("base"))
                assert n == base_n
                seen_counts.append(len(names))
                if "big" in names:  # once visible, it is complete
                    assert store.get_dataset("big").n_scores == len(store.scores("big"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        import_path(store, big, name="big")
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert not errors, errors
    assert seen_counts, "readers ran"
    assert store.get_dataset("big").n_scores == 300 * 8 * 4


def test_hostile_names_are_parameters(store: Store, tmp_path: Path) -> None:
    df = make_long_frame(n_problems=2, llms=("m'); DROP TABLE scores; --",))
    df["problem_id"] = df["problem_id"] + "\"'"
    path = WRITERS["long-csv"][0](df, tmp_path / "x.csv")
    name = "weird'; DELETE FROM datasets; --"
    import_path(store, path, name=name)
    info = store.get_dataset(name)
    assert info.llms == ("m'); DROP TABLE scores; --",)
    pair = store.load_pair(name, info.llms[0], "prm")
    assert pair.n_problems == 2
    store.delete_dataset(name)
    assert store.list_datasets() == []


def test_folder_import_does_not_follow_links_out(store: Store, tmp_path: Path) -> None:
    df = make_long_frame()
    folder = tmp_path / "runs"
    folder.mkdir()
    WRITERS["long-csv"][0](df[df["llm"] == "m1"], folder / "m1.csv")
    (folder / "sub").mkdir()
    WRITERS["long-jsonl"][0](df[df["llm"] == "m2"], folder / "sub" / "m2.jsonl")
    outside = tmp_path / "outside"
    outside.mkdir()
    WRITERS["long-csv"][0](make_long_frame(llms=("evil",)), outside / "evil.csv")
    os.symlink(outside / "evil.csv", folder / "evil.csv")
    os.symlink(outside, folder / "linkdir")
    os.symlink(folder / "m1.csv", folder / "inside_link.csv")  # stays inside: allowed
    files, notes = collect_files(folder)
    names = sorted(f.name for f in files)
    assert names == ["inside_link.csv", "m1.csv", "m2.jsonl"]
    assert any("evil.csv" in n and "outside" in n for n in notes)
    assert any("linkdir" in n for n in notes)
    # the in-folder link duplicates m1.csv, which the importer rightly rejects; drop it
    (folder / "inside_link.csv").unlink()
    res = import_path(store, folder, name="folder")
    assert set(res.info.llms) == {"m1", "m2"}
    assert "evil" not in res.info.llms
    pd.testing.assert_frame_equal(
        normalise(store.export_long("folder")), normalise(df), check_dtype=False
    )


def test_folder_errors_name_the_file(store: Store, tmp_path: Path) -> None:
    folder = tmp_path / "runs"
    folder.mkdir()
    df = make_long_frame()
    WRITERS["long-csv"][0](df[df["llm"] == "m1"], folder / "a.csv")
    bad = df[df["llm"] == "m2"].copy()
    bad["score"] = bad["score"].astype(object)
    bad.loc[bad.index[3], "score"] = "n/a"
    WRITERS["long-csv"][0](bad, folder / "b.csv")
    with pytest.raises(ImportValidationError) as ei:
        import_path(store, folder, name="f")
    issues = ei.value.issues
    assert [(i.file, i.line, i.column) for i in issues] == [("b.csv", 5, "score")]


def test_read_only_store(tmp_path: Path) -> None:
    db = tmp_path / "r.duckdb"
    path = WRITERS["long-csv"][0](make_long_frame(), tmp_path / "d.csv")
    with Store(db) as s:
        import_path(s, path, name="d")
    with Store(db, read_only=True) as ro:
        assert ro.get_dataset("d").n_problems == 6
        with pytest.raises(StoreError, match="read-only"):
            ro.delete_dataset("d")
        with pytest.raises(StoreError, match="read-only"):
            import_path(ro, path, name="e")
    with pytest.raises(StoreError, match="does not exist"):
        Store(tmp_path / "missing.duckdb", read_only=True)


def test_migration_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "m.duckdb"
    path = WRITERS["long-csv"][0](make_long_frame(), tmp_path / "d.csv")
    with Store(db) as s:
        import_path(s, path, name="d")
        assert s.schema_version() == store_mod.SCHEMA_VERSION
    now = store_mod.SCHEMA_VERSION
    monkeypatch.setattr(store_mod, "SCHEMA_VERSION", now + 1)
    monkeypatch.setattr(
        store_mod,
        "MIGRATIONS",
        {**store_mod.MIGRATIONS, now: ["ALTER TABLE datasets ADD COLUMN license VARCHAR"]},
    )
    with pytest.raises(StoreError, match="open it read-write once to migrate"):
        Store(db, read_only=True)
    with Store(db) as s:
        assert s.schema_version() == now + 1
        cols = [r[0] for r in s._cur().execute("DESCRIBE datasets").fetchall()]
        assert "license" in cols
        assert s.get_dataset("d").n_problems == 6
    monkeypatch.setattr(store_mod, "SCHEMA_VERSION", now)
    with pytest.raises(StoreError, match="newer than this"):
        Store(db)


def test_failed_migration_rolls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "m.duckdb"
    now = store_mod.SCHEMA_VERSION
    with Store(db) as s:
        assert s.schema_version() == now
    monkeypatch.setattr(store_mod, "SCHEMA_VERSION", now + 1)
    monkeypatch.setattr(
        store_mod,
        "MIGRATIONS",
        {
            **store_mod.MIGRATIONS,
            now: ["ALTER TABLE datasets ADD COLUMN license VARCHAR", "THIS IS NOT SQL"],
        },
    )
    with pytest.raises(Exception):  # noqa: B017 - duckdb's parser error
        Store(db)
    monkeypatch.setattr(store_mod, "SCHEMA_VERSION", now)
    with Store(db) as s:
        assert s.schema_version() == now
        cols = [r[0] for r in s._cur().execute("DESCRIBE datasets").fetchall()]
        assert "license" not in cols


def test_db_location_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTSLAB_DB", str(tmp_path / "env.duckdb"))
    with Store() as s:
        assert s.path == tmp_path / "env.duckdb"
    assert (tmp_path / "env.duckdb").exists()


def test_load_pair_packs_problems(store: Store, tmp_path: Path) -> None:
    df = make_long_frame(n_problems=4, n_samples=5)
    import_path(store, WRITERS["long-parquet"][0](df, tmp_path / "d.parquet"), name="d")
    pair = store.load_pair("d", "m2", "orm")
    sub = df[(df.llm == "m2") & (df.verifier == "orm")].sort_values(["problem_id", "sample_idx"])
    assert pair.problem_ids == tuple(sorted(sub["problem_id"].unique()))
    assert pair.offsets.tolist() == [0, 5, 10, 15, 20]
    np.testing.assert_allclose(pair.score, sub["score"].to_numpy())
    np.testing.assert_array_equal(pair.correct, sub["is_correct"].to_numpy())
    for p in range(pair.n_problems):
        lo, hi = pair.offsets[p], pair.offsets[p + 1]
        answers = sub["answer"].to_numpy()[lo:hi]
        cl = pair.cluster[lo:hi]
        # same answer <=> same cluster, and clusters are dense 0..k-1
        for i in range(hi - lo):
            for j in range(hi - lo):
                assert (answers[i] == answers[j]) == (cl[i] == cl[j])
        assert sorted(set(cl.tolist())) == list(range(len(set(answers))))
    with pytest.raises(StoreError, match="no pair"):
        store.load_pair("d", "m9", "orm")


def test_result_cache(store: Store, tmp_path: Path) -> None:
    key = Store.cache_key("sha", "curves", {"b": 0.5, "n": [1, 2]})
    assert key == Store.cache_key("sha", "curves", {"n": [1, 2], "b": 0.5})
    assert key != Store.cache_key("sha", "curves", {"b": 0.6, "n": [1, 2]})
    df = make_long_frame(n_problems=3, n_samples=2)
    import_path(store, WRITERS["long-csv"][0](df, tmp_path / "c.csv"), name="c")
    info = store.get_dataset("c")
    made = []

    def compute() -> dict[str, object]:
        made.append(1)
        return {"a": np.arange(3.0), "b": 0.5}

    _, hit = store.cached(info, "curves", {"b": 0.5, "n": [1, 2]}, compute)
    again, hit2 = store.cached(info, "curves", {"n": [1, 2], "b": 0.5}, compute)
    assert (hit, hit2, len(made)) == (False, True, 1)
    np.testing.assert_array_equal(again["a"], [0.0, 1.0, 2.0])
    assert again["b"] == 0.5
    rows = store._cur().execute("SELECT cache_key, kind FROM results").fetchall()
    assert rows == [
        (Store.cache_key(info.content_sha256, "curves", {"b": 0.5, "n": [1, 2]}), "curves")
    ]


def test_unknown_dataset_message(store: Store) -> None:
    with pytest.raises(StoreError, match="store is empty"):
        store.get_dataset("nope")


def test_pair_summary_separation_counted_by_hand(store: Store, tmp_path: Path) -> None:
    df = make_long_frame(n_problems=5, n_samples=6, seed=11)
    import_path(store, WRITERS["long-csv"][0](df, tmp_path / "s.csv"), name="s")
    got = store.pair_summary("s").set_index(["llm", "verifier"])
    for (m, v), sub in df.groupby(["llm", "verifier"]):
        sc, ok = sub["score"].to_numpy(), sub["is_correct"].to_numpy(dtype=bool)
        expect = (sc[ok].mean() - sc[~ok].mean()) / sc.std()
        assert got.loc[(m, v), "separation"] == pytest.approx(expect)
        assert got.loc[(m, v), "accuracy"] == pytest.approx(ok.mean())


def test_pair_summary_is_computed_once_per_content(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every page's default pair reads the summary: one query per dataset content."""
    df = make_long_frame(n_problems=5, n_samples=3)
    import_path(store, WRITERS["long-csv"][0](df, tmp_path / "a.csv"), name="d")
    queries: list[str] = []
    real = Store._fetch_df

    def spy(self: Store, sql: str, *a: object, **k: object) -> pd.DataFrame:
        queries.append(sql)
        return real(self, sql, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(Store, "_fetch_df", spy)
    first = store.pair_summary("d")
    assert len(queries) == 1 and list(first["responses"]) == [15, 15, 15, 15]
    first.loc[0, "accuracy"] = -1.0  # a caller's change stays with the caller
    again = store.pair_summary("d")
    assert len(queries) == 1 and again.loc[0, "accuracy"] >= 0
    bigger = make_long_frame(n_problems=7, n_samples=3)
    path = WRITERS["long-csv"][0](bigger, tmp_path / "b.csv")
    import_path(store, path, name="d", replace=True)  # new content: a new summary
    queries.clear()
    assert list(store.pair_summary("d")["responses"]) == [21, 21, 21, 21]
    assert len(queries) == 1


def test_the_all_distinct_share_is_computed_once_per_content(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Compare's default baseline reads it on every script run: one query per content."""
    df = make_long_frame(n_problems=5, n_samples=3)
    import_path(store, WRITERS["long-csv"][0](df, tmp_path / "a.csv"), name="d")
    asked: list[str] = []
    real = Store._responses_rows

    def spy(self: Store, info: object) -> object:
        asked.append("rows")
        return real(self, info)  # type: ignore[arg-type]

    monkeypatch.setattr(Store, "_responses_rows", spy)
    share = store.all_distinct_share("d")
    assert 0.0 <= share <= 1.0 and store.all_distinct_share("d") == share
    assert len(asked) == 1
    # every answer its own: a new content, asked again, and now 1
    distinct = df.assign(answer="x" + df["problem_id"] + "-" + df["sample_idx"].astype(str))
    path = WRITERS["long-csv"][0](distinct, tmp_path / "b.csv")
    import_path(store, path, name="d", replace=True)
    assert store.all_distinct_share("d") == pytest.approx(1.0)
    assert len(asked) == 2


EXIT_SCRIPT = """
import sys, time
sys.path.insert(0, sys.argv[1])
import core.store as S
S.IDLE_RELEASE_S = 0.001  # the idle-release timers fire while the interpreter exits
store = S.Store(sys.argv[2], shared=True)
for _ in range(200):
    with store._use():
        store._cur().execute("SELECT 1").fetchall()
time.sleep(float(sys.argv[3]))
"""


def test_a_process_exits_cleanly_while_its_store_releases_the_file(tmp_path: Path) -> None:
    """A shared Store lets go of the file from timer threads; one closing it while the
    interpreter shut down aborted the process ("FATAL: exception not rethrown", exit
    134), which could fail a whole test run at its end."""
    import subprocess
    import sys

    db = tmp_path / "exit.duckdb"
    Store(db).close()
    codes = [
        subprocess.run(
            [sys.executable, "-c", EXIT_SCRIPT, str(ROOT), str(db), str(pause)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        for pause in (0.001, 0.003) * 4
    ]
    assert [c.returncode for c in codes] == [0] * 8, [c.stderr[-300:] for c in codes]


def test_file_stamp_changes_with_a_commit_of_another_store_only(tmp_path: Path) -> None:
    from core.cli import build_demo

    db = tmp_path / "stamp.duckdb"
    with Store(db) as s:
        build_demo(s, n_problems=10, n_samples=4)
        build_demo(s, n_problems=10, n_samples=4, seed=1, name="other")
    with Store(db, shared=True) as a:
        before = a.file_stamp()
        assert len(before) == 4 and before[0] > 0 and before[1] > 0
        assert [i.name for i in a.list_datasets()] != []  # reading writes nothing
        assert a.file_stamp() == before
        with Store(db, shared=True) as b:  # another user of the file, as the CLI would be
            b.delete_dataset("other")
        assert a.file_stamp() != before
        assert "other" not in [i.name for i in a.list_datasets()]
