"""The fast path of a long Parquet file whose columns already have their types.

A file with text ids and names, integer indices, float scores and boolean labels (what
pandas, Polars, Spark or DuckDB write from typed data) needs no parsing: its rows are
checked as DuckDB queries over the file (`core.importers.sqlcheck`: every row rule, then
duplicates, a response's fields across verifiers and gold answers across rows), the
answers' keys are computed once per distinct answer by the same `basic_answer_key`, and
the canonical tables are built in a staging database the store copies in one transaction.
The stored dataset, its content hash and its notes are those of the batch path (`import_path`
streaming the file through the in-memory validator), which every other file still takes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

from core.importers.errors import ImportValidationError, Issue, IssueList
from core.importers.generic import display_name, sha256_of_file
from core.importers.sqlcheck import FLOAT_TYPES, INT_TYPES, QueryChecks, accepts, literal
from core.importers.validate import DEFAULT_LLM, DEFAULT_VERIFIER, basic_answer_key
from core.parts import Part, glob_escape, select_list, stat_part
from core.store import RESPONSE_COLUMNS

#: the types a long file's columns must have for this path (else the batch path)
TYPED: dict[str, tuple[str, ...]] = {
    "problem_id": ("VARCHAR",),
    "sample_idx": INT_TYPES,
    "llm": ("VARCHAR",),
    "verifier": ("VARCHAR",),
    "score": FLOAT_TYPES,
    "is_correct": ("BOOLEAN",),
    "answer": ("VARCHAR",),
    "answer_key": ("VARCHAR",),
    "n_tokens": INT_TYPES,
    "gold_answer": ("VARCHAR",),
    "level": INT_TYPES,
    "subject": ("VARCHAR",),
    "problem_text": ("VARCHAR",),
}
NEEDED = ("problem_id", "sample_idx", "score", "is_correct")
#: distinct answers keyed per step (memory: one step of answers)
KEY_BATCH = 100_000


def typed_columns(types: dict[str, str]) -> bool:
    """Whether a file with these column types can take the query path."""
    return all(c in types for c in NEEDED) and all(
        c in TYPED and not t.startswith("DECIMAL") and accepts(TYPED, c, t)
        for c, t in types.items()
    )


class TypedImport:
    """Validate one typed long file as queries and build the staging tables; `None`
    from `open` when the file is not typed so (the caller takes the batch path)."""

    def __init__(self, path: Path, spill_parent: Path | None) -> None:
        self.path = path
        self.file = display_name(path)
        self.checks = QueryChecks(spill_parent, on_disk=True)
        self.types: dict[str, str] = {}
        self.stat = Part("", "", str(path), -1, -1)
        self.rows = 0

    @classmethod
    def open(cls, path: Path, spill_parent: Path | None) -> TypedImport | None:
        job = cls(path, spill_parent)
        try:
            job.stat = stat_part("", "", path)  # the file copied must be the file checked
            job.types = job.checks.describe(str(path))
            rows = (
                job.checks._con()
                .execute(
                    "SELECT sum(num_rows) FROM parquet_file_metadata(?)", [glob_escape(str(path))]
                )
                .fetchall()
            )
        except Exception:  # unreadable or not Parquet: the batch path says why
            job.close()
            return None
        if not typed_columns(job.types) or not rows[0][0]:
            job.close()  # an empty file: the batch path names it
            return None
        job.rows = int(rows[0][0])
        return job

    def check_unchanged(self) -> None:
        """Raise `ImportValidationError` when the file changed since it was checked (its
        score rows are read again by the store's copy)."""
        now = stat_part("", "", self.path)
        if (now.size, now.mtime_ns) != (self.stat.size, self.stat.mtime_ns):
            raise ImportValidationError(
                [Issue(self.file, "the file changed while it was imported; import it again")]
            )

    def run(
        self, progress: Callable[[str], None], storage: str
    ) -> tuple[dict[str, object], list[str], str]:
        """Check everything (raising `ImportValidationError` with every problem) and
        build the staging tables for `storage` (``table`` or ``parquet``); returns the
        store's figures, the notes and the file's content hash."""
        checks, types = self.checks, self.types
        defaults: dict[str, str] = {}
        notes: list[str] = []
        if "llm" not in types:
            defaults["llm"] = DEFAULT_LLM
            notes.append(f"no 'llm' column: all responses attributed to LLM {DEFAULT_LLM!r}")
        if "verifier" not in types:
            defaults["verifier"] = DEFAULT_VERIFIER
            notes.append(
                f"no 'verifier' column: scores attributed to verifier {DEFAULT_VERIFIER!r}"
            )
        checks.open_file(str(self.path), self.file, defaults)
        progress("checking every row")
        IssueList(checks.row_issues(types)).raise_if_any()
        con = checks._con()
        key: str | None = None
        source = "s_raw"
        if "answer_key" not in types and "answer" in types:
            progress("answer keys")
            # one key per distinct answer, streamed: free-text answers may be many
            con.execute("CREATE TABLE keymap (raw VARCHAR, key VARCHAR)")
            writer = con.cursor()
            try:
                reader = con.sql(
                    "SELECT DISTINCT answer FROM s_raw WHERE answer IS NOT NULL"
                ).to_arrow_reader(KEY_BATCH)
                for batch in reader:
                    answers = batch.column(0).to_pylist()
                    keys = pa.table(
                        {
                            "raw": pa.array(answers, pa.string()),
                            "key": pa.array([basic_answer_key(a) for a in answers], pa.string()),
                        }
                    )
                    writer.register("_keys", keys)
                    writer.execute("INSERT INTO keymap SELECT * FROM _keys")
                    writer.unregister("_keys")
            finally:
                writer.close()
            con.execute(
                """CREATE TEMP VIEW s_keyed AS SELECT r.*, k.key AS _key
                   FROM s_raw r LEFT JOIN keymap k ON k.raw = r.answer"""
            )
            source, key = "s_keyed", "coalesce(_key, '')"
            if con.execute("SELECT count(*) FROM s_raw WHERE answer IS NULL").fetchall() != [(0,)]:
                notes.append("responses with no answer share the empty-answer cluster")
        elif "answer_key" not in types:
            notes.append(
                "no 'answer' column: each response is its own answer cluster "
                "(voting equals best-of-N; use for score studies)"
            )
        checks.define([c for c in types if c not in ("llm", "verifier")], key, source=source)
        progress("checking across rows")
        IssueList(checks.run_checks("row")).raise_if_any()
        progress("building the tables")
        con.execute(f"CREATE TABLE problems AS {checks.problems_sql()}")
        # the score rows are read from the file by the store's copy itself (a view
        # cannot take parameters: the constants and the path are literals)
        named = {c: c if c in types else literal(defaults[c]) for c in ("llm", "verifier")}
        source = f"""read_parquet({literal(glob_escape(str(self.path.resolve())))},
                                  hive_partitioning = false)"""
        con.execute(
            f"""CREATE VIEW scores AS
                SELECT {named["llm"]} AS llm, {named["verifier"]} AS verifier,
                       CAST(problem_id AS VARCHAR) AS problem_id,
                       CAST(sample_idx AS INTEGER) AS sample_idx,
                       CAST(score AS DOUBLE) AS score, CAST(NULL AS DOUBLE[]) AS step_scores
                FROM {source}"""
        )
        if storage == "parquet":
            # partition files are written from the rows themselves (their response's
            # fields agree across verifiers: checked); no responses table is needed
            columns = [c for c in types if c not in ("llm", "verifier")]
            keyed = key is not None
            con.execute(
                f"""CREATE VIEW pair_rows AS
                    SELECT {named["llm"]} AS llm, {named["verifier"]} AS verifier,
                           {select_list(columns, "coalesce(key, '')" if keyed else None)}
                    FROM {source}
                    {"LEFT JOIN keymap ON keymap.raw = answer" if keyed else ""}"""
            )
            responses = "r_first"
        else:
            con.execute(
                f"CREATE VIEW responses AS SELECT {', '.join(RESPONSE_COLUMNS)} "
                f"FROM {checks.responses()}"
            )
            responses = "responses"

        def count(table: str) -> int:
            return int(con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0])

        def names(sql: str) -> list[str]:
            return [str(r[0]) for r in con.execute(sql).fetchall()]

        figures: dict[str, object] = {
            "n_problems": count("problems"),
            "n_responses": count(responses),
            "n_scores": count("scores"),
            "llms": names(f"SELECT DISTINCT llm FROM {responses} ORDER BY 1"),
            "verifiers": names("SELECT DISTINCT verifier FROM scores ORDER BY 1"),
        }
        con.execute("CHECKPOINT")
        checks.release()
        notes.append("correctness: labels from file")
        return figures, notes, sha256_of_file(self.path)

    @property
    def staged(self) -> Path:
        return self.checks.path

    def close(self) -> None:
        self.checks.close()


__all__ = ["TYPED", "TypedImport", "typed_columns"]
