"""Validation of typed Parquet as DuckDB queries, over the files where they are.

Two imports use it: registering a partitioned folder in place (`core.importers.inplace`)
and the fast path of a long Parquet file whose columns already have the right types
(`core.importers.typed`). A private DuckDB (memory capped, spilling to a private folder)
defines the view ``s_raw`` over the files (each row with ``_batch`` = its file's position,
``_file`` and ``_loc`` = its 1-based row), checks every row's values in one scan, then
defines the canonical views (``s_rows``, ``s_scores``, ``s_responses``, ``s_problems``) on
which the checks across rows of the streamed import run (`CrossChecks`). Problems name the
file, the row and the column, in the words of the in-memory validator.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import duckdb
import pyarrow as pa

from core.importers.errors import ImportValidationError, Issue
from core.importers.limits import MAX_ANSWER_CHARS
from core.importers.staging import STAGING_MEMORY, CrossChecks
from core.importers.validate import MAX_SAMPLE_IDX, MAX_TOKENS
from core.parts import FILE_COLUMNS, Part, glob_escape, select_list
from core.store import RESPONSE_COLUMNS
from core.types import TTSLabError

#: problems reported per scan (as the in-memory checks do)
MAX_ISSUES = 1000
#: verifiers a response's bitmask can hold (more: duplicates take their own pass)
MAX_VERIFIER_BITS = 64

INT_TYPES = (
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
)
FLOAT_TYPES = ("FLOAT", "DOUBLE")
NUMBER_TYPES = (*INT_TYPES, *FLOAT_TYPES, "HUGEINT", "UHUGEINT")

#: the messages of the row rules, by code (the in-memory validator's words)
_MESSAGES: dict[str, Callable[[str], str]] = {
    "missing": lambda v: "missing value",
    "negative": lambda v: f"must be >= 0, got {v}",
    "sample_too_big": lambda v: f"must be at most {MAX_SAMPLE_IDX}, got {v}",
    "tokens_too_big": lambda v: f"must be at most {MAX_TOKENS}, got {v}",
    "non_finite": lambda v: "value is NaN" if v.lower() == "nan" else f"value is infinite ({v})",
    "too_long": lambda v: f"{int(v):,} characters; an answer may have at most {MAX_ANSWER_CHARS:,}",
    "level_bad": lambda v: f"expected a level number, got {v!r}",
    "steps_empty": lambda v: "empty list of step scores",
    "steps_bad": lambda v: "step scores must be finite numbers",
}


def row_rules(types: dict[str, str]) -> list[tuple[str, str, str, str]]:
    """(column, condition, message code, value shown) of every rule that applies to
    columns of these types (a column absent is not checked)."""
    rules: list[tuple[str, str, str, str]] = []

    def add(col: str, cond: str, code: str, value: str = "NULL") -> None:
        if col in types:
            rules.append((col, cond, code, value))

    for col in ("problem_id", "sample_idx", "score", "is_correct", "llm", "verifier"):
        add(col, f"{col} IS NULL", "missing")
    add("answer_key", "answer_key IS NULL", "missing")
    for col, limit, code in (
        ("sample_idx", MAX_SAMPLE_IDX, "sample_too_big"),
        ("n_tokens", MAX_TOKENS, "tokens_too_big"),
    ):
        add(col, f"{col} < 0", "negative", col)
        add(col, f"{col} > {limit}", code, col)
    # the in-memory validator reads a level's number of at most 6 characters
    add("level", "level > 999999 OR level < -99999", "level_bad", "level")
    if types.get("score") in FLOAT_TYPES:
        # one rule, told apart by the value: DuckDB folds isnan() to false from a file's
        # min/max statistics, which leave NaN out (isfinite() it evaluates)
        add("score", "NOT isfinite(score)", "non_finite", "score")
    if "step_scores" in types:
        add("step_scores", "len(step_scores) = 0", "steps_empty")
        add(
            "step_scores",
            "list_bool_or(list_transform(step_scores, lambda x: x IS NULL OR "
            "NOT isfinite(CAST(x AS DOUBLE))))",
            "steps_bad",
        )
    for col in ("answer", "answer_key", "gold_answer"):
        length = f"length(CAST({col} AS VARCHAR))"
        add(col, f"{length} > {MAX_ANSWER_CHARS}", "too_long", length)
    return rules


class CheckError(TTSLabError):
    """The checks could not run (not a problem of the input)."""


def unreadable(file: str, exc: duckdb.Error) -> ImportValidationError:
    """A DuckDB error while checking (data it cannot read or cast) as a named problem."""
    return ImportValidationError(
        [Issue(file, f"could not be checked: {str(exc).splitlines()[0][:300]}")]
    )


class QueryChecks(CrossChecks):
    """A private DuckDB (in memory, or the file `database`) over Parquet files."""

    def __init__(self, spill_parent: Path | None, *, on_disk: bool = False) -> None:
        """`on_disk`: the database is the file `path` (a staging database the store
        copies from, `Store.ingest_staged`), else in memory."""
        self.con = None
        self.verifier_bits = False
        self.one_file = False  # s_raw is one file (`open_file`), not partition files
        self.dir = Path(tempfile.mkdtemp(prefix="ttslab-check-", dir=spill_parent))
        self.path = self.dir / "stage.duckdb"
        try:
            self.con = duckdb.connect(str(self.path) if on_disk else ":memory:")
            spill = str(self.dir / "spill").replace("'", "''")
            self.con.execute(f"SET memory_limit = '{STAGING_MEMORY}'")
            self.con.execute(f"SET temp_directory = '{spill}'")
            self.con.execute("SET preserve_insertion_order = false")
        except BaseException:
            self.close()
            raise

    def describe(self, path: str) -> dict[str, str]:
        """A Parquet file's columns and their DuckDB types."""
        rows = (
            self._con()
            .execute(
                "DESCRIBE SELECT * FROM read_parquet(?, hive_partitioning = false)",
                [glob_escape(path)],
            )
            .fetchall()
        )
        return {str(r[0]): str(r[1]) for r in rows}

    def open_parts(self, parts: Sequence[Part], shown: dict[str, str]) -> None:
        """``s_raw`` over partition files: llm and verifier from each file's folders."""
        con = self._con()
        files = pa.table(
            {
                "path": [p.path for p in parts],
                "llm": [p.llm for p in parts],
                "verifier": [p.verifier for p in parts],
                "_batch": pa.array(range(len(parts)), pa.int32()),
                "_file": [shown[p.path] for p in parts],
            }
        )
        con.register("_files_arrow", files)
        con.execute("CREATE TEMP TABLE files AS SELECT * FROM _files_arrow")
        con.unregister("_files_arrow")
        rel = con.read_parquet(
            [glob_escape(p.path) for p in parts],
            filename=True,
            file_row_number=True,
            hive_partitioning=False,
            union_by_name=True,
        )
        rel.create_view("_read")
        con.execute(
            """CREATE TEMP VIEW s_raw AS
               SELECT r.* EXCLUDE (filename, file_row_number), f.llm, f.verifier,
                      f._batch, f._file, r.file_row_number + 1 AS _loc
               FROM _read r JOIN files f ON f.path = r.filename"""
        )

    def open_file(self, path: str, shown: str, defaults: dict[str, str]) -> None:
        """``s_raw`` over one long file; `defaults` give the columns it lacks (llm,
        verifier) as constants."""
        con = self._con()
        self.one_file = True
        con.read_parquet(
            glob_escape(path), file_row_number=True, hive_partitioning=False
        ).create_view("_read")
        # a view takes no parameters: the constants are literals (quotes doubled)
        consts = "".join(f", {literal(v)} AS {col}" for col, v in defaults.items())
        con.execute(
            f"""CREATE TEMP VIEW s_raw AS
                SELECT * EXCLUDE (file_row_number){consts}, 0 AS _batch,
                       {literal(shown)} AS _file, file_row_number + 1 AS _loc
                FROM _read"""
        )

    def row_issues(self, types: dict[str, str]) -> list[Issue]:
        """Every rule over every row of ``s_raw``, in one scan; the first problems."""
        rules = row_rules(types)
        if not rules:
            return []
        cases = ", ".join(
            f"CASE WHEN {cond} THEN {{'column': '{col}', 'code': '{code}', "
            f"'value': CAST({value} AS VARCHAR)}} END"
            for col, cond, code, value in rules
        )
        rows = (
            self._con()
            .execute(
                f"""SELECT _file, _loc, problems FROM (
                        SELECT _file, _loc, _batch,
                               list_filter([{cases}], lambda x: x IS NOT NULL) AS problems
                        FROM s_raw)
                    WHERE len(problems) > 0 ORDER BY _batch, _loc LIMIT ?""",
                [MAX_ISSUES],
            )
            .fetchall()
        )
        return [
            Issue(
                str(f),
                _MESSAGES[str(p["code"])](str(p["value"])),
                line=int(loc),
                column=str(p["column"]),
                location_kind="row",
            )
            for f, loc, probs in rows
            for p in probs
        ]

    def define(self, columns: Sequence[str], key: str | None = None, source: str = "s_raw") -> None:
        """The canonical views over `source` (``s_raw``, or a view over it; its values
        are known to cast); `key`: the answer key's expression when not the files' own
        (`select_list`)."""
        have = set(columns)

        def opt(col: str, typ: str) -> str:
            return f"CAST({col} AS {typ})" if col in have else f"CAST(NULL AS {typ})"

        con = self._con()
        con.execute(
            f"""CREATE TEMP VIEW s_rows AS SELECT llm, verifier, {select_list(columns, key)},
                       {opt("gold_answer", "VARCHAR")} AS gold_answer,
                       {opt("level", "INTEGER")} AS level,
                       {opt("subject", "VARCHAR")} AS subject,
                       {opt("problem_text", "VARCHAR")} AS text, _batch, _file, _loc
                FROM {source}"""
        )
        loc = "_batch, _file, _loc"
        con.execute(
            "CREATE TEMP VIEW s_scores AS SELECT llm, verifier, problem_id, sample_idx, "
            f"score, step_scores, {loc} FROM s_rows"
        )
        con.execute(
            "CREATE TEMP VIEW s_responses AS SELECT llm, problem_id, sample_idx, answer_raw, "
            f"answer_key, is_correct, n_tokens, {loc} FROM s_rows"
        )
        con.execute(
            "CREATE TEMP VIEW s_problems AS SELECT problem_id, gold_answer, level, subject, "
            f"text, {loc} FROM s_rows"
        )
        # what the responses' aggregate compares, straight from the files: the answer as
        # written stands in for its key (equal answers have equal keys; where answers
        # differ, the per-column lookup compares the keys themselves)
        same = "answer_key" if "answer_key" in have else "answer" if "answer" in have else "NULL"
        con.execute(
            f"""CREATE TEMP VIEW s_flags AS
                SELECT llm, verifier, CAST(problem_id AS VARCHAR) AS problem_id,
                       CAST(sample_idx AS INTEGER) AS sample_idx, {same} AS same,
                       CAST(is_correct AS BOOLEAN) AS is_correct,
                       {opt("n_tokens", "BIGINT")} AS n_tokens, _batch, _loc
                FROM s_raw"""
        )

    def _responses(self) -> None:
        """`CrossChecks._responses` with fixed-size aggregate states only (the first
        occurrence's position, and hashes where values are compared), so that DuckDB can
        spill it: string states cannot leave memory, and the files may hold 10^8 rows.
        A response's fields are then read from its first row (`responses`).

        With at most 64 verifiers it also flags duplicate keys: a response's rows name
        each verifier once unless a key repeats (a bit per verifier), which spares the
        duplicate check its own pass over every row (`_duplicates`)."""
        con = self._con()
        dup, source, same = "false", "s_rows", "answer_key"
        if self.one_file:
            # over one file (no join per row to name its pair): the files' own answers
            # and a bit per verifier. Over partition files the per-row join beside them
            # ran out of DuckDB's memory at 10^8 rows: the canonical rows there.
            source, same = "s_flags", "same"
            verifiers = [
                str(r[0]) for r in con.execute("SELECT DISTINCT verifier FROM s_raw").fetchall()
            ]
            self.verifier_bits = len(verifiers) <= MAX_VERIFIER_BITS
            if self.verifier_bits:
                bit = " ".join(f"WHEN {literal(v)} THEN {k}" for k, v in enumerate(verifiers))
                dup = f"count(*) <> bit_count(bit_or(1::UBIGINT << (CASE verifier {bit} END)))"
        self.spilling(
            "r_first",
            f"""CREATE TABLE r_first AS
               SELECT llm, problem_id, sample_idx,
                      min((_batch::BIGINT << 40) | _loc) AS first_ord,
                      min(hash({same})) <> max(hash({same}))
                        OR min(is_correct::INTEGER) <> max(is_correct::INTEGER)
                        OR min(n_tokens) <> max(n_tokens)
                        OR count(n_tokens) NOT IN (0, count(*)) AS conflict,
                      {dup} AS dup
               FROM {source}
               GROUP BY llm, problem_id, sample_idx""",
        )

    def spilling(self, table: str, sql: str) -> None:
        """Run `sql` (which creates `table`); if it runs out of DuckDB's memory cap (its
        aggregates spill, but how much a run holds varies with the plan and threads:
        measured at 10^8 rows), once more on one thread; then a clear error."""
        con = self._con()
        try:
            con.execute(sql)
            return
        except duckdb.OutOfMemoryException:
            con.execute(f"DROP TABLE IF EXISTS {table}")
        con.execute("SET threads = 1")
        try:
            con.execute(sql)
        except duckdb.OutOfMemoryException as exc:
            raise CheckError(
                f"the checks across rows ran out of their memory ({STAGING_MEMORY}) even on "
                "one thread; nothing was imported"
            ) from exc
        finally:
            con.execute("RESET threads")

    def _duplicates(self, loc_kind: str) -> list[Issue]:
        if not self._has("r_first"):
            self._responses()
        if self.verifier_bits and self._con().execute(
            "SELECT count(*) FROM r_first WHERE dup"
        ).fetchall() == [(0,)]:
            return []  # no response names a verifier twice: no duplicate key
        return super()._duplicates(loc_kind)  # find and name them

    def problems_table(self) -> pa.Table:
        """The problems (`problems_sql`) as an Arrow table."""
        return self._con().sql(self.problems_sql()).to_arrow_table()

    def responses(self) -> str:
        """The name of the table of responses, one row each: its first occurrence."""
        if not self._has("r_first"):
            self._responses()
        if not self._has("r_rows"):
            self.spilling(
                "r_rows",
                f"""CREATE TABLE r_rows AS
                    SELECT {", ".join(RESPONSE_COLUMNS)} FROM s_responses
                    WHERE (_batch::BIGINT << 40) | _loc IN (SELECT first_ord FROM r_first)""",
            )
        return "r_rows"

    def fingerprint(self) -> tuple[int, int, str]:
        """(score rows, responses, content hash) of the rows."""
        con = self._con()
        row = con.execute(
            """SELECT count(*), bit_xor(hash(llm, verifier, problem_id, sample_idx, score,
                                              step_scores, answer_raw, answer_key,
                                              is_correct, n_tokens, gold_answer, level,
                                              subject, text))
               FROM s_rows"""
        ).fetchall()[0]
        n_rows, xor = int(row[0]), int(row[1] or 0)
        if not self._has("r_first"):
            self._responses()
        n_responses = int(con.execute("SELECT count(*) FROM r_first").fetchall()[0][0])
        sha = hashlib.sha256(f"rows|{n_rows}|{xor}".encode()).hexdigest()
        return n_rows, n_responses, sha

    def release(self) -> None:
        """Close the database (its file stays until `close`)."""
        if self.con is not None:
            self.con.close()
            self.con = None

    def close(self) -> None:
        self.release()
        shutil.rmtree(self.dir, ignore_errors=True)


def literal(text: str) -> str:
    """A SQL string literal of `text`."""
    return "'" + text.replace("'", "''") + "'"


def accepts(allowed: dict[str, tuple[str, ...]], column: str, typ: str) -> bool:
    """Whether a file's column of DuckDB type `typ` is one of `allowed[column]` (a
    DECIMAL is a number where numbers are allowed)."""
    if typ.startswith("DECIMAL("):
        typ = "DOUBLE[]" if typ.endswith("[]") else "DOUBLE"
    return typ in allowed[column]


__all__ = [
    "FILE_COLUMNS",
    "FLOAT_TYPES",
    "INT_TYPES",
    "MAX_ISSUES",
    "NUMBER_TYPES",
    "CheckError",
    "QueryChecks",
    "accepts",
    "literal",
    "row_rules",
    "unreadable",
]
