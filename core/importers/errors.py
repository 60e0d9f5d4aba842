"""Validation problems found while importing, reported together."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from core.importers.limits import MAX_DEPTH, depth_over
from core.types import TTSLabError

MAX_SHOWN = 20


@dataclass(frozen=True)
class Issue:
    """One problem in an input file.

    `location` is human-readable ("line 12", "row 7", "byte 1034"); `line` is the 1-based
    line (text formats) or row (Parquet) number when known.
    """

    file: str
    message: str
    line: int | None = None
    column: str | None = None
    location_kind: str = "line"

    def __str__(self) -> str:
        parts = [self.file]
        if self.line is not None:
            parts.append(f"{self.location_kind} {self.line}")
        if self.column is not None:
            parts.append(f"column {self.column!r}")
        return ", ".join(parts) + f": {self.message}"


@dataclass
class IssueList:
    """Collects issues; keeps every one (the report shows the first MAX_SHOWN)."""

    issues: list[Issue] = field(default_factory=list)

    def add(self, issue: Issue) -> None:
        self.issues.append(issue)

    def extend(self, issues: list[Issue]) -> None:
        self.issues.extend(issues)

    def __len__(self) -> int:
        return len(self.issues)

    def __bool__(self) -> bool:
        return bool(self.issues)

    def raise_if_any(self) -> None:
        if self.issues:
            ordered = sorted(self.issues, key=lambda i: (i.file, i.line or 0))
            raise ImportValidationError(ordered)


class ImportValidationError(TTSLabError):
    """The input is invalid; nothing was written. `issues` holds every problem found."""

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = issues
        super().__init__(self.report())

    def report(self, limit: int = MAX_SHOWN) -> str:
        n = len(self.issues)
        head = f"{n} problem{'s' if n != 1 else ''} found, nothing was imported:"
        lines = [head] + [f"  - {i}" for i in self.issues[:limit]]
        if n > limit:
            lines.append(f"  ... and {n - limit} more")
        return "\n".join(lines)

    def to_frame(self) -> pd.DataFrame:
        """A table for display: file, line/row, column, problem."""
        return pd.DataFrame(
            {
                "file": [i.file for i in self.issues],
                "where": [
                    f"{i.location_kind} {i.line}" if i.line is not None else "" for i in self.issues
                ],
                "column": [i.column or "" for i in self.issues],
                "problem": [i.message for i in self.issues],
            }
        )


# --------------------------------------------------------------------------------------
# strict JSON decoding (every reader uses it)
# --------------------------------------------------------------------------------------

#: A UTF-16 surrogate escape in JSON text; a lone one decodes to a string no UTF-8 writer
#: accepts.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF][0-9a-fA-F]{2}")


_CONSTANT = re.compile(r"(?<![\w\"])-?(?:NaN|Infinity)(?![\w\"])")
_LAST_KEY = re.compile(r'"((?:[^"\\]|\\.)*)"\s*:[^:]*$')


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a number (JSON has no NaN or Infinity)")


def _lone_surrogate(obj: Any) -> bool:
    stack = [obj]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            if any(0xD800 <= ord(c) <= 0xDFFF for c in v):
                return True
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return False


def loads(text: str | bytes) -> Any:
    """`json.loads` that rejects what no importer can store, always as a
    `json.JSONDecodeError` naming the problem: NaN / Infinity, nesting deeper than
    MAX_DEPTH levels, integers of more than 4,300 digits, and lone UTF-16
    surrogates (``"\\ud800"``)."""
    s = text.decode("utf-8") if isinstance(text, bytes) else text
    try:
        obj = json.loads(s, parse_constant=_no_constants)
    except json.JSONDecodeError:
        raise
    except RecursionError:
        raise json.JSONDecodeError(f"nested more than {MAX_DEPTH} levels deep", s, 0) from None
    except ValueError as exc:  # NaN / Infinity, or an integer over 4,300 digits
        msg = str(exc)
        pos = 0
        if "digits" in msg:
            msg = "an integer with more than 4,300 digits"
        elif (m := _CONSTANT.search(s)) is not None:
            pos = m.start()
            key = _LAST_KEY.search(s[:pos])
            if key is not None:
                msg = f"{m.group(0)} in field {key.group(1)!r} is not a number (JSON has no NaN)"
        raise json.JSONDecodeError(msg, s, pos) from None
    if s.count("[") + s.count("{") > MAX_DEPTH and depth_over(obj):
        raise json.JSONDecodeError(f"nested more than {MAX_DEPTH} levels deep", s, 0)
    if _SURROGATE_ESCAPE.search(s) and _lone_surrogate(obj):
        raise json.JSONDecodeError("a string holds a lone UTF-16 surrogate (e.g. \\ud800)", s, 0)
    return obj
