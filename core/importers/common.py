"""Shared pieces of the readers of tool output formats.

The tool readers (search-and-learn, PRM800K, Qwen2.5-Math rm_maj_eval, OpenR, BoInf,
RewardMATH) turn a file into the same raw long frame as the generic readers (see
`core.importers.validate`), so validation, grading, atomic ingest and error reporting are
shared. This module holds what they have in common: reading options, decoding JSON Lines or
one JSON document into numbered records, a column builder and name helpers.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.importers.errors import ImportValidationError, Issue, IssueList, loads
from core.importers.generic import (
    ReadOptions,
    decode_utf8,
    display_name,
    iter_json_lines,
    read_bytes,
    sha256_of,
    skipped_note,
)
from core.store import Store

#: LLM name used when neither the file nor the user names one.
DEFAULT_LLM = "model"


@dataclass
class Records:
    """Decoded records of one file with their locations (1-based line, or position in a
    JSON array), the file's SHA-256 and notes about skipped lines."""

    items: list[tuple[int, Any]]
    loc_kind: str
    sha256: str
    notes: list[str]


def json_lines(path: Path, opts: ReadOptions) -> Records:
    """Records of a JSON Lines file; bad lines fail the import unless
    ``opts.complete_records_only``, in which case they are skipped and noted."""
    file = display_name(path)
    data = read_bytes(path)
    text = decode_utf8(data, file)
    return _lines_of(text, file, sha256_of(data), opts)


def _lines_of(text: str, file: str, sha: str, opts: ReadOptions) -> Records:
    issues = IssueList()
    skipped: list[tuple[int, str]] | None = [] if opts.complete_records_only else None
    items = list(iter_json_lines(text, file, issues, skipped=skipped))
    issues.raise_if_any()
    notes = [skipped_note(file, skipped)] if skipped else []
    if not items:
        raise ImportValidationError([Issue(file, "no complete record in the file")])
    return Records(items, "line", sha, notes)


def json_records(path: Path, opts: ReadOptions) -> Records:
    """Records of a JSON Lines file, or of one JSON document (an object, or an array of
    objects; locations are then positions in the array, "record 3")."""
    file = display_name(path)
    data = read_bytes(path)
    text = decode_utf8(data, file)
    sha = sha256_of(data)
    head = text.lstrip()
    first_line = head.split("\n", 1)[0].strip()
    if head.startswith("[") or (head.startswith("{") and not _parses(first_line)):
        try:
            doc = loads(text)
        except json.JSONDecodeError as exc:
            if head.startswith("["):
                raise ImportValidationError(
                    [
                        Issue(
                            file,
                            f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                            line=exc.lineno,
                        )
                    ]
                ) from exc
        else:
            if isinstance(doc, list):
                if not doc:
                    raise ImportValidationError([Issue(file, "the JSON array is empty")])
                return Records([(k + 1, r) for k, r in enumerate(doc)], "record", sha, [])
            return Records([(1, doc)], "record", sha, [])
    return _lines_of(text, file, sha, opts)


def _parses(line: str) -> bool:
    try:
        loads(line)
    except json.JSONDecodeError:
        return False
    return True


class Columns:
    """Column-wise builder of a raw long frame (fast for hundreds of thousands of rows)."""

    def __init__(self, *names: str) -> None:
        self.cols: dict[str, list[Any]] = {n: [] for n in names}

    def add(self, **values: Any) -> None:
        for name, col in self.cols.items():
            col.append(values.get(name))

    def __len__(self) -> int:
        return len(self.cols["_loc"]) if "_loc" in self.cols else 0

    def frame(self, drop_empty: bool = True) -> pd.DataFrame:
        """The frame; columns that hold no value at all are left out (so the validator
        applies its defaults), except the key columns."""
        keep = {
            n: c
            for n, c in self.cols.items()
            if not drop_empty
            or n in ("problem_id", "sample_idx", "_loc")
            or any(v is not None for v in c)
        }
        out = pd.DataFrame({n: pd.Series(c, dtype=object) for n, c in keep.items()})
        if "_loc" in out.columns:
            out["_loc"] = out["_loc"].astype(np.int64)
        return out


def bad_record(
    file: str, loc: int, loc_kind: str, message: str, column: str | None = None
) -> Issue:
    return Issue(file, message, line=loc, column=column, location_kind=loc_kind)


def as_list(value: Any) -> list[Any] | None:
    return value if isinstance(value, list) else None


def finite_number(v: Any) -> float | None:
    """A finite float of a JSON number (not a bool), else None."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


_UPLOAD_PREFIX = re.compile(r"^[0-9a-f]{12}-")
_UPLOAD_DIR = re.compile(r"^[0-9a-f]{12}$")


def shown_path(path: Path) -> str:
    """How an error names the input: the path as given, or for a dashboard upload (kept as
    uploads/<content hash>/<name>) the user's own name."""
    parts = path.parts
    for i in range(len(parts) - 2, 0, -1):
        if parts[i - 1] == "uploads" and _UPLOAD_DIR.match(parts[i]):
            return str(Path(*parts[i + 1 :]))
    return str(path)


def base_name(path: Path, suffixes: tuple[str, ...] = (".jsonl", ".json")) -> str:
    """File name without its data suffix, and without the content-hash prefix the
    dashboard gives uploaded files (``0123456789ab-name.jsonl``)."""
    name = _UPLOAD_PREFIX.sub("", path.name)
    for s in suffixes:
        if name.lower().endswith(s):
            return name[: -len(s)]
    return name


def direction_meta(
    source: Path,
    verifiers: Iterable[str],
    declared_low: set[str],
    lower_is_better: Iterable[str],
    higher_is_better: Iterable[str],
) -> dict[str, Any]:
    """The dataset metadata of the verifiers' declared directions (the format's own
    lower-is-better ones, then the user's, higher-is-better winning); a verifier the data
    does not have is an error naming the input."""
    found = set(verifiers)
    low = (declared_low | set(lower_is_better)) - set(higher_is_better)
    high = set(higher_is_better)
    unknown = (low | high) - found
    if unknown:
        raise ImportValidationError(
            [
                Issue(
                    shown_path(source),
                    f"no verifier {sorted(unknown)[0]!r} to declare a direction for; the "
                    f"data has: {', '.join(sorted(found))}",
                )
            ]
        )
    meta: dict[str, Any] = {}
    if low:
        meta["lower_is_better"] = sorted(low)
    if high:
        meta["higher_is_better"] = sorted(high)
    return meta


def check_free_name(store: Store, name: str, source: Path, replace: bool) -> None:
    """Refuse, naming the input, an import under an existing dataset's name unless it
    replaces that dataset."""
    if not replace and store.has_dataset(name):
        raise ImportValidationError(
            [
                Issue(
                    shown_path(source),
                    f"a dataset named {name!r} exists; choose another name or replace it "
                    "(CLI: --replace)",
                )
            ]
        )
