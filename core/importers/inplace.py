"""Register a folder of partitioned Parquet files as a dataset without copying it
(``ttslab import --in-place FOLDER``).

The folder holds one sub-folder per pair, ``llm=NAME/verifier=NAME/`` (hive layout, as
DuckDB, Spark or pyarrow write it), with Parquet files of scored responses in the long
format's column names (`core.parts.FILE_COLUMNS`). Validation runs as DuckDB queries over
the files where they are (`core.importers.sqlcheck`): each file's columns and types, every
row's values in one scan, then the checks across rows of the streamed import (duplicate
keys, a response's fields differing between verifiers, conflicting gold answers). Errors
name the file, the row and the column, as an import's do; nothing is registered unless
every check passes. The store then keeps the catalog row, the problems and the file list
(sizes and modification times, so a later change is detected).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import duckdb

from core.importers.common import check_free_name, direction_meta, shown_path
from core.importers.errors import ImportValidationError, Issue, IssueList
from core.importers.sqlcheck import (
    INT_TYPES,
    MAX_ISSUES,
    NUMBER_TYPES,
    QueryChecks,
    accepts,
    unreadable,
)
from core.importers.validate import suggest
from core.parts import FILE_COLUMNS, KEYS, REQUIRED_FILE_COLUMNS, RESERVED, Part, list_parts
from core.store import DatasetInfo, Store

#: the file types each column accepts in place (DuckDB's names)
ACCEPTS: dict[str, tuple[str, ...]] = {
    "problem_id": ("VARCHAR", *INT_TYPES),
    "sample_idx": INT_TYPES,
    "score": NUMBER_TYPES,
    "is_correct": ("BOOLEAN",),
    "answer": ("VARCHAR",),
    "answer_key": ("VARCHAR",),
    "n_tokens": INT_TYPES,
    "step_scores": tuple(f"{t}[]" for t in NUMBER_TYPES),
    "gold_answer": ("VARCHAR", *INT_TYPES),
    "level": INT_TYPES,
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


def _schema_issues(
    checks: QueryChecks, parts: Sequence[Part], shown: dict[str, str]
) -> tuple[list[Issue], list[str]]:
    """Each file's columns: the required ones, accepted types, no llm/verifier column
    (they are the folder names). Returns the issues and the union of known columns."""
    issues: list[Issue] = []
    have: set[str] = set()
    first: tuple[str, set[str]] | None = None
    for part in parts:
        f = shown[part.path]
        try:
            types = checks.describe(part.path)
        except duckdb.Error as exc:
            issues.append(Issue(f, f"cannot be read as Parquet: {str(exc).splitlines()[0]}"))
            continue
        known = {c for c in types if c in FILE_COLUMNS}
        if first is None:
            first = (f, known)
        elif known != first[1]:
            # a pair's reads see only its own files: every file has the same columns
            lacks, extra = sorted(first[1] - known), sorted(known - first[1])
            what = "; ".join(
                [*([f"lacks {', '.join(lacks)}"] if lacks else []),
                 *([f"has {', '.join(extra)} too"] if extra else [])]
            )  # fmt: skip
            issues.append(
                Issue(f, f"its columns differ from those of {first[0]}: {what}; every file "
                      "of an in-place dataset has the same columns")
            )  # fmt: skip
        for col in REQUIRED_FILE_COLUMNS:
            if col not in types:
                hint = suggest(col, [c for c in types if c not in FILE_COLUMNS])
                issues.append(Issue(f, f"missing column{hint}; required in place", column=col))
        for col, typ in types.items():
            if col in RESERVED:
                issues.append(Issue(f, "a reserved column name; rename it", column=col))
            elif col in KEYS:
                issues.append(
                    Issue(
                        f,
                        f"the {col} is the folder's name ({col}=NAME/); remove this column",
                        column=col,
                    )
                )
            elif col in FILE_COLUMNS:
                have.add(col)
                if not accepts(ACCEPTS, col, typ):
                    want = _WANTS.get(col, "text")
                    issues.append(Issue(f, f"type {typ}; expected {want}", column=col))
            else:
                hint = suggest(col, list(FILE_COLUMNS))
                if hint:
                    issues.append(Issue(f, f"unknown column{hint}", column=col))
    return issues, [c for c in FILE_COLUMNS if c in have]


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
    check_free_name(store, ds_name, root, replace)
    inside = store.parts_root
    if root == inside or inside in root.parents:
        raise ImportValidationError(
            [
                Issue(
                    shown_path(root),
                    "the store keeps its own Parquet files here: import the dataset again "
                    "instead of registering them",
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
    checks = QueryChecks(spill_parent)
    try:
        step(f"checking the columns of {len(parts)} files", 1)
        found, columns = _schema_issues(checks, parts, shown)
        IssueList(found).raise_if_any()
        checks.open_parts(parts, shown)
        step("checking every row", 2)
        types = {c: ACCEPTS[c][0] for c in columns}  # the rules depend on the kind only
        IssueList(checks.row_issues({**types, "score": "DOUBLE"})).raise_if_any()
        checks.define(columns)
        step("checking across rows and files", 3)
        IssueList(checks.run_checks("row")).raise_if_any()
        step("counting", 4)
        problems = checks.problems_table()
        n_rows, n_responses, sha = checks.fingerprint()
    except duckdb.Error as exc:
        raise unreadable(shown_path(root), exc) from exc
    finally:
        checks.close()
    verifiers = sorted({p.verifier for p in parts})
    meta = direction_meta(root, verifiers, set(), lower_is_better, higher_is_better)
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
