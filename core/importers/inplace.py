"""Register a folder of partitioned Parquet files as a dataset without copying it
(``ttslab import --in-place FOLDER``).

The folder holds one sub-folder per pair, ``llm=NAME/verifier=NAME/`` (hive layout, as
DuckDB, Spark or pyarrow write it), with Parquet files of scored responses in the long
format's column names (`core.parts.FILE_COLUMNS`). Validation runs as DuckDB queries over
the files where they are, memory bounded and spilling to a private folder: each file's
columns and types, every row's values (one scan), then the checks across rows of the
streamed import (`CrossChecks`: duplicate keys, a response's fields differing between
verifiers, conflicting gold answers). Errors name the file, the row and the column, as
an import's do; nothing is registered unless every check passes. The store then keeps the
catalog row, the problems and the file list (sizes and modification times, so a later
change is detected).
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from core.importers.common import shown_path
from core.importers.errors import ImportValidationError, Issue, IssueList
from core.importers.limits import MAX_ANSWER_CHARS
from core.importers.staging import STAGING_MEMORY, CrossChecks
from core.importers.validate import MAX_SAMPLE_IDX, MAX_TOKENS, suggest
from core.parts import FILE_COLUMNS, KEYS, REQUIRED_FILE_COLUMNS, Part, list_parts, select_list
from core.store import DatasetInfo, Store

MAX_ISSUES = 1000

_INT = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT")
_NUM = (*_INT, "FLOAT", "DOUBLE", "HUGEINT", "UHUGEINT")
#: the file types each column accepts (DuckDB's names; DECIMAL(...) is numeric too)
_ACCEPTS: dict[str, tuple[str, ...]] = {
    "problem_id": ("VARCHAR", *_INT),
    "sample_idx": _INT,
    "score": _NUM,
    "is_correct": ("BOOLEAN",),
    "answer": ("VARCHAR",),
    "answer_key": ("VARCHAR",),
    "n_tokens": _INT,
    "step_scores": tuple(f"{t}[]" for t in _NUM),
    "gold_answer": ("VARCHAR", *_INT),
    "level": _INT,
    "subject": ("VARCHAR",),
    "problem_text": ("VARCHAR",),
}
_WANTS = {
    "problem_id": "text or integer",
    "sample_idx": "integer",
    "score": "number",
    "is_correct": "boolean",
    "n_tokens": "integer",
    "step_scores": "list of numbers",
    "gold_answer": "text or integer",
    "level": "integer",
}


def _accepts(column: str, typ: str) -> bool:
    base = typ.split("(")[0]
    if base == "DECIMAL":
        return column == "score"
    if base.startswith("DECIMAL") and typ.endswith("[]"):
        return column == "step_scores"
    return typ in _ACCEPTS[column]


def _schema_issues(
    con: duckdb.DuckDBPyConnection, parts: Sequence[Part], shown: dict[str, str]
) -> tuple[list[Issue], list[str]]:
    """Each file's columns: the required ones, accepted types, no llm/verifier column
    (they are the folder names). Returns the issues and the union of known columns."""
    issues: list[Issue] = []
    have: set[str] = set()
    for part in parts:
        f = shown[part.path]
        try:
            rows = con.execute(
                "DESCRIBE SELECT * FROM read_parquet(?, hive_partitioning = false)", [part.path]
            ).fetchall()
        except duckdb.Error as exc:
            issues.append(Issue(f, f"cannot be read as Parquet: {str(exc).splitlines()[0]}"))
            continue
        types = {str(r[0]): str(r[1]) for r in rows}
        for col in REQUIRED_FILE_COLUMNS:
            if col not in types:
                hint = suggest(col, [c for c in types if c not in FILE_COLUMNS])
                issues.append(Issue(f, f"missing column{hint}; required in place", column=col))
        for col, typ in types.items():
            if col in KEYS:
                issues.append(
                    Issue(
                        f,
                        f"the {col} is the folder's name ({col}=NAME/); remove this column",
                        column=col,
                    )
                )
            elif col in FILE_COLUMNS:
                have.add(col)
                if not _accepts(col, typ):
                    want = _WANTS.get(col, "text")
                    issues.append(Issue(f, f"type {typ}; expected {want}", column=col))
            else:
                hint = suggest(col, list(FILE_COLUMNS))
                if hint:
                    issues.append(Issue(f, f"unknown column{hint}", column=col))
    ordered = [c for c in FILE_COLUMNS if c in have]
    return issues, ordered


def _row_rules(columns: Sequence[str]) -> list[tuple[str, str, str]]:
    """(column, condition on the file's own values, message expression) per rule."""
    have = set(columns)
    rules = [
        ("problem_id", "problem_id IS NULL", "'missing value'"),
        ("sample_idx", "sample_idx IS NULL", "'missing value'"),
        (
            "sample_idx",
            "sample_idx < 0",
            "printf('expected an integer >= 0, got %d', sample_idx)",
        ),
        (
            "sample_idx",
            f"sample_idx > {MAX_SAMPLE_IDX}",
            f"printf('%d is larger than the largest sample index ({MAX_SAMPLE_IDX})', sample_idx)",
        ),
        ("score", "score IS NULL", "'missing value'"),
        (
            "score",
            "NOT isfinite(CAST(score AS DOUBLE))",
            "printf('expected a finite number, got %s', CAST(score AS VARCHAR))",
        ),
        ("is_correct", "is_correct IS NULL", "'missing value'"),
    ]
    if "answer_key" in have:
        rules.append(("answer_key", "answer_key IS NULL", "'missing value'"))
    if "n_tokens" in have:
        rules += [
            ("n_tokens", "n_tokens < 0", "printf('expected an integer >= 0, got %d', n_tokens)"),
            (
                "n_tokens",
                f"n_tokens > {MAX_TOKENS}",
                "printf('%d tokens is more than can be stored exactly', n_tokens)",
            ),
        ]
    if "step_scores" in have:
        rules += [
            ("step_scores", "len(step_scores) = 0", "'empty list of step scores'"),
            (
                "step_scores",
                "list_bool_or(list_transform(step_scores, lambda x: x IS NULL OR "
                "NOT isfinite(CAST(x AS DOUBLE))))",
                "'step scores must be finite numbers'",
            ),
        ]
    for col in ("answer", "answer_key", "gold_answer"):
        if col in have:
            rules.append(
                (
                    col,
                    f"length(CAST({col} AS VARCHAR)) > {MAX_ANSWER_CHARS}",
                    f"printf('%d characters; an answer may have at most {MAX_ANSWER_CHARS:,}', "
                    f"length(CAST({col} AS VARCHAR)))",
                )
            )
    return rules


class _InPlace(CrossChecks):
    """A private in-memory DuckDB over the registered files: views ``s_raw`` (the files'
    own values, with ``_batch`` = the file's position, ``_file``, ``_loc`` = 1-based row)
    and the canonical ``s_rows``, ``s_scores``, ``s_responses``, ``s_problems``."""

    def __init__(
        self, parts: Sequence[Part], shown: dict[str, str], spill_parent: Path | None
    ) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="ttslab-inplace-", dir=spill_parent))
        self.con = duckdb.connect()
        try:
            spill = str(self.dir / "spill").replace("'", "''")
            self.con.execute(f"SET memory_limit = '{STAGING_MEMORY}'")
            self.con.execute(f"SET temp_directory = '{spill}'")
            self.con.execute("SET preserve_insertion_order = false")
            files = pa.table(
                {
                    "path": [p.path for p in parts],
                    "llm": [p.llm for p in parts],
                    "verifier": [p.verifier for p in parts],
                    "_batch": pa.array(range(len(parts)), pa.int32()),
                    "_file": [shown[p.path] for p in parts],
                }
            )
            self.con.register("_files_arrow", files)
            self.con.execute("CREATE TABLE files AS SELECT * FROM _files_arrow")
            self.con.unregister("_files_arrow")
        except BaseException:
            self.close()
            raise

    def open_files(self, parts: Sequence[Part]) -> None:
        """The view ``s_raw`` over every file (once each file is known to be readable)."""
        con = self._con()
        rel = con.read_parquet(
            [p.path for p in parts],
            filename=True,
            file_row_number=True,
            hive_partitioning=False,
            union_by_name=True,
        )
        rel.create_view("_read")
        con.execute(
            """CREATE VIEW s_raw AS
               SELECT r.* EXCLUDE (filename, file_row_number), f.llm, f.verifier,
                      f._batch, f._file, r.file_row_number + 1 AS _loc
               FROM _read r JOIN files f ON f.path = r.filename"""
        )

    def define(self, columns: Sequence[str]) -> None:
        """The canonical views, once the rows are known to cast."""
        have = set(columns)

        def opt(col: str, typ: str) -> str:
            return f"CAST({col} AS {typ})" if col in have else f"CAST(NULL AS {typ})"

        con = self._con()
        con.execute(
            f"""CREATE VIEW s_rows AS SELECT {select_list(columns)},
                       {opt("gold_answer", "VARCHAR")} AS gold_answer,
                       {opt("level", "INTEGER")} AS level,
                       {opt("subject", "VARCHAR")} AS subject,
                       {opt("problem_text", "VARCHAR")} AS text, _batch, _file, _loc
                FROM s_raw"""
        )
        loc = "_batch, _file, _loc"
        con.execute(
            "CREATE VIEW s_scores AS SELECT llm, verifier, problem_id, sample_idx, score, "
            f"step_scores, {loc} FROM s_rows"
        )
        con.execute(
            "CREATE VIEW s_responses AS SELECT llm, problem_id, sample_idx, answer_raw, "
            f"answer_key, is_correct, n_tokens, {loc} FROM s_rows"
        )
        con.execute(
            "CREATE VIEW s_problems AS SELECT problem_id, gold_answer, level, subject, text, "
            f"{loc} FROM s_rows"
        )

    def row_issues(self, columns: Sequence[str]) -> list[Issue]:
        """Every rule over every row, in one scan; the first `MAX_ISSUES` problems."""
        rules = _row_rules(columns)
        cases = ", ".join(
            f"CASE WHEN {cond} THEN {{'column': '{col}', 'message': {msg}}} END"
            for col, cond, msg in rules
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
                str(p["message"]),
                line=int(loc),
                column=str(p["column"]),
                location_kind="row",
            )
            for f, loc, probs in rows
            for p in probs
        ]

    def problems(self) -> pa.Table:
        """One row per problem, its fields from their first rows that give them."""
        fields = ", ".join(
            f"first({c} ORDER BY _batch, _loc) FILTER (WHERE {c} IS NOT NULL) AS {c}"
            for c in ("gold_answer", "level", "subject", "text")
        )
        return (
            self._con()
            .sql(f"SELECT problem_id, {fields} FROM s_problems GROUP BY problem_id")
            .to_arrow_table()
        )

    def fingerprint(self) -> tuple[int, int, str]:
        """(score rows, responses, content hash) of the registered rows."""
        con = self._con()
        row = con.execute(
            """SELECT count(*), bit_xor(hash(llm, verifier, problem_id, sample_idx, score,
                                              step_scores, answer_raw, answer_key,
                                              is_correct, n_tokens, gold_answer, level,
                                              subject, text))
               FROM s_rows"""
        ).fetchone()
        assert row is not None
        n_rows, xor = int(row[0]), int(row[1] or 0)
        if not self._has("r_first"):
            self._responses()
        got = con.execute("SELECT count(*) FROM r_first").fetchone()
        n_responses = int(got[0]) if got else 0
        sha = hashlib.sha256(f"in-place|{n_rows}|{xor}".encode()).hexdigest()
        return n_rows, n_responses, sha

    def close(self) -> None:
        if self.con is not None:
            self.con.close()
            self.con = None
        shutil.rmtree(self.dir, ignore_errors=True)


