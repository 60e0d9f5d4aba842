"""Score rows kept as Parquet files partitioned by LLM and verifier (hive layout).

A big dataset keeps its score rows out of the DuckDB file: one folder per
(LLM, verifier) pair, ``llm=NAME/verifier=NAME/*.parquet`` (values URL-encoded, as DuckDB
writes and reads them), each row a scored response in the long format's names
(`FILE_COLUMNS`). The store's own big imports are written so under ``<db>.parts/``; an
existing folder of that shape is registered in place (``ttslab import --in-place``)
without a copy. The catalog (`parts` table) lists every file with its pair, size and
modification time, so loading one pair reads only that pair's files, and a file changed
or removed since its registration is an error, never silently different data.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from core.types import TTSLabError

#: columns of a partition file, by the long import format's names (llm and verifier are
#: the folders' keys, not columns); all but the first four and ``is_correct`` optional
FILE_COLUMNS: dict[str, str] = {
    "problem_id": "VARCHAR",
    "sample_idx": "INTEGER",
    "score": "DOUBLE",
    "is_correct": "BOOLEAN",
    "answer": "VARCHAR",
    "answer_key": "VARCHAR",
    "n_tokens": "BIGINT",
    "step_scores": "DOUBLE[]",
    # problem fields, read once at registration into the problems table
    "gold_answer": "VARCHAR",
    "level": "INTEGER",
    "subject": "VARCHAR",
    "problem_text": "VARCHAR",
}
REQUIRED_FILE_COLUMNS = ("problem_id", "sample_idx", "score", "is_correct")
#: the partition keys, in the folder order the store writes
KEYS = ("llm", "verifier")

#: DuckDB's reader of one pair's files (their list: a bound parameter, `glob_escape`d);
#: the pair's names are bound constants beside it, never parsed from the paths (DuckDB
#: would take the outermost ``llm=`` of the whole path, and a name "7" as a number)
READ_FILES = "read_parquet(?, hive_partitioning = false, union_by_name = true)"
#: files DuckDB reads as Parquet (others under an in-place folder are not data)
SUFFIXES = (".parquet", ".pq")
#: columns the validation's views add to a file's own (a file may not have them)
RESERVED = ("_batch", "_file", "_loc")


class PartsError(TTSLabError):
    """A partition file is missing or changed since it was registered."""


@dataclass(frozen=True)
class Part:
    """One partition file: its pair, path, size and modification time (ns)."""

    llm: str
    verifier: str
    path: str
    size: int
    mtime_ns: int


def keys_of(path: Path, root: Path) -> dict[str, str]:
    """The hive keys (``key=value`` folders, values URL-decoded) between root and file."""
    out: dict[str, str] = {}
    for part in path.relative_to(root).parts[:-1]:
        key, eq, value = part.partition("=")
        if eq:
            out[key] = unquote(value)
    return out


def stat_part(llm: str, verifier: str, path: Path) -> Part:
    st = path.stat()
    return Part(llm, verifier, str(path), int(st.st_size), int(st.st_mtime_ns))


def list_parts(root: Path) -> tuple[list[Part], list[Path]]:
    """The Parquet files under `root` with their pair, and the files outside the layout
    (no ``llm=`` or ``verifier=`` folder above them). Hidden files and folders (``.``,
    ``_``: e.g. ``_SUCCESS``, a writer's temporary folder) are skipped."""
    parts: list[Part] = []
    stray: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "_")))
        for name in sorted(filenames):
            if name.startswith((".", "_")) or not name.lower().endswith(SUFFIXES):
                continue
            path = Path(dirpath) / name
            keys = keys_of(path, root)
            if all(k in keys for k in KEYS):
                parts.append(stat_part(keys["llm"], keys["verifier"], path))
            else:
                stray.append(path)
    return parts, stray


