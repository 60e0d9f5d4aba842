"""A streamed import's staging database: validated batches are written to a private
DuckDB file as they come, the checks that span batches run there as queries, and the
store copies the result in one transaction (`Store.ingest_staged`).

Memory stays bounded by one batch plus DuckDB's own limit (`STAGING_MEMORY`; its sorts
and aggregates spill to the staging folder), whatever the size of the input. Nothing of
the store is touched until the final copy, so a failed import leaves it exactly as it was.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from core.importers.errors import Issue
from core.store import PROBLEM_COLUMNS, RESPONSE_COLUMNS, SCORE_COLUMNS, CanonicalData, _to_arrow

#: DuckDB memory of the staging database (beyond it, sorts and aggregates spill to disk).
STAGING_MEMORY = "400MB"
#: Issues reported per cross-batch check (as the in-memory checks do).
MAX_ISSUES_PER_CHECK = 1000

_LOC = ("_batch", "_file", "_loc")
_DDL = {
    "s_problems": """problem_id VARCHAR, gold_answer VARCHAR, level INTEGER, subject VARCHAR,
                     text VARCHAR""",
    "s_responses": """llm VARCHAR, problem_id VARCHAR, sample_idx INTEGER, answer_raw VARCHAR,
                      answer_key VARCHAR, is_correct BOOLEAN, n_tokens BIGINT""",
    "s_scores": """llm VARCHAR, verifier VARCHAR, problem_id VARCHAR, sample_idx INTEGER,
                   score DOUBLE, step_scores DOUBLE[]""",
}
_COLUMNS = {
    "s_problems": PROBLEM_COLUMNS,
    "s_responses": RESPONSE_COLUMNS,
    "s_scores": SCORE_COLUMNS,
}


class CrossChecks:
    """The checks that span rows, as queries over the relations ``s_scores``,
    ``s_responses`` and ``s_problems`` of `con` (tables of a staging database, or views
    over registered Parquet files), each with ``_batch``, ``_file`` and ``_loc``: the
    order of first occurrence is (``_batch``, ``_loc``)."""

    con: duckdb.DuckDBPyConnection | None

    def _con(self) -> duckdb.DuckDBPyConnection:
        assert self.con is not None, "the database is closed"
        return self.con

    def _has(self, table: str) -> bool:
        row = (
            self._con()
            .execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [table])
            .fetchone()
        )
        return bool(row and row[0])

    def run_checks(self, loc_kind: str) -> list[Issue]:
        """Duplicate keys, responses whose answer fields differ between verifiers, and
        conflicting gold answers. Each issue names the later occurrence and where the
        first one is."""
        return [
            *self._duplicates(loc_kind),
            *self._response_conflicts(loc_kind),
            *self._gold_conflicts(loc_kind),
        ]

    def problems_sql(self) -> str:
        """One row per problem, each field from the first row that gives it (first: by
        ``_batch``, then ``_loc``; arg_min streams, an ordered aggregate would sort)."""
        fields = ", ".join(
            f"arg_min({c}, (_batch::BIGINT << 40) | _loc) FILTER (WHERE {c} IS NOT NULL) AS {c}"
            for c in PROBLEM_COLUMNS[1:]
        )
        return f"SELECT problem_id, {fields} FROM s_problems GROUP BY problem_id"

    def _rows(self, sql: str) -> list[tuple[Any, ...]]:
        return self._con().execute(sql, [MAX_ISSUES_PER_CHECK]).fetchall()

    def _duplicates(self, loc_kind: str) -> list[Issue]:
        # one pass over the scores with an 8-byte key; the rare candidates are then
        # checked on their real keys (a hash collision is no duplicate)
        con = self._con()
        con.execute(
            """CREATE OR REPLACE TEMP TABLE dup_hashes AS
               SELECT hash(llm, verifier, problem_id, sample_idx) AS h FROM s_scores
               GROUP BY h HAVING count(*) > 1"""
        )
        if con.execute("SELECT count(*) FROM dup_hashes").fetchall() == [(0,)]:
            return []  # no second pass over the scores
        rows = self._rows(
            """WITH h AS (SELECT h FROM dup_hashes),
               k AS (
                   SELECT llm, verifier, problem_id, sample_idx, _batch, _file, _loc,
                          first_value(_loc) OVER w AS first_loc,
                          first_value(_file) OVER w AS first_file,
                          row_number() OVER w AS nth
                   FROM s_scores
                   WHERE hash(llm, verifier, problem_id, sample_idx) IN (SELECT h FROM h)
                   WINDOW w AS (PARTITION BY llm, verifier, problem_id, sample_idx
                                ORDER BY _batch, _loc))
               SELECT llm, verifier, problem_id, sample_idx, _file, _loc, first_loc,
                      first_file FROM k
               WHERE nth > 1 ORDER BY _batch, _loc LIMIT ?"""
        )
        return [
            Issue(
                str(f),
                f"duplicate key (llm={m!r}, verifier={v!r}, problem_id={p!r}, "
                f"sample_idx={int(i)}): first seen at {_where(loc_kind, first, ff, f)}",
                line=int(loc),
                column="sample_idx",
                location_kind=loc_kind,
            )
            for m, v, p, i, f, loc, first, ff in rows
        ]

    def _responses(self) -> None:
        """One row per response (its first occurrence), flagged where the batches
        disagree on its answer, correctness or token count."""
        self._con().execute(
            """CREATE TABLE r_first AS
               SELECT llm, problem_id, sample_idx,
                      arg_min_null(answer_raw, ord) AS answer_raw,
                      arg_min(answer_key, ord) AS answer_key,
                      arg_min(is_correct, ord) AS is_correct,
                      arg_min_null(n_tokens, ord) AS n_tokens,
                      min(answer_key) <> max(answer_key)
                        OR min(is_correct::INTEGER) <> max(is_correct::INTEGER)
                        OR min(n_tokens) <> max(n_tokens)
                        OR count(n_tokens) NOT IN (0, count(*)) AS conflict
               FROM (SELECT *, (_batch::BIGINT << 40) | _loc AS ord FROM s_responses)
               GROUP BY llm, problem_id, sample_idx"""
        )

    def _response_conflicts(self, loc_kind: str) -> list[Issue]:
        if not self._has("r_first"):
            self._responses()
        issues: list[Issue] = []
        if self._con().execute("SELECT count(*) FROM r_first WHERE conflict").fetchall() == [(0,)]:
            return issues  # nothing to look up row by row
        for col, shown in (
            ("answer_key", "answer"),
            ("is_correct", "is_correct"),
            ("n_tokens", "n_tokens"),
        ):
            rows = self._rows(
                f"""WITH k AS (
                        SELECT r.llm, r.problem_id, r.sample_idx, r.{col} AS value, r._batch,
                               r._file, r._loc,
                               first_value(r._loc) OVER w AS first_loc,
                               first_value(r._file) OVER w AS first_file,
                               first_value(r.{col}) OVER w AS first_value
                        FROM s_responses r SEMI JOIN (
                            SELECT llm, problem_id, sample_idx FROM r_first WHERE conflict
                        ) USING (llm, problem_id, sample_idx)
                        WINDOW w AS (PARTITION BY r.llm, r.problem_id, r.sample_idx
                                     ORDER BY r._batch, r._loc))
                    SELECT llm, problem_id, sample_idx, value, _file, _loc, first_loc,
                           first_file FROM k
                    WHERE value IS DISTINCT FROM first_value ORDER BY _batch, _loc LIMIT ?"""
            )
            issues += [
                Issue(
                    str(f),
                    f"{col} of response (llm={m!r}, problem_id={p!r}, sample_idx={int(i)}) "
                    f"differs from {_where(loc_kind, first, ff, f)} ({value!r})",
                    line=int(loc),
                    column=shown,
                    location_kind=loc_kind,
                )
                for m, p, i, value, f, loc, first, ff in rows
            ]
        return issues

    def _gold_conflicts(self, loc_kind: str) -> list[Issue]:
        rows = self._rows(
            """WITH g AS (
                   SELECT problem_id, gold_answer, _batch, _file, _loc,
                          first_value(gold_answer) OVER w AS first_gold,
                          first_value(_loc) OVER w AS first_loc,
                          first_value(_file) OVER w AS first_file
                   FROM s_problems WHERE gold_answer IS NOT NULL
                   WINDOW w AS (PARTITION BY problem_id ORDER BY _batch, _loc))
               SELECT problem_id, gold_answer, first_gold, _file, _loc, first_loc,
                      first_file FROM g
               WHERE gold_answer <> first_gold ORDER BY _batch, _loc LIMIT ?"""
        )
        return [
            Issue(
                str(f),
                f"conflicting gold answers for problem {p!r}: {g!r} here, {first!r} at "
                f"{_where(loc_kind, first_loc, ff, f)}",
                line=int(loc),
                column="gold_answer",
                location_kind=loc_kind,
            )
            for p, g, first, f, loc, first_loc, ff in rows
        ]


class Staging(CrossChecks):
    """A private staging database in a temporary folder (beside the store by default, so
    the final copy reads from the same disk); remove it with `close`."""

    def __init__(self, folder: Path | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="ttslab-import-", dir=folder))
        self.path = self.dir / "stage.duckdb"
        self.con: duckdb.DuckDBPyConnection | None = None
        self.batches = 0
        try:
            self.con = duckdb.connect(str(self.path))
            spill = str(self.dir / "spill").replace("'", "''")
            self.con.execute(f"SET memory_limit = '{STAGING_MEMORY}'")
            self.con.execute(f"SET temp_directory = '{spill}'")
            self.con.execute("SET preserve_insertion_order = false")
            for table, ddl in _DDL.items():
                self.con.execute(
                    f"CREATE TABLE {table} ({ddl}, _batch INTEGER, _file VARCHAR, _loc BIGINT)"
                )
        except BaseException:
            self.close()
            raise

    def add(self, data: CanonicalData) -> None:
        """Write one validated batch (tables with ``_file`` and ``_loc``, see
        `to_canonical(keep_locs=True)`)."""
        con = self._con()
        for table, frame in (
            ("s_problems", data.problems),
            ("s_responses", data.responses),
            ("s_scores", data.scores),
        ):
            assert isinstance(frame, pd.DataFrame)
            arrow = _to_arrow(frame, _COLUMNS[table])
            codes, files = pd.factorize(frame["_file"].astype(str))  # a few files: cheap
            file_col = pa.DictionaryArray.from_arrays(
                pa.array(codes, pa.int32()), pa.array(list(files), pa.string())
            )
            arrow = arrow.append_column("_file", file_col).append_column(
                "_loc", pa.array(frame["_loc"].to_numpy(), pa.int64())
            )
            con.register("_batch_view", arrow)
            try:
                cols = ", ".join(arrow.column_names)
                con.execute(
                    f"INSERT INTO {table} ({cols}, _batch) SELECT {cols}, ? FROM _batch_view",
                    [self.batches],
                )
            finally:
                con.unregister("_batch_view")
        self.batches += 1

    # -- checks across batches ------------------------------------------------------------
    def cross_checks(self, loc_kind: str) -> list[Issue]:
        """The checks `to_canonical` runs within a frame, over all batches."""
        if self.batches < 2:
            return []  # a single batch was checked whole
        return self.run_checks(loc_kind)

    # -- the final tables -------------------------------------------------------------------
    def finish(self) -> dict[str, Any]:
        """Build the canonical tables `problems`, `responses` and `scores` (a response's
        and a problem's first occurrence wins, as in a single frame; a problem's fields
        are its first non-missing values), close the database and return the figures the
        store records: counts, LLMs and verifiers."""
        con = self._con()
        con.execute(f"CREATE TABLE problems AS {self.problems_sql()}")
        con.execute("DROP TABLE s_problems")
        cols = ", ".join(RESPONSE_COLUMNS)
        if self.batches > 1 and not self._has("r_first"):
            self._responses()
        source = "r_first" if self.batches > 1 else "s_responses"
        con.execute(f"CREATE TABLE responses AS SELECT {cols} FROM {source}")
        con.execute("DROP TABLE s_responses")
        con.execute("DROP TABLE IF EXISTS r_first")
        con.execute(f"CREATE VIEW scores AS SELECT {', '.join(SCORE_COLUMNS)} FROM s_scores")
        figures = {
            "n_problems": _count(con, "problems"),
            "n_responses": _count(con, "responses"),
            "n_scores": _count(con, "s_scores"),
            "llms": [
                r[0]
                for r in con.execute("SELECT DISTINCT llm FROM responses ORDER BY 1").fetchall()
            ],
            "verifiers": [
                r[0]
                for r in con.execute("SELECT DISTINCT verifier FROM s_scores ORDER BY 1").fetchall()
            ],
        }
        con.execute("CHECKPOINT")
        con.close()
        self.con = None
        return figures

    def close(self) -> None:
        if self.con is not None:
            self.con.close()
            self.con = None
        shutil.rmtree(self.dir, ignore_errors=True)


def _where(loc_kind: str, loc: Any, file: Any, here: Any) -> str:
    """ "row 12", or "row 12 of a.parquet" when the first occurrence is in another file."""
    return f"{loc_kind} {int(loc)}" + ("" if file == here else f" of {file}")


def _count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    rows = con.execute(f"SELECT count(*) FROM {table}").fetchall()
    return int(rows[0][0]) if rows else 0


__all__ = ["STAGING_MEMORY", "CrossChecks", "Staging"]
