"""DuckDB store: schema, migrations, atomic ingest, queries and the one result cache.

One database file holds every dataset. Its location is, in order of precedence, the path
given to `Store`, the environment variable ``TTSLAB_DB``, or ``data/ttslab.duckdb`` in the
project folder (ignored by git).

Concurrency: a `Store` owns one DuckDB connection; every public method runs on a cursor of
its own thread (DuckDB connections must not be shared across threads, cursors may), so one
`Store` can serve many Streamlit sessions at once. Readers see the last committed state
while an import runs: an import is one transaction.

User-supplied names and paths never reach SQL as text: every value is a bound parameter.

The result cache (`Store.cached`) is the only cache of computed results: a payload (a dict
of numpy arrays and JSON-able values, one codec: `encode_payload` / `decode_payload`) keyed
by the dataset's content hash, the kind of result and every parameter, kept in the
``results`` table (so every process and restart reuses it) with a small in-process tier of
decoded payloads in front of it.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import hashlib
import io
import json
import math
import os
import re
import shutil
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from core.lru import Lru
from core.parts import (
    EMPTY_ROWS,
    Part,
    check_unchanged,
    glob_escape,
    list_parts,
    pair_rows_sql,
)
from core.types import FloatArray, IntArray, PairData, TTSLabError

SCHEMA_VERSION = 4
DB_ENV_VAR = "TTSLAB_DB"
PROJECT_ROOT = Path(__file__).resolve().parents[1]


#: Part of every result-cache key: bumped whenever a change in core would alter what a
#: cached payload holds or means (4: orientation, rank transform for wide scores, KDE
#: tails, exact N = 1; it continues the evaluation config's former engine version, 3; 6: the
#: confidence stop ranks a score among the other problems' only; 7: pair curves carry
#: their expected tokens and full-set majority).
CACHE_VERSION = 8
#: DuckDB memory of the store's connection while it copies a staged import (the copy
#: streams; without a cap DuckDB would keep up to 80% of the RAM of pages cached).
INGEST_MEMORY = "600MB"
#: A staged import of at least this many score rows is kept as partitioned Parquet files
#: beside the database (``storage="auto"``, see `core.parts`); smaller ones stay in it.
PARQUET_MIN_SCORES = 20_000_000
#: Where an import keeps its score rows: chosen by size, the DuckDB file, or Parquet.
STORAGES = ("auto", "table", "parquet")
#: A shared store waits this long for another process's transaction before giving up.
LOCK_TIMEOUT_S: Final = 60.0
#: A shared store lets go of the file this long after its last use...
IDLE_RELEASE_S: Final = 0.5
#: ...or as soon as it is idle, once it has held the file this long.
MAX_HOLD_S: Final = 1.0
#: A dataset is addressed by name, or by id as "id:<id>" (never by a bare id).
ID_PREFIX: Final = "id:"
#: Dataset ids: 12 lowercase hex digits. A name of this form is refused, so that a name can
#: never be mistaken for (or collide with) an id.
_ID_PATTERN: Final = re.compile(r"[0-9a-f]{12}")
#: Longest dataset name accepted.
MAX_NAME_LENGTH: Final = 200


def default_actor() -> str:
    """Who acts when nobody says: the operating-system user of this process."""
    import getpass

    try:
        return f"local:{getpass.getuser()}"
    except Exception:  # no user name in this environment (some containers)
        return "local:unknown"


def check_name(name: str) -> None:
    """Refuse a dataset name that is empty, too long, has control characters, or could be
    read as an id ("id:..." or 12 hex digits)."""
    if not isinstance(name, str) or not name.strip():
        raise StoreError("a dataset needs a non-empty name")
    if len(name) > MAX_NAME_LENGTH:
        raise StoreError(f"a dataset name has at most {MAX_NAME_LENGTH} characters")
    if any(ord(c) < 32 or 0xD800 <= ord(c) <= 0xDFFF for c in name):
        raise StoreError("a dataset name cannot contain control characters or lone surrogates")
    if name.startswith(ID_PREFIX) or _ID_PATTERN.fullmatch(name):
        raise StoreError(
            f"{name!r} looks like a dataset id; choose a name that is not 12 hex digits and "
            f"does not start with {ID_PREFIX!r}"
        )


class StoreError(TTSLabError):
    """A request the store cannot satisfy (unknown dataset, name taken, locked file...)."""


def _one(result: duckdb.DuckDBPyConnection) -> Any:
    """The first row of a result, read to the end (DuckDB refuses new statements on a
    cursor whose last result is not exhausted)."""
    rows = result.fetchall()
    return rows[0] if rows else None


def default_db_path() -> Path:
    env = os.environ.get(DB_ENV_VAR)
    if env:
        return Path(env).expanduser()
    return PROJECT_ROOT / "data" / "ttslab.duckdb"


_SCHEMA_V1 = [
    """CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS datasets (
        dataset_id VARCHAR PRIMARY KEY,
        name VARCHAR NOT NULL UNIQUE,
        source_format VARCHAR NOT NULL,
        source_path VARCHAR,
        imported_at TIMESTAMP NOT NULL,
        content_sha256 VARCHAR NOT NULL,
        n_problems INTEGER NOT NULL,
        n_responses BIGINT NOT NULL,
        n_scores BIGINT NOT NULL,
        llms VARCHAR[] NOT NULL,
        verifiers VARCHAR[] NOT NULL,
        iid BOOLEAN NOT NULL,
        simulated BOOLEAN NOT NULL,
        grader VARCHAR,
        notes VARCHAR
    )""",
    """CREATE TABLE IF NOT EXISTS problems (
        dataset_id VARCHAR NOT NULL,
        problem_id VARCHAR NOT NULL,
        gold_answer VARCHAR,
        level INTEGER,
        subject VARCHAR,
        text VARCHAR
    )""",
    """CREATE TABLE IF NOT EXISTS responses (
        dataset_id VARCHAR NOT NULL,
        llm VARCHAR NOT NULL,
        problem_id VARCHAR NOT NULL,
        sample_idx INTEGER NOT NULL,
        answer_raw VARCHAR,
        answer_key VARCHAR NOT NULL,
        is_correct BOOLEAN NOT NULL,
        n_tokens BIGINT
    )""",
    """CREATE TABLE IF NOT EXISTS scores (
        dataset_id VARCHAR NOT NULL,
        llm VARCHAR NOT NULL,
        verifier VARCHAR NOT NULL,
        problem_id VARCHAR NOT NULL,
        sample_idx INTEGER NOT NULL,
        score DOUBLE NOT NULL,
        step_scores DOUBLE[]
    )""",
    """CREATE TABLE IF NOT EXISTS results (
        cache_key VARCHAR PRIMARY KEY,
        content_sha256 VARCHAR NOT NULL,
        kind VARCHAR NOT NULL,
        params VARCHAR NOT NULL,
        payload BLOB NOT NULL,
        created_at TIMESTAMP NOT NULL
    )""",
]

# Migrations from version k to k + 1. Each runs inside one transaction together with the
# version bump, so a database is never left half-migrated.
MIGRATIONS: dict[int, list[str]] = {
    # v2: per-dataset metadata as JSON (declared signal directions, simulator parameters)
    1: ["ALTER TABLE datasets ADD COLUMN meta VARCHAR"],
    # v3: who imported, replaced or deleted which dataset, and when
    2: [
        """CREATE TABLE IF NOT EXISTS audit (
            happened_at TIMESTAMP NOT NULL,
            actor VARCHAR NOT NULL,
            action VARCHAR NOT NULL,
            dataset VARCHAR NOT NULL,
            dataset_id VARCHAR NOT NULL,
            detail VARCHAR
        )"""
    ],
    # v4: big datasets keep their score rows in partitioned Parquet files (core.parts);
    # the catalog lists each file with its pair, size and modification time
    3: [
        """CREATE TABLE IF NOT EXISTS parts (
            dataset_id VARCHAR NOT NULL,
            llm VARCHAR NOT NULL,
            verifier VARCHAR NOT NULL,
            path VARCHAR NOT NULL,
            size BIGINT NOT NULL,
            mtime_ns BIGINT NOT NULL
        )"""
    ],
}

# Column order of the canonical tables (without dataset_id), used by ingest.
PROBLEM_COLUMNS = ("problem_id", "gold_answer", "level", "subject", "text")
RESPONSE_COLUMNS = (
    "llm",
    "problem_id",
    "sample_idx",
    "answer_raw",
    "answer_key",
    "is_correct",
    "n_tokens",
)
SCORE_COLUMNS = ("llm", "verifier", "problem_id", "sample_idx", "score", "step_scores")

_ARROW_TYPES: dict[str, pa.DataType] = {
    "problem_id": pa.string(),
    "gold_answer": pa.string(),
    "level": pa.int32(),
    "subject": pa.string(),
    "text": pa.string(),
    "llm": pa.string(),
    "verifier": pa.string(),
    "sample_idx": pa.int32(),
    "answer_raw": pa.string(),
    "answer_key": pa.string(),
    "is_correct": pa.bool_(),
    "n_tokens": pa.int64(),
    "score": pa.float64(),
    "step_scores": pa.list_(pa.float64()),
}


@dataclass(frozen=True)
class CanonicalData:
    """Validated content of one dataset, ready for `Store.ingest`.

    Tables may be pandas frames or Arrow tables with the columns of PROBLEM_COLUMNS,
    RESPONSE_COLUMNS and SCORE_COLUMNS (`step_scores` may be all null).
    """

    problems: pd.DataFrame | pa.Table
    responses: pd.DataFrame | pa.Table
    scores: pd.DataFrame | pa.Table


#: when a dataset was imported, as tables and reports print it
IMPORTED_FORMAT = "%Y-%m-%d %H:%M"


@dataclass(frozen=True)
class DatasetInfo:
    dataset_id: str
    name: str
    source_format: str
    source_path: str | None
    imported_at: datetime
    content_sha256: str
    n_problems: int
    n_responses: int
    n_scores: int
    llms: tuple[str, ...]
    verifiers: tuple[str, ...]
    iid: bool
    simulated: bool
    grader: str | None
    notes: str | None
    meta: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def pairs(self) -> list[tuple[str, str]]:
        return [(m, v) for m in self.llms for v in self.verifiers]

    @property
    def imported(self) -> str:
        """When the dataset was imported, to the minute, as every table shows it."""
        return self.imported_at.strftime(IMPORTED_FORMAT)

    @property
    def lower_is_better(self) -> tuple[str, ...]:
        """Verifiers (signals) declared lower-is-better at import (e.g. response length)."""
        return tuple(self.meta.get("lower_is_better", ()))

    @property
    def higher_is_better(self) -> tuple[str, ...]:
        """Verifiers declared higher-is-better at import (never flipped by estimation)."""
        return tuple(self.meta.get("higher_is_better", ()))

    @property
    def storage(self) -> str:
        """Where the score rows are: ``table`` (the DuckDB file), ``parquet`` (the store's
        own partitioned files) or ``in-place`` (a registered folder, never copied)."""
        return str(self.meta.get("storage", "table"))

    @property
    def has_truth(self) -> bool:
        """A simulated dataset that records the simulator's parameters (demos built by
        this version), so strategies that need them (the Bayes-optimal vote) exist here."""
        return self.simulated and isinstance(self.meta.get("truth"), dict)


def _to_arrow(table: pd.DataFrame | pa.Table, columns: Sequence[str]) -> pa.Table:
    """Select and cast `columns` to the canonical Arrow types (missing optional -> null)."""
    if isinstance(table, pd.DataFrame):
        arrays = []
        for col in columns:
            typ = _ARROW_TYPES[col]
            if col in table.columns:
                values = table[col]
                if col == "step_scores" and not isinstance(
                    values.array, pd.arrays.ArrowExtensionArray
                ):
                    arrays.append(pa.array(list(values), type=typ, from_pandas=True))
                else:
                    arrays.append(pa.array(values, type=typ, from_pandas=True))
            else:
                arrays.append(pa.nulls(len(table), type=typ))
        return pa.Table.from_arrays(arrays, names=list(columns))
    out = []
    for col in columns:
        typ = _ARROW_TYPES[col]
        if col in table.column_names:
            out.append(table.column(col).cast(typ))
        else:
            out.append(pa.nulls(table.num_rows, type=typ))
    return pa.Table.from_arrays(out, names=list(columns))


def _figures(figures: Mapping[str, Any]) -> dict[str, Any]:
    """`Store._write_dataset`'s counts, LLMs and verifiers from an import's figures."""
    return {
        "counts": (
            int(figures["n_problems"]),
            int(figures["n_responses"]),
            int(figures["n_scores"]),
        ),
        "llms": list(figures["llms"]),
        "verifiers": list(figures["verifiers"]),
    }


def _for_pair(
    alias: str, dataset_id: str, llm: str | None, verifier: str | None
) -> tuple[str, list[Any]]:
    """``WHERE`` clause (and parameters) of a dataset's rows, of one LLM and/or verifier
    (`alias`: the table's qualifier, with its dot)."""
    sql, params = f" WHERE {alias}dataset_id = ?", [dataset_id]
    for column, value in (("llm", llm), ("verifier", verifier)):
        if value is not None:
            sql += f" AND {alias}{column} = ?"
            params.append(value)
    return sql, params


def resolve_storage(storage: str, n_scores: int) -> str:
    """``table`` or ``parquet`` for an import of `n_scores` score rows (`STORAGES`)."""
    if storage not in STORAGES:
        raise StoreError(f"unknown storage {storage!r}; known: {', '.join(STORAGES)}")
    if storage == "auto":
        return "parquet" if n_scores >= PARQUET_MIN_SCORES else "table"
    return storage


class Store:
    """The project's DuckDB database. Use as a context manager or call `close()`."""

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        read_only: bool = False,
        shared: bool = False,
        lock_timeout: float = LOCK_TIMEOUT_S,
    ) -> None:
        """Open the database.

        `shared`: hold the file only while it is being used (and for `IDLE_RELEASE_S`
        after), so that other processes (the CLI beside a dashboard, a second dashboard)
        can read and write between uses; every use waits up to `lock_timeout` seconds for
        another process's transaction to finish. Without it the file is held until
        `close()`."""
        self.path = Path(path) if path is not None else default_db_path()
        self.read_only = read_only
        self.shared = shared
        self.lock_timeout = float(lock_timeout)
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        elif not self.path.exists():
            raise StoreError(f"database {self.path} does not exist (cannot open read-only)")
        self._con: duckdb.DuckDBPyConnection | None = None
        self._users = 0
        self._gen = 0
        self._conn_lock = threading.RLock()
        self._release_token = 0
        self._opened_at = 0.0
        self._closed = False
        self._local = threading.local()
        self._write_lock = threading.RLock()
        # cached results read or computed in this process (`_lookup`)
        self._memory: Lru[str, dict[str, Any]] = Lru(_MEMORY_ENTRIES)
        # facts and views per dataset content (`per_content`)
        self._facts: Lru[tuple[str, str, str, datetime], Any] = Lru(_FACT_ENTRIES, _FACT_BYTES)
        # one computation per cache key at a time: a second asker (a page while the
        # background warm-up computes the same pair) waits for the first one's result
        self._inflight: dict[str, threading.Lock] = {}
        self._inflight_lock = threading.Lock()
        _OPEN_STORES.add(self)
        with self._use():
            self._ensure_schema()

    def file_stamp(self) -> tuple[int, int, int, int]:
        """Modification time (ns) and size of the database file and of its write-ahead
        log. Every commit, of this process or another (a `ttslab delete` beside the
        dashboard), changes one of them, so an unchanged stamp means nothing was written:
        a check that costs a `stat`, not the opening of a released file."""
        out: list[int] = []
        for p in (self.path, self.path.with_name(self.path.name + ".wal")):
            try:
                st = p.stat()
            except FileNotFoundError:
                out += [0, 0]
            else:
                out += [st.st_mtime_ns, st.st_size]
        return (out[0], out[1], out[2], out[3])

    # -- connection handling -------------------------------------------------------------
    def _open(self) -> duckdb.DuckDBPyConnection:
        """A connection to the file, waiting (with backoff) while another process holds it."""
        deadline = time.monotonic() + self.lock_timeout
        pause = 0.02
        while True:
            try:
                return duckdb.connect(str(self.path), read_only=self.read_only)
            except duckdb.IOException as exc:
                busy = "lock" in str(exc).lower()
                if not busy or time.monotonic() + pause > deadline:
                    why = (
                        f"another process has held it for more than {self.lock_timeout:g} s"
                        if busy
                        else "it cannot be read"
                    )
                    raise StoreError(f"cannot open database {self.path} ({why}): {exc}") from exc
                time.sleep(pause)
                pause = min(pause * 2, 0.1)

    @contextmanager
    def _use(self) -> Iterator[None]:
        """Hold the connection for the duration of one use (nested uses share it)."""
        with self._conn_lock:
            if self._closed:
                raise StoreError(f"database {self.path} is closed")
            if self._con is None:
                self._con = self._open()
                self._gen += 1
                self._opened_at = time.monotonic()
            self._users += 1
        try:
            yield
        finally:
            with self._conn_lock:
                self._users -= 1
                if self._users == 0 and self.shared and self._con is not None:
                    self._release_token += 1
                    if time.monotonic() - self._opened_at > MAX_HOLD_S:
                        # busy for a while: let go at once, so that another process
                        # waiting for the file gets a turn
                        self._con.close()
                        self._con = None
                    else:
                        timer = threading.Timer(
                            IDLE_RELEASE_S, self._release_if_idle, args=(self._release_token,)
                        )
                        timer.daemon = True
                        timer.start()

    def _release_at_exit(self) -> None:
        """Close the connection on the exiting main thread and void the idle-release
        timers: a timer thread closing it while the interpreter shuts down is stopped
        inside DuckDB's close, which aborts the process ("FATAL: exception not
        rethrown")."""
        with self._conn_lock:
            self._release_token += 1
            if self._con is not None:
                self._con.close()
                self._con = None

    def _release_if_idle(self, token: int) -> None:
        with self._conn_lock:
            if token == self._release_token and self._users == 0 and self._con is not None:
                self._con.close()
                self._con = None

    def _cur(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            raise StoreError("internal: the database is used outside Store._use()")
        cur: duckdb.DuckDBPyConnection | None = getattr(self._local, "cur", None)
        if cur is None or getattr(self._local, "gen", -1) != self._gen:
            cur = self._con.cursor()
            self._local.cur = cur
            self._local.gen = self._gen
        return cur

    def close(self) -> None:
        with self._conn_lock:
            self._closed = True
            if self._con is not None:
                self._con.close()
                self._con = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _fetch_df(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        return self._cur().execute(sql, list(params)).df()

    # -- schema --------------------------------------------------------------------------
    def schema_version(self) -> int:
        row = _one(self._cur().execute("SELECT value FROM meta WHERE key = 'schema_version'"))
        return int(row[0]) if row else 0

    def _ensure_schema(self) -> None:
        cur = self._cur()
        has_meta = _one(
            cur.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'meta'")
        )
        version = self.schema_version() if has_meta and has_meta[0] else 0
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"database {self.path} has schema version {version}, newer than this "
                f"ttslab ({SCHEMA_VERSION}); upgrade ttslab"
            )
        if version == SCHEMA_VERSION:
            return
        if self.read_only:
            raise StoreError(
                f"database {self.path} has schema version {version}, needs "
                f"{SCHEMA_VERSION}; open it read-write once to migrate"
            )
        cur.execute("BEGIN TRANSACTION")
        try:
            if version == 0:
                for stmt in _SCHEMA_V1:
                    cur.execute(stmt)
                version = 1
            while version < SCHEMA_VERSION:
                for stmt in MIGRATIONS[version]:
                    cur.execute(stmt)
                version += 1
            cur.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", [str(version)])
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise

    # -- datasets ------------------------------------------------------------------------
    def list_datasets(self) -> list[DatasetInfo]:
        rows = self._cur().execute("SELECT * FROM datasets ORDER BY imported_at, name")
        cols = [d[0] for d in rows.description or []]
        return [self._info(dict(zip(cols, r, strict=True))) for r in rows.fetchall()]

    @staticmethod
    def _info(rec: dict[str, Any]) -> DatasetInfo:
        names = {f.name for f in fields(DatasetInfo)}
        rec = {k: v for k, v in rec.items() if k in names}
        rec["llms"] = tuple(rec["llms"])
        rec["verifiers"] = tuple(rec["verifiers"])
        rec["meta"] = json.loads(rec["meta"]) if rec.get("meta") else {}
        return DatasetInfo(**rec)

    def datasets_frame(self) -> pd.DataFrame:
        """One row per dataset, for display."""
        infos = self.list_datasets()
        return pd.DataFrame(
            {
                "name": [i.name for i in infos],
                "id": [f"{ID_PREFIX}{i.dataset_id}" for i in infos],
                "source": [i.source_format for i in infos],
                "kind": ["simulated" if i.simulated else "real" for i in infos],
                "problems": [i.n_problems for i in infos],
                "responses": [i.n_responses for i in infos],
                "LLMs": [len(i.llms) for i in infos],
                "verifiers": [len(i.verifiers) for i in infos],
                "imported": [i.imported_at for i in infos],
            }
        )

    def get_dataset(self, ref: str) -> DatasetInfo:
        """The dataset named `ref`, or with id X when `ref` is "id:X".

        Names and ids are separate namespaces: a bare string is only ever a name, so no
        name can shadow another dataset's id (an id given bare is refused with a hint)."""
        if ref.startswith(ID_PREFIX):
            return self.get_dataset_by_id(ref[len(ID_PREFIX) :])
        res = self._cur().execute("SELECT * FROM datasets WHERE name = ?", [ref])
        cols = [d[0] for d in res.description or []]
        row = _one(res)
        if row is None:
            by_id = _one(
                self._cur().execute("SELECT name FROM datasets WHERE dataset_id = ?", [ref])
            )
            if by_id is not None:
                raise StoreError(
                    f"no dataset named {ref!r}; {ref!r} is the id of dataset {by_id[0]!r}: "
                    f"address it by id as {ID_PREFIX}{ref}"
                )
            known = [i.name for i in self.list_datasets()]
            hint = f"; known datasets: {', '.join(known)}" if known else "; the store is empty"
            raise StoreError(f"no dataset named {ref!r}{hint}")
        return self._info(dict(zip(cols, row, strict=True)))

    def get_dataset_by_id(self, dataset_id: str) -> DatasetInfo:
        res = self._cur().execute("SELECT * FROM datasets WHERE dataset_id = ?", [dataset_id])
        cols = [d[0] for d in res.description or []]
        row = _one(res)
        if row is None:
            raise StoreError(f"no dataset with id {dataset_id!r}")
        return self._info(dict(zip(cols, row, strict=True)))

    def resolve(self, dataset: DatasetInfo | str) -> DatasetInfo:
        """The dataset's info (given as info, or looked up by name, or by id as "id:X")."""
        return dataset if isinstance(dataset, DatasetInfo) else self.get_dataset(dataset)

    def has_dataset(self, name: str) -> bool:
        row = self._cur().execute("SELECT count(*) FROM datasets WHERE name = ?", [name])
        got = _one(row)
        return bool(got and got[0])

    def delete_dataset(self, dataset: DatasetInfo | str, *, actor: str = "") -> DatasetInfo:
        """Delete a dataset (its info, its name, or "id:X"), recorded in the audit table
        under `actor` in the same transaction."""
        info = self.resolve(dataset)
        self._check_writable()
        with self._write_lock:
            cur = self._cur()
            cur.execute("BEGIN TRANSACTION")
            try:
                self._delete_rows(cur, info.dataset_id)
                self._audit(cur, actor, "delete", info.name, info.dataset_id, None)
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
        self._drop_own_parts(info.dataset_id)
        return info

    @staticmethod
    def _audit(
        cur: duckdb.DuckDBPyConnection,
        actor: str,
        action: str,
        name: str,
        dataset_id: str,
        detail: str | None,
    ) -> None:
        cur.execute(
            "INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?)",
            [
                datetime.now(UTC).replace(tzinfo=None),
                actor or default_actor(),
                action,
                name,
                dataset_id,
                detail,
            ],
        )

    def audit_log(self, limit: int = 200) -> pd.DataFrame:
        """The latest imports, replaces and deletes: when, who, what, which dataset."""
        return self._fetch_df(
            'SELECT happened_at AS "when", actor AS who, action AS what, dataset, '
            "dataset_id, detail FROM audit ORDER BY happened_at DESC LIMIT ?",
            [int(limit)],
        )

    @staticmethod
    def _delete_rows(cur: duckdb.DuckDBPyConnection, dataset_id: str) -> None:
        for table in ("scores", "responses", "problems", "parts", "datasets"):
            cur.execute(f"DELETE FROM {table} WHERE dataset_id = ?", [dataset_id])

    @property
    def parts_root(self) -> Path:
        """Where the store keeps the partitioned score files of its big datasets (an
        absolute path: the catalog's paths must hold from any working directory)."""
        return self.path.parent.resolve() / f"{self.path.name}.parts"

    def _own_parts(self, dataset_id: str) -> Path:
        return self.parts_root / f"dataset={dataset_id}"

    def _drop_own_parts(self, dataset_id: str) -> None:
        """Remove a deleted or replaced dataset's own Parquet files (a registered folder
        is the user's: it is never touched)."""
        shutil.rmtree(self._own_parts(dataset_id), ignore_errors=True)

    def _check_writable(self) -> None:
        if self.read_only:
            raise StoreError(f"database {self.path} is open read-only")

    def ingest(
        self,
        data: CanonicalData,
        *,
        name: str,
        source_format: str,
        content_sha256: str,
        source_path: str | None = None,
        replace: bool = False,
        iid: bool = True,
        simulated: bool = False,
        grader: str | None = None,
        notes: str | None = None,
        meta: Mapping[str, Any] | None = None,
        progress: Callable[[str, int, int], None] | None = None,
        actor: str = "",
    ) -> DatasetInfo:
        """Write one dataset in a single transaction; on any error nothing changes.

        Importing under an existing name raises unless `replace` is true, in which case the
        old dataset is removed in the same transaction as the new one is written. The
        import (or replace) is recorded in the audit table under `actor` (default: the
        operating-system user) in the same transaction.
        """
        problems = _to_arrow(data.problems, PROBLEM_COLUMNS)
        responses = _to_arrow(data.responses, RESPONSE_COLUMNS)
        scores = _to_arrow(data.scores, SCORE_COLUMNS)
        tables = {"problems": problems, "responses": responses, "scores": scores}

        def write(cur: duckdb.DuckDBPyConnection, dataset_id: str, i: int, table: str) -> None:
            self._insert_table(cur, table, dataset_id, tables[table])

        return self._write_dataset(
            write,
            counts=(problems.num_rows, responses.num_rows, scores.num_rows),
            llms=sorted(set(responses.column("llm").to_pylist())),
            verifiers=sorted(set(scores.column("verifier").unique().to_pylist())),
            name=name,
            source_format=source_format,
            content_sha256=content_sha256,
            source_path=source_path,
            replace=replace,
            iid=iid,
            simulated=simulated,
            grader=grader,
            notes=notes,
            meta=meta,
            progress=progress,
            actor=actor,
        )

    def ingest_staged(
        self,
        staged: str | Path,
        figures: Mapping[str, Any],
        *,
        name: str,
        source_format: str,
        content_sha256: str,
        source_path: str | None = None,
        replace: bool = False,
        iid: bool = True,
        simulated: bool = False,
        grader: str | None = None,
        notes: str | None = None,
        meta: Mapping[str, Any] | None = None,
        progress: Callable[[str, int, int], None] | None = None,
        actor: str = "",
        storage: str = "auto",
    ) -> DatasetInfo:
        """`ingest` of the tables ``problems``, ``responses`` and ``scores`` of a finished
        staging database (`core.importers.staging`), copied in one transaction with
        `figures` (its counts, LLMs and verifiers); the store's DuckDB memory is capped
        meanwhile, so the copy streams whatever its size.

        `storage`: ``table`` copies the rows into the DuckDB file; ``parquet`` writes the
        score rows (with their response's fields) as Parquet partitioned by LLM and
        verifier under `parts_root` and keeps the problems and the file list in the
        database; ``auto`` (default) chooses Parquet from `PARQUET_MIN_SCORES` rows."""
        as_parquet = resolve_storage(storage, int(figures["n_scores"])) == "parquet"
        alias = f"_stage_{uuid.uuid4().hex[:12]}"  # two imports never share a name
        written: list[Path] = []  # the dataset's own files, removed if the import fails
        staging_dir = self.parts_root / f".staging-{uuid.uuid4().hex[:12]}"

        def write(cur: duckdb.DuckDBPyConnection, dataset_id: str, i: int, table: str) -> None:
            if not as_parquet or table == "problems":
                self._insert_table(cur, table, dataset_id, f"{alias}.{table}")
            elif table == "scores":
                final = self._own_parts(dataset_id)
                staging_dir.rename(final)
                written.append(final)
                parts, _ = list_parts(final)
                self._insert_parts(cur, dataset_id, parts)

        # the write lock (reentrant) spans the settings too: the cap and the attachment
        # belong to the connection, so no other import may change or read them meanwhile
        with self._write_lock:
            cur = self._cur()
            try:
                cur.execute(f"SET memory_limit = '{INGEST_MEMORY}'")
                cur.execute(f"ATTACH ? AS {alias} (READ_ONLY)", [str(staged)])
                if as_parquet:
                    if progress is not None:
                        progress("score files", 0, 3)
                    self._check_writable()
                    self.parts_root.mkdir(parents=True, exist_ok=True)
                    # the rows with their response's fields: a staging database that
                    # has them whole (`pair_rows`, the typed path) spares the join
                    whole = cur.execute(
                        "SELECT count(*) FROM information_schema.tables "
                        "WHERE table_catalog = ? AND table_name = 'pair_rows'",
                        [alias],
                    ).fetchall()[0][0]
                    rows = (
                        f"""SELECT llm, verifier, problem_id, sample_idx, score, step_scores,
                                   answer_raw AS answer, answer_key, is_correct, n_tokens
                            FROM {alias}.pair_rows"""
                        if whole
                        else f"""SELECT s.llm, s.verifier, s.problem_id, s.sample_idx,
                                        s.score, s.step_scores, r.answer_raw AS answer,
                                        r.answer_key, r.is_correct, r.n_tokens
                                 FROM {alias}.scores s JOIN {alias}.responses r
                                 USING (llm, problem_id, sample_idx)"""
                    )
                    cur.execute(
                        f"COPY ({rows}) TO ? (FORMAT parquet, PARTITION_BY (llm, verifier))",
                        [str(staging_dir)],
                    )
                    meta = {**dict(meta or {}), "storage": "parquet"}
                return self._write_dataset(
                    write,
                    **_figures(figures),
                    name=name,
                    source_format=source_format,
                    content_sha256=content_sha256,
                    source_path=source_path,
                    replace=replace,
                    iid=iid,
                    simulated=simulated,
                    grader=grader,
                    notes=notes,
                    meta=meta,
                    progress=progress,
                    actor=actor,
                )
            except BaseException:
                # only files no committed dataset lists: a failure after the commit (the
                # old dataset's clean-up, the read-back) leaves the new one whole
                for folder in written:
                    if not self._lists_files(cur, folder):
                        shutil.rmtree(folder, ignore_errors=True)
                raise
            finally:
                shutil.rmtree(staging_dir, ignore_errors=True)
                with contextlib.suppress(duckdb.Error):
                    cur.execute(f"DETACH DATABASE IF EXISTS {alias}")
                # the store sets no limit of its own otherwise (a read-back value is rounded:
                # setting it again would change it)
                cur.execute("RESET memory_limit")

    def register_parts(
        self,
        parts: Sequence[Part],
        problems: pa.Table,
        figures: Mapping[str, Any],
        *,
        columns: Sequence[str],
        name: str,
        content_sha256: str,
        source_path: str,
        replace: bool = False,
        iid: bool = True,
        notes: str | None = None,
        meta: Mapping[str, Any] | None = None,
        progress: Callable[[str, int, int], None] | None = None,
        actor: str = "",
    ) -> DatasetInfo:
        """Register validated partition files in place (`core.importers.inplace`): the
        catalog row, the problems and the file list, in one transaction; the files are
        read where they are from then on and never copied, changed or removed."""
        full = {**dict(meta or {}), "storage": "in-place", "columns": list(columns)}

        def write(cur: duckdb.DuckDBPyConnection, dataset_id: str, i: int, table: str) -> None:
            if table == "problems":
                self._insert_table(cur, table, dataset_id, _to_arrow(problems, PROBLEM_COLUMNS))
            elif table == "scores":
                self._insert_parts(cur, dataset_id, parts)

        return self._write_dataset(
            write,
            **_figures(figures),
            name=name,
            source_format="parquet-in-place",
            content_sha256=content_sha256,
            source_path=source_path,
            replace=replace,
            iid=iid,
            simulated=False,
            grader="labels from file",
            notes=notes,
            meta=full,
            progress=progress,
            actor=actor,
        )

    @staticmethod
    def _lists_files(cur: duckdb.DuckDBPyConnection, folder: Path) -> bool:
        """Whether a committed dataset's catalog lists files under `folder`."""
        try:
            rows = cur.execute(
                "SELECT count(*) FROM parts WHERE starts_with(path, ?)", [f"{folder}{os.sep}"]
            ).fetchall()
        except duckdb.Error:
            return True  # cannot tell: keep the files (a stray folder beats a lost dataset)
        return bool(rows[0][0])

    @staticmethod
    def _insert_parts(
        cur: duckdb.DuckDBPyConnection, dataset_id: str, parts: Sequence[Part]
    ) -> None:
        if not parts:
            raise StoreError("internal: a Parquet-stored dataset without files")
        table = pa.table(
            {
                "llm": [p.llm for p in parts],
                "verifier": [p.verifier for p in parts],
                "path": [p.path for p in parts],
                "size": pa.array([p.size for p in parts], pa.int64()),
                "mtime_ns": pa.array([p.mtime_ns for p in parts], pa.int64()),
            }
        )
        cur.register("_ingest_parts", table)
        try:
            cur.execute(
                "INSERT INTO parts SELECT ?, llm, verifier, path, size, mtime_ns "
                "FROM _ingest_parts",
                [dataset_id],
            )
        finally:
            cur.unregister("_ingest_parts")

    def _write_dataset(
        self,
        write: Callable[[duckdb.DuckDBPyConnection, str, int, str], None],
        *,
        counts: tuple[int, int, int],
        llms: list[str],
        verifiers: list[str],
        name: str,
        source_format: str,
        content_sha256: str,
        source_path: str | None,
        replace: bool,
        iid: bool,
        simulated: bool,
        grader: str | None,
        notes: str | None,
        meta: Mapping[str, Any] | None,
        progress: Callable[[str, int, int], None] | None,
        actor: str,
    ) -> DatasetInfo:
        """The one transaction of an import: replace the old dataset of that name (if
        asked), write the catalog row, the three tables (`write`) and the audit row."""
        self._check_writable()
        check_name(name)
        steps = ("problems", "responses", "scores")
        with self._write_lock:
            cur = self._cur()
            cur.execute("BEGIN TRANSACTION")
            try:
                old = _one(cur.execute("SELECT dataset_id FROM datasets WHERE name = ?", [name]))
                action = "import"
                replaced = None if old is None else str(old[0])
                if old is not None:
                    action = "replace"
                    if not replace:
                        raise StoreError(
                            f"a dataset named {name!r} exists; pass replace=True "
                            "(CLI: --replace) to overwrite it"
                        )
                    self._delete_rows(cur, str(old[0]))
                if _one(cur.execute("SELECT 1 FROM datasets WHERE dataset_id = ?", [name])):
                    raise StoreError(
                        f"{name!r} is the id of another dataset: a name cannot equal an id"
                    )
                dataset_id = self._new_id(cur)
                cur.execute(
                    "INSERT INTO datasets VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        dataset_id,
                        name,
                        source_format,
                        source_path,
                        datetime.now(UTC).replace(tzinfo=None),
                        content_sha256,
                        *counts,
                        llms,
                        verifiers,
                        iid,
                        simulated,
                        grader,
                        notes,
                        json.dumps(dict(meta or {}), sort_keys=True),
                    ],
                )
                for i, table in enumerate(steps):
                    if progress is not None:
                        progress(table, i, len(steps))
                    write(cur, dataset_id, i, table)
                detail = f"{counts[1]} responses from {source_path or source_format}"
                self._audit(cur, actor, action, name, dataset_id, detail)
                if progress is not None:
                    progress("commit", len(steps), len(steps))
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
        if replaced is not None:
            self._drop_own_parts(replaced)
        return self.get_dataset_by_id(dataset_id)

    @staticmethod
    def _new_id(cur: duckdb.DuckDBPyConnection) -> str:
        """A fresh dataset id, equal to no existing id or name."""
        while True:
            dataset_id = uuid.uuid4().hex[:12]
            taken = cur.execute(
                "SELECT 1 FROM datasets WHERE dataset_id = ? OR name = ?", [dataset_id, dataset_id]
            )
            if _one(taken) is None:
                return dataset_id

    def _insert_table(
        self,
        cur: duckdb.DuckDBPyConnection,
        table: str,
        dataset_id: str,
        arrow: pa.Table | str,
    ) -> None:
        """Append rows to `table` under `dataset_id`: an Arrow table, or the name of a
        relation with the table's columns (an attached staging database's table)."""
        if isinstance(arrow, str):
            cols = ", ".join(
                {"problems": PROBLEM_COLUMNS, "responses": RESPONSE_COLUMNS}.get(
                    table, SCORE_COLUMNS
                )
            )
            cur.execute(
                f"INSERT INTO {table} (dataset_id, {cols}) SELECT ?, {cols} FROM {arrow}",
                [dataset_id],
            )
            return
        view = f"_ingest_{table}"
        cur.register(view, arrow)
        try:
            cols = ", ".join(arrow.column_names)
            cur.execute(
                f"INSERT INTO {table} (dataset_id, {cols}) SELECT ?, {cols} FROM {view}",
                [dataset_id],
            )
        finally:
            cur.unregister(view)

    # -- queries -------------------------------------------------------------------------
    def _parts(
        self, info: DatasetInfo, llm: str | None = None, verifier: str | None = None
    ) -> list[Part]:
        """A Parquet-stored dataset's files (of one LLM and/or verifier), checked to be
        those that were registered."""
        where, params = _for_pair("", info.dataset_id, llm, verifier)
        rows = (
            self._cur()
            .execute(
                f"SELECT llm, verifier, path, size, mtime_ns FROM parts{where} "
                "ORDER BY llm, verifier, path",
                params,
            )
            .fetchall()
        )
        parts = [Part(str(m), str(v), str(p), int(n), int(t)) for m, v, p, n, t in rows]
        check_unchanged(parts, info.name, in_place=info.storage == "in-place")
        return parts

    def _pair_rows(
        self, info: DatasetInfo, llm: str | None = None, verifier: str | None = None
    ) -> tuple[str, list[Any]]:
        """SQL (and its parameters) of the dataset's scored responses, one row per
        (llm, verifier, problem_id, sample_idx) with the response's fields (answer_raw,
        answer_key, is_correct, n_tokens), wherever the rows are kept: loading one pair
        of a Parquet-stored dataset reads that pair's files only."""
        if info.storage == "table":
            sql = """SELECT s.llm, s.verifier, s.problem_id, s.sample_idx, s.score,
                            s.step_scores, r.answer_raw, r.answer_key, r.is_correct,
                            r.n_tokens
                     FROM scores s JOIN responses r
                       ON r.dataset_id = s.dataset_id AND r.llm = s.llm
                      AND r.problem_id = s.problem_id AND r.sample_idx = s.sample_idx"""
            where, params = _for_pair("s.", info.dataset_id, llm, verifier)
            return sql + where, params
        parts, columns = self.pair_parts(info, llm, verifier)
        return _parquet_rows(parts, columns)

    def pair_parts(
        self, info: DatasetInfo, llm: str | None = None, verifier: str | None = None
    ) -> tuple[list[Part], list[str]]:
        """A Parquet-stored dataset's files (of one LLM and/or verifier; checked to be
        those registered) and their columns: what `read_pair_parts` loads a pair from
        without the store (an executor's worker reading its own partition)."""
        columns = list(info.meta.get("columns") or STORED_COLUMNS)
        return self._parts(info, llm, verifier), columns

    def _responses_rows(self, info: DatasetInfo, llm: str | None = None) -> tuple[str, list[Any]]:
        """SQL (and parameters) of the dataset's responses, one row each."""
        if info.storage == "table":
            where, params = _for_pair("", info.dataset_id, llm, None)
            return (
                "SELECT llm, problem_id, sample_idx, answer_raw, answer_key, is_correct, "
                f"n_tokens FROM responses{where}",
                params,
            )
        # a response scored by several verifiers has a row in each of their files; its
        # key, label and length agree (validated), its raw answer is the least one
        rows, params = self._pair_rows(info, llm)
        return (
            f"""SELECT llm, problem_id, sample_idx, min(answer_raw) AS answer_raw,
                       any_value(answer_key) AS answer_key,
                       any_value(is_correct) AS is_correct, any_value(n_tokens) AS n_tokens
                FROM ({rows}) GROUP BY llm, problem_id, sample_idx""",
            params,
        )

    def problems(self, dataset: DatasetInfo | str) -> pd.DataFrame:
        info = self.resolve(dataset)
        return self._fetch_df(
            "SELECT problem_id, gold_answer, level, subject, text FROM problems "
            "WHERE dataset_id = ? ORDER BY problem_id",
            [info.dataset_id],
        )

    def responses(
        self, dataset: DatasetInfo | str, llm: str | None = None, problem_id: str | None = None
    ) -> pd.DataFrame:
        """The responses of a dataset (of one LLM, of one problem)."""
        info = self.resolve(dataset)
        rows, params = self._responses_rows(info, llm)
        where = ""
        if problem_id is not None:
            where, params = " WHERE problem_id = ?", [*params, problem_id]
        return self._fetch_df(
            "SELECT llm, problem_id, sample_idx, answer_raw, answer_key, is_correct, n_tokens "
            f"FROM ({rows}){where} ORDER BY llm, problem_id, sample_idx",
            params,
        )

    def scores(
        self, dataset: DatasetInfo | str, llm: str | None = None, verifier: str | None = None
    ) -> pd.DataFrame:
        info = self.resolve(dataset)
        if info.storage == "table":
            where, params = _for_pair("", info.dataset_id, llm, verifier)
            rows = f"SELECT * FROM scores{where}"
        else:
            rows, params = self._pair_rows(info, llm, verifier)
        return self._fetch_df(
            "SELECT llm, verifier, problem_id, sample_idx, score, step_scores "
            f"FROM ({rows}) ORDER BY llm, verifier, problem_id, sample_idx",
            params,
        )

    def pair_summary(self, dataset: DatasetInfo | str) -> pd.DataFrame:
        """Per (llm, verifier): responses, problems, accuracy, score range, and the
        separation of the classes: (mean score of correct - mean of incorrect responses)
        in units of the score's standard deviation (NaN when a class is absent)."""
        info = self.resolve(dataset)

        def query() -> pd.DataFrame:
            rows, params = self._pair_rows(info)
            return self._fetch_df(
                f"""SELECT llm, verifier, count(*) AS responses,
                          count(DISTINCT problem_id) AS problems,
                          avg(is_correct::DOUBLE) AS accuracy,
                          min(score) AS score_min, max(score) AS score_max,
                          (avg(score) FILTER (WHERE is_correct)
                           - avg(score) FILTER (WHERE NOT is_correct))
                           / nullif(stddev_pop(score), 0) AS separation
                   FROM ({rows})
                   GROUP BY llm, verifier ORDER BY llm, verifier""",
                params,
            )

        summary: pd.DataFrame = self.per_content("pair_summary", info, query)
        return summary.copy()  # (a copy to change)

    def per_content(self, kind: str, info: DatasetInfo, compute: Callable[[], Any]) -> Any:
        """A fact of a dataset's content, or a view computed from it, computed once per
        content and kept in memory (`kind` names it with every input besides the content):
        every page asks for some on every script run (0.03-0.2 s each). The key holds the
        content's fingerprint and import time, so a replaced dataset is asked again."""
        key = (kind, info.dataset_id, info.content_sha256, info.imported_at)
        found, value = self._facts.get(key)
        if found:
            return value
        value = compute()
        size = held_bytes(value)
        limit = self._facts.max_bytes
        if limit is not None and size > limit // 4:  # a huge dataset's: asked again
            return value
        held_bytes(value, freeze=True)
        self._facts.put(key, value, size)
        return value

    def all_distinct_share(self, dataset: DatasetInfo | str) -> float:
        """The share of (LLM, problem) groups of at least two responses whose answers all
        differ (answer keys; no answer counts as its own): where it is near 1, majority
        vote is a random pick (e.g. RewardMATH's one correct and nine incorrect
        solutions). NaN when no group has two responses."""
        info = self.resolve(dataset)

        def query() -> float:
            rows, params = self._responses_rows(info)
            row = _one(
                self._cur().execute(
                    f"""SELECT avg((n = k)::DOUBLE) FROM (
                           SELECT count(*) AS n,
                                  count(DISTINCT coalesce(answer_key, '\x00' || sample_idx)) AS k
                           FROM ({rows})
                           GROUP BY llm, problem_id HAVING count(*) > 1)""",
                    params,
                )
            )
            return float(row[0]) if row is not None and row[0] is not None else math.nan

        return float(self.per_content("all_distinct_share", info, query))

    def check_pair(self, info: DatasetInfo, llm: str, verifier: str) -> None:
        """Raise `StoreError` unless the dataset has this (LLM, verifier) pair."""
        if llm not in info.llms or verifier not in info.verifiers:
            raise StoreError(
                f"dataset {info.name!r} has no pair ({llm!r}, {verifier!r}); "
                f"LLMs: {list(info.llms)}, verifiers: {list(info.verifiers)}"
            )

    def load_pair(self, dataset: DatasetInfo | str, llm: str, verifier: str) -> PairData:
        """Packed arrays of one (dataset, llm, verifier) pair, problems in id order, each
        problem's responses in sample order, with the stored score."""
        info = self.resolve(dataset)
        self.check_pair(info, llm, verifier)
        rows, params = self._pair_rows(info, llm, verifier)
        table = self._cur().sql(_PAIR_SQL.format(rows=rows), params=params).to_arrow_table()
        return pair_from_arrow(table, info.dataset_id, llm, verifier)

    def load_steps(
        self, dataset: DatasetInfo | str, llm: str, verifier: str
    ) -> tuple[FloatArray, IntArray]:
        """The pair's step scores, flat, with CSR offsets per response (rows in the order of
        `load_pair`); a response without step scores has an empty range."""
        info = self.resolve(dataset)
        self.check_pair(info, llm, verifier)
        rows, params = self._pair_rows(info, llm, verifier)
        table = self._cur().sql(_STEPS_SQL.format(rows=rows), params=params).to_arrow_table()
        return _steps_from_arrow(table)

    # -- result cache --------------------------------------------------------------------
    @staticmethod
    def cache_key(content_sha256: str, kind: str, params: Mapping[str, Any]) -> str:
        blob = json.dumps(params, sort_keys=True, default=str)
        raw = f"{CACHE_VERSION}|{content_sha256}|{kind}|{blob}"
        return hashlib.sha256(raw.encode()).hexdigest()

    def cached(
        self,
        info: DatasetInfo,
        kind: str,
        params: Mapping[str, Any],
        compute: Callable[[], Mapping[str, Any]],
    ) -> tuple[dict[str, Any], bool]:
        """The payload of (dataset content, kind, params) from the cache, else computed by
        `compute`, stored and returned. Returns (payload, was_cached)."""
        key = self.cache_key(info.content_sha256, kind, params)
        hit = self._lookup(key)
        if hit is not None:
            return hit, True
        with self._inflight_lock:
            gate = self._inflight.setdefault(key, threading.Lock())
        # bounded wait: a (never expected) nesting of two keys in opposite orders by two
        # threads cannot hang; both then compute
        held = gate.acquire(timeout=INFLIGHT_WAIT_S)
        try:
            hit = self._lookup(key)  # computed by the thread we waited for
            if hit is not None:
                return hit, True
            payload = dict(compute())
            blob = encode_payload(payload)
            if not self.read_only:  # a read-only store caches in memory only
                with self._write_lock, self._use():
                    self._cur().execute(
                        "INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?, ?)",
                        [
                            key,
                            info.content_sha256,
                            kind,
                            json.dumps(params, sort_keys=True, default=str),
                            blob,
                            datetime.now(UTC).replace(tzinfo=None),
                        ],
                    )
            payload = decode_payload(blob)  # what a later hit returns, exactly
            self._remember(key, payload)
            return payload, False
        finally:
            if held:
                gate.release()
            with self._inflight_lock:
                if self._inflight.get(key) is gate and not gate.locked():
                    del self._inflight[key]

    def has_cached(self, info: DatasetInfo, kind: str, params: Mapping[str, Any]) -> bool:
        """Whether `cached` would answer (dataset content, kind, params) from the cache."""
        return self._lookup(self.cache_key(info.content_sha256, kind, params)) is not None

    def _lookup(self, key: str) -> dict[str, Any] | None:
        """A cached payload from memory, else from the results table (then remembered)."""
        found, hit = self._memory.get(key)
        if found:
            return hit
        with self._use():
            got = _one(
                self._cur().execute("SELECT payload FROM results WHERE cache_key = ?", [key])
            )
        if got is None:
            return None
        payload = decode_payload(bytes(got[0]))
        self._remember(key, payload)
        return payload

    def _remember(self, key: str, payload: dict[str, Any]) -> None:
        self._memory.put(key, payload)

    def cache_kinds(self) -> dict[str, int]:
        """Number of cached results per kind."""
        rows = self._cur().execute("SELECT kind, count(*) FROM results GROUP BY kind").fetchall()
        return {str(k): int(n) for k, n in rows}

    # -- export --------------------------------------------------------------------------
    def export_long(self, dataset: DatasetInfo | str) -> pd.DataFrame:
        """The dataset in the long import format (one row per response and verifier)."""
        info = self.resolve(dataset)
        rows, params = self._pair_rows(info)
        return self._fetch_df(
            f"""SELECT s.problem_id, s.sample_idx, s.llm, s.verifier,
                      s.answer_raw AS answer, s.answer_key, s.is_correct, p.gold_answer,
                      s.score, s.step_scores, s.n_tokens, p.level, p.subject,
                      p.text AS problem_text
               FROM ({rows}) s
               JOIN problems p ON p.dataset_id = ? AND p.problem_id = s.problem_id
               ORDER BY s.llm, s.verifier, s.problem_id, s.sample_idx""",
            [*params, info.dataset_id],
        )

    def export_parquet(self, dataset: DatasetInfo | str, path: str | Path) -> Path:
        import pyarrow.parquet as pq

        df = self.export_long(dataset)
        out = Path(path)
        pq.write_table(pa.Table.from_pandas(df, preserve_index=False), out)
        return out