def register_in_place(
    store: Store,
    folder: str | Path,
    *,
    name: str | None = None,
    replace: bool = False,
    iid: bool = True,
    notes: str | None = None,
    lower_is_better: Sequence[str] = (),
    higher_is_better: Sequence[str] = (),
    progress: Callable[[str, int, int], None] | None = None,
    actor: str = "",
) -> tuple[DatasetInfo, list[str], list[str]]:
    """Validate the folder's partition files as queries and register them as dataset
    `name` (default: the folder's name). Returns the dataset, its files and the notes;
    raises `ImportValidationError` naming every problem (nothing is registered then)."""

    def step(what: str, i: int) -> None:
        if progress is not None:
            progress(what, i, 6)

    root = Path(folder).expanduser().resolve()
    if not root.is_dir():
        raise ImportValidationError(
            [Issue(shown_path(Path(folder)), "not a folder: --in-place registers a folder")]
        )
    ds_name = name if name is not None else root.name
    if not replace and store.has_dataset(ds_name):
        raise ImportValidationError(
            [
                Issue(
                    shown_path(root),
                    f"a dataset named {ds_name!r} exists; choose another name or replace it "
                    "(CLI: --replace)",
                )
            ]
        )
    step("listing files", 0)
    parts, stray = list_parts(root)
    issues = IssueList()
    for path in stray[:MAX_ISSUES]:
        issues.add(
            Issue(
                str(path.relative_to(root)),
                "not inside llm=NAME/verifier=NAME/ folders: in place, every file holds "
                "one pair's rows (hive layout)",
            )
        )
    if not parts and not stray:
        issues.add(Issue(shown_path(root), "the folder holds no Parquet files"))
    issues.raise_if_any()
    shown = {p.path: str(Path(p.path).relative_to(root)) for p in parts}
    spill_parent = store.path.parent if store.path.parent.exists() else None
    checks = _InPlace(parts, shown, spill_parent)
    try:
        step(f"checking the columns of {len(parts)} files", 1)
        found, columns = _schema_issues(checks._con(), parts, shown)
        IssueList(found).raise_if_any()
        checks.open_files(parts)
        step("checking every row", 2)
        IssueList(checks.row_issues(columns)).raise_if_any()
        checks.define(columns)
        step("checking across rows and files", 3)
        IssueList(checks.run_checks("row")).raise_if_any()
        step("counting", 4)
        problems = checks.problems()
        n_rows, n_responses, sha = checks.fingerprint()
    finally:
        checks.close()
    verifiers = sorted({p.verifier for p in parts})
    declared_low = set(lower_is_better) - set(higher_is_better)
    declared_high = set(higher_is_better)
    unknown = (declared_low | declared_high) - set(verifiers)
    if unknown:
        raise ImportValidationError(
            [
                Issue(
                    shown_path(root),
                    f"no verifier {sorted(unknown)[0]!r} to declare a direction for; the "
                    f"data has: {', '.join(verifiers)}",
                )
            ]
        )
    meta: dict[str, Any] = {}
    if declared_low:
        meta["lower_is_better"] = sorted(declared_low)
    if declared_high:
        meta["higher_is_better"] = sorted(declared_high)
    all_notes = [
        f"registered in place: {len(parts)} Parquet files under {root} are read where they "
        "are (not copied); a file changed or removed later is an error until the folder "
        "is registered again"
    ]
    if "answer_key" not in columns and "answer" in columns:
        all_notes.append(
            "answer clusters: the answer text as written (no answer_key column; answers "
            "registered in place are not normalised)"
        )
    elif "answer_key" not in columns:
        all_notes.append(
            "no 'answer' column: each response is its own answer cluster "
            "(voting equals best-of-N; use for score studies)"
        )
    step("registering", 5)
    info = store.register_parts(
        parts,
        problems,
        {
            "n_problems": problems.num_rows,
            "n_responses": n_responses,
            "n_scores": n_rows,
            "llms": sorted({p.llm for p in parts}),
            "verifiers": verifiers,
        },
        columns=columns,
        name=ds_name,
        content_sha256=sha,
        source_path=str(root),
        replace=replace,
        iid=iid,
        notes="; ".join([*all_notes, *([notes] if notes else [])]),
        meta=meta,
        actor=actor,
    )
    step("done", 6)
    return info, [p.path for p in parts], all_notes


__all__ = ["register_in_place"]