def check_unchanged(parts: Iterable[Part], dataset: str, *, in_place: bool = True) -> None:
    """Raise `PartsError` when a file is gone or its size or time differ from the
    catalog's: its data is no longer what was validated and cached."""
    again = (
        "register the folder again (ttslab import --in-place FOLDER --replace) so that it "
        "is validated and its results recomputed"
        if in_place
        else "the store's own files were changed outside ttslab: import the dataset again "
        "(--replace)"
    )
    for part in parts:
        try:
            st = os.stat(part.path)
        except OSError:
            raise PartsError(
                f"dataset {dataset!r}: its file {part.path} is missing; restore it, or {again}"
            ) from None
        if int(st.st_size) != part.size or int(st.st_mtime_ns) != part.mtime_ns:
            raise PartsError(
                f"dataset {dataset!r}: its file {part.path} changed since it was stored; " + again
            )


def glob_escape(path: str) -> str:
    """`path` for DuckDB's file readers, which read ``*``, ``?`` and ``[`` as a pattern."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in path)


def select_list(columns: Sequence[str], key: str | None = None) -> str:
    """The canonical pair rows' columns after llm and verifier (problem_id, sample_idx,
    score, step_scores, answer_raw, answer_key, is_correct, n_tokens) from files that
    have `columns`. Without an ``answer_key`` column the key is the answer as written (no
    normalisation); without ``answer`` each response is its own cluster, as on import.
    `key`: another expression of the answer key."""
    have = set(columns)

    def col(name: str) -> str:
        typ = FILE_COLUMNS[name]
        return f"CAST({name} AS {typ})" if name in have else f"CAST(NULL AS {typ})"

    if key is None:
        if "answer_key" in have:
            key = "CAST(answer_key AS VARCHAR)"
        elif "answer" in have:
            key = "coalesce(CAST(answer AS VARCHAR), '')"
        else:
            key = "'#' || CAST(sample_idx AS VARCHAR)"
    return (
        "CAST(problem_id AS VARCHAR) AS problem_id, "
        "CAST(sample_idx AS INTEGER) AS sample_idx, CAST(score AS DOUBLE) AS score, "
        f"{col('step_scores')} AS step_scores, {col('answer')} AS answer_raw, "
        f"{key} AS answer_key, CAST(is_correct AS BOOLEAN) AS is_correct, "
        f"{col('n_tokens')} AS n_tokens"
    )


def pair_rows_sql(columns: Sequence[str]) -> str:
    """One pair's canonical rows from its files; parameters: llm, verifier, the list of
    `glob_escape`d paths."""
    return (
        "SELECT CAST(? AS VARCHAR) AS llm, CAST(? AS VARCHAR) AS verifier, "
        f"{select_list(columns)} FROM {READ_FILES}"
    )


#: the canonical pair rows of a pair without files (a combination an in-place folder lacks)
EMPTY_ROWS = (
    "SELECT CAST(NULL AS VARCHAR) AS llm, CAST(NULL AS VARCHAR) AS verifier, "
    "CAST(NULL AS VARCHAR) AS problem_id, CAST(NULL AS INTEGER) AS sample_idx, "
    "CAST(NULL AS DOUBLE) AS score, CAST(NULL AS DOUBLE[]) AS step_scores, "
    "CAST(NULL AS VARCHAR) AS answer_raw, CAST(NULL AS VARCHAR) AS answer_key, "
    "CAST(NULL AS BOOLEAN) AS is_correct, CAST(NULL AS BIGINT) AS n_tokens WHERE false"
)


__all__ = [
    "EMPTY_ROWS",
    "FILE_COLUMNS",
    "KEYS",
    "READ_FILES",
    "REQUIRED_FILE_COLUMNS",
    "RESERVED",
    "SUFFIXES",
    "Part",
    "PartsError",
    "check_unchanged",
    "glob_escape",
    "keys_of",
    "list_parts",
    "pair_rows_sql",
    "select_list",
    "stat_part",
]