def _holding(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(self: Store, *args: Any, **kwargs: Any) -> Any:
        with self._use():
            return method(self, *args, **kwargs)

    return wrapper


# every public query and change holds the connection while it runs (`cached` holds it only
# around its reads and writes, not while it computes)
for _name in (
    "schema_version",
    "list_datasets",
    "datasets_frame",
    "get_dataset",
    "get_dataset_by_id",
    "has_dataset",
    "delete_dataset",
    "audit_log",
    "ingest",
    "ingest_staged",
    "register_parts",
    "problems",
    "responses",
    "scores",
    "pair_summary",
    "all_distinct_share",
    "load_pair",
    "load_steps",
    "pair_parts",
    "cache_kinds",
    "export_long",
):
    setattr(Store, _name, _holding(getattr(Store, _name)))


#: the columns of the store's own partition files (an in-place folder records its own)
STORED_COLUMNS = (
    "problem_id",
    "sample_idx",
    "score",
    "is_correct",
    "answer",
    "answer_key",
    "n_tokens",
    "step_scores",
)
#: one pair's rows as `load_pair` packs them, and its step scores, from a rows relation
_PAIR_SQL = """SELECT problem_id, sample_idx, score, answer_key, is_correct, n_tokens
               FROM ({rows}) ORDER BY problem_id, sample_idx"""
_STEPS_SQL = "SELECT step_scores FROM ({rows}) ORDER BY problem_id, sample_idx"


def _parquet_rows(parts: Sequence[Part], columns: Sequence[str]) -> tuple[str, list[Any]]:
    """SQL and parameters of the pair rows of these files, pair by pair: each pair's
    names are bound constants and its files are read by their (escaped) paths only."""
    by_pair: dict[tuple[str, str], list[str]] = {}
    for part in parts:
        by_pair.setdefault((part.llm, part.verifier), []).append(glob_escape(part.path))
    if not by_pair:
        return EMPTY_ROWS, []
    sql = " UNION ALL ".join(f"({pair_rows_sql(columns)})" for _ in by_pair)
    params: list[Any] = [x for (m, v), paths in by_pair.items() for x in (m, v, paths)]
    return sql, params


def _steps_from_arrow(table: pa.Table) -> tuple[FloatArray, IntArray]:
    col = table.column("step_scores").combine_chunks()
    lengths = pc.list_value_length(col).fill_null(0)
    offsets = np.zeros(len(col) + 1, dtype=np.int64)
    np.cumsum(lengths.to_numpy(zero_copy_only=False), out=offsets[1:])
    values = pc.list_flatten(col).to_numpy(zero_copy_only=False)
    return np.asarray(values, dtype=np.float64), offsets


def _read_parts(
    sql: str, parts: Sequence[Part], columns: Sequence[str], dataset: str, in_place: bool
) -> pa.Table:
    check_unchanged(parts, dataset, in_place=in_place)
    con = duckdb.connect()
    try:
        rows, params = _parquet_rows(parts, columns)
        return con.sql(sql.format(rows=rows), params=params).to_arrow_table()
    finally:
        con.close()


def read_pair_parts(
    parts: Sequence[Part],
    columns: Sequence[str],
    *,
    dataset: str,
    dataset_id: str,
    llm: str,
    verifier: str,
    in_place: bool,
) -> PairData:
    """`Store.load_pair` from one pair's partition files (`Store.pair_parts`), without
    the store: the same query on a private connection, so the same arrays."""
    table = _read_parts(_PAIR_SQL, parts, columns, dataset, in_place)
    return pair_from_arrow(table, dataset_id, llm, verifier)


def read_steps_parts(
    parts: Sequence[Part], columns: Sequence[str], *, dataset: str, in_place: bool
) -> tuple[FloatArray, IntArray]:
    """`Store.load_steps` from one pair's partition files."""
    return _steps_from_arrow(_read_parts(_STEPS_SQL, parts, columns, dataset, in_place))


def pair_from_arrow(table: pa.Table, dataset_id: str, llm: str, verifier: str) -> PairData:
    """Pack an Arrow table sorted by (problem_id, sample_idx) into `PairData`.

    Needs columns problem_id, sample_idx, score, answer_key, is_correct, n_tokens.
    """
    n = table.num_rows
    pid = table.column("problem_id").combine_chunks()
    if n:
        starts = np.flatnonzero(
            np.r_[True, ~pc.equal(pid[1:], pid[:-1]).to_numpy(zero_copy_only=False)]
        )
    else:
        starts = np.zeros(0, dtype=np.int64)
    offsets = np.r_[starts, n].astype(np.int64)
    problem_ids = tuple(str(p) for p in pid.take(pa.array(starts)).to_pylist())
    # dense cluster ids within each problem, in order of first appearance: factorise
    # (problem, answer key) pairs; problems are contiguous, so the codes of problem p are
    # base_p, base_p + 1, ... with base_p the code of its first row
    prob = np.repeat(np.arange(len(starts), dtype=np.int64), np.diff(offsets))
    key_codes = pd.factorize(table.column("answer_key").to_pandas(), sort=False)[0]
    combo = prob * (int(key_codes.max()) + 1 if n else 1) + key_codes.astype(np.int64)
    codes = pd.factorize(combo, sort=False)[0].astype(np.int64)
    cluster = codes - np.repeat(codes[starts], np.diff(offsets)) if n else codes
    n_tokens = table.column("n_tokens").to_numpy(zero_copy_only=False)
    return PairData(
        dataset_id=dataset_id,
        llm=llm,
        verifier=verifier,
        problem_ids=problem_ids,
        offsets=offsets,
        cluster=np.asarray(cluster, dtype=np.int64),
        score=np.asarray(table.column("score").to_numpy(zero_copy_only=False), dtype=np.float64),
        correct=np.asarray(table.column("is_correct").to_numpy(zero_copy_only=False), dtype=bool),
        sample_idx=np.asarray(
            table.column("sample_idx").to_numpy(zero_copy_only=False), dtype=np.int64
        ),
        n_tokens=np.asarray(pd.to_numeric(pd.Series(n_tokens), errors="coerce"), dtype=np.float64),
    )


def pair_from_frame(df: pd.DataFrame, dataset_id: str, llm: str, verifier: str) -> PairData:
    """`pair_from_arrow` for a frame sorted by (problem_id, sample_idx)."""
    cols = ["problem_id", "sample_idx", "score", "answer_key", "is_correct", "n_tokens"]
    frame = df[cols].reset_index(drop=True)
    frame = frame.assign(
        problem_id=frame["problem_id"].astype(str), answer_key=frame["answer_key"].astype(str)
    )
    return pair_from_arrow(
        pa.Table.from_pandas(frame, preserve_index=False), dataset_id, llm, verifier
    )


# --------------------------------------------------------------------------------------
# the result cache's codec
# --------------------------------------------------------------------------------------

#: Every Store of the process, so that their connections are closed at exit by the main
#: thread (`Store._release_at_exit`), before daemon threads are stopped.
_OPEN_STORES: weakref.WeakSet[Store] = weakref.WeakSet()


@atexit.register
def _close_stores_at_exit() -> None:
    for store in list(_OPEN_STORES):
        store._release_at_exit()


_MEMORY_ENTRIES = 256
#: facts and views of dataset contents (pair summaries, ...) a Store keeps in memory: at
#: most this many, of at most this many bytes in all (`held_bytes`)
_FACT_ENTRIES = 64
_FACT_BYTES = 256 * 2**20


def held_bytes(value: Any, freeze: bool = False, depth: int = 0) -> int:
    """About how much memory `value` holds: its arrays and frames (through dataclasses,
    mappings and sequences, a few levels deep); everything else counts 64 bytes. With
    `freeze`, its arrays are made read-only: a value kept in memory is shared by every
    caller, and one writing into it would change what the others see (now it raises)."""
    if isinstance(value, np.ndarray):
        if freeze:
            value.setflags(write=False)
        return int(value.nbytes)
    if isinstance(value, pd.DataFrame | pd.Series):
        return int(np.sum(value.memory_usage(index=True, deep=False)))
    if depth >= 4:
        return 64
    if is_dataclass(value) and not isinstance(value, type):
        return 64 + sum(
            held_bytes(getattr(value, f.name), freeze, depth + 1) for f in fields(value)
        )
    if isinstance(value, Mapping):
        return 64 + sum(held_bytes(v, freeze, depth + 1) for v in value.values())
    if isinstance(value, list | tuple):
        return 64 + sum(held_bytes(v, freeze, depth + 1) for v in value)
    return 64


#: longest wait for another thread computing the same cached result
INFLIGHT_WAIT_S = 600.0
_META = "__meta__"


def encode_payload(payload: Mapping[str, Any]) -> bytes:
    """One codec for every cached result: numpy arrays go into an npz archive, every other
    (JSON-able) value into one JSON entry of it."""
    arrays = {k: v for k, v in payload.items() if isinstance(v, np.ndarray)}
    if _META in arrays:
        raise StoreError(f"{_META!r} is reserved in cached payloads")
    meta = {k: v for k, v in payload.items() if not isinstance(v, np.ndarray)}
    buf = io.BytesIO()
    blob = np.frombuffer(json.dumps(meta, allow_nan=True).encode(), dtype=np.uint8)
    np.savez_compressed(buf, allow_pickle=False, **arrays, **{_META: blob})
    return buf.getvalue()


def decode_payload(blob: bytes) -> dict[str, Any]:
    with np.load(io.BytesIO(blob), allow_pickle=False) as z:
        out: dict[str, Any] = {k: z[k] for k in z.files if k != _META}
        meta = json.loads(bytes(z[_META]).decode()) if _META in z.files else {}
    for arr in out.values():
        arr.setflags(write=False)
    out.update(meta)
    return out


@contextmanager
def open_store(path: str | Path | None = None, *, read_only: bool = False) -> Iterator[Store]:
    store = Store(path, read_only=read_only)
    try:
        yield store
    finally:
        store.close()
