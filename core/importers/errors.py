"""Validation problems found while importing, reported together."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

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
