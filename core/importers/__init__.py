"""Import scored-response files into the store.

`import_path` is the one public entry point used by the CLI and the dashboard: it detects
the format (or takes one), reads and validates every file, and writes the dataset in one
transaction. A folder is imported as one dataset made of all its files; links that lead
out of the folder are never followed.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from core.importers.errors import ImportValidationError, Issue, IssueList
from core.importers.generic import (
    RawRead,
    read_bytes,
    read_long_csv,
    read_long_jsonl,
    read_long_parquet,
    read_wide_jsonl,
)
from core.importers.validate import LONG_COLUMNS, ValidationContext, to_canonical
from core.store import DatasetInfo, Store

Reader = Callable[[Path], RawRead]

READERS: dict[str, Reader] = {
    "long-csv": read_long_csv,
    "long-jsonl": read_long_jsonl,
    "long-parquet": read_long_parquet,
    "wide-jsonl": read_wide_jsonl,
}
FORMAT_HELP: dict[str, str] = {
    "long-csv": "CSV, one row per response and verifier score",
    "long-jsonl": "JSON Lines, one object per response and verifier score",
    "long-parquet": "Parquet, one row per response and verifier score",
    "wide-jsonl": "JSON Lines, one object per problem with lists of answers and scores",
}
SUPPORTED_SUFFIXES = (".csv", ".jsonl", ".json", ".parquet", ".pq")

ProgressFn = Callable[[str, int, int], None]


@dataclass(frozen=True)
class ImportResult:
    info: DatasetInfo
    files: tuple[str, ...]
    fmt: str
    notes: tuple[str, ...] = field(default_factory=tuple)

    def summary(self) -> str:
        i = self.info
        lines = [
            f"imported {i.name!r}: {i.n_problems} problems, {i.n_responses} responses, "
            f"{i.n_scores} scores, LLMs {', '.join(i.llms)}; verifiers {', '.join(i.verifiers)}",
            f"format {self.fmt}, {len(self.files)} file(s)",
        ]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def detect_format(path: Path) -> str:
    """Name of the reader for `path`, decided from its suffix and first record."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "long-csv"
    if suffix in (".parquet", ".pq"):
        return "long-parquet"
    if suffix in (".jsonl", ".json"):
        first = _first_json_record(path)
        if isinstance(first, dict):
            if isinstance(first.get("answers"), list) or isinstance(
                first.get("scores"), list | dict
            ):
                return "wide-jsonl"
            if "problem_id" in first and "sample_idx" in first:
                return "long-jsonl"
        raise ImportValidationError(
            [
                Issue(
                    path.name,
                    "the file matches no known format: a long-format line needs 'problem_id' and "
                    "'sample_idx', a wide-format line needs an 'answers' or 'scores' list "
                    f"(known formats: {', '.join(READERS)})",
                    line=1,
                )
            ]
        )
    raise ImportValidationError(
        [
            Issue(
                path.name,
                f"unsupported file type {suffix or '(no suffix)'!r}; expected one of "
                f"{', '.join(SUPPORTED_SUFFIXES)}",
            )
        ]
    )


def _first_json_record(path: Path) -> object:
    data = read_bytes(path)
    for raw in data.split(b"\n"):
        if raw.strip():
            try:
                return json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                return None
    return None


def collect_files(root: Path) -> tuple[list[Path], list[str]]:
    """Data files under a folder, sorted; never leaves the folder through links.

    Returns the files and notes about what was skipped.
    """
    base = root.resolve()
    files: list[Path] = []
    notes: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for d in list(dirnames):
            if (Path(dirpath) / d).is_symlink():
                notes.append(f"skipped linked folder {Path(dirpath, d).relative_to(root)}")
        for fname in sorted(filenames):
            p = Path(dirpath) / fname
            if p.suffix.lower() not in SUPPORTED_SUFFIXES or fname.startswith("."):
                continue
            real = p.resolve()
            if not real.is_relative_to(base):
                notes.append(f"skipped {p.relative_to(root)}: it links outside the folder")
                continue
            files.append(p)
    return files, notes


def import_path(
    store: Store,
    path: str | Path,
    *,
    name: str | None = None,
    fmt: str = "auto",
    replace: bool = False,
    iid: bool = True,
    simulated: bool = False,
    notes: str | None = None,
    progress: ProgressFn | None = None,
) -> ImportResult:
    """Read, validate and store one file or folder as one dataset."""
    p = Path(path)
    if not p.exists():
        raise ImportValidationError([Issue(str(p), "no such file or folder")])
    extra_notes: list[str] = []
    if p.is_dir():
        files, extra_notes = collect_files(p)
        if not files:
            raise ImportValidationError(
                [Issue(str(p), f"the folder holds no data files ({', '.join(SUPPORTED_SUFFIXES)})")]
            )
    else:
        files = [p]
    if fmt != "auto" and fmt not in READERS:
        raise ImportValidationError(
            [Issue(str(p), f"unknown format {fmt!r}; known: auto, {', '.join(READERS)}")]
        )
    ds_name = name or p.stem
    if not replace and store.has_dataset(ds_name):
        raise ImportValidationError(
            [
                Issue(
                    str(p),
                    f"a dataset named {ds_name!r} exists; choose another name or replace it "
                    "(CLI: --replace)",
                )
            ]
        )
    reads: list[RawRead] = []
    issues = IssueList()
    total = len(files) + 4
    for k, f in enumerate(files):
        if progress is not None:
            progress(f"reading {f.name}", k, total)
        try:
            reader = READERS[detect_format(f) if fmt == "auto" else fmt]
            reads.append(reader(f))
        except ImportValidationError as exc:
            issues.extend(exc.issues)
    issues.raise_if_any()
    fmts = sorted({r.fmt for r in reads})
    many = len(reads) > 1
    frames = []
    for f, r in zip(files, reads, strict=True):
        fr = r.frame
        if many:
            fr = fr.assign(_file=str(f.relative_to(p)))
        frames.append(fr)
    raw = pd.concat(frames, ignore_index=True) if many else frames[0]
    if progress is not None:
        progress("validating", len(files), total)
    loc_kind = reads[0].loc_kind if len({r.loc_kind for r in reads}) == 1 else "line/row"
    data, val_notes = to_canonical(raw, ValidationContext(files[0].name, loc_kind))
    sha = (
        reads[0].sha256
        if not many
        else hashlib.sha256(
            "".join(
                f"{f.relative_to(p)}:{r.sha256}\n" for f, r in zip(files, reads, strict=True)
            ).encode()
        ).hexdigest()
    )
    all_notes = [*extra_notes, *val_notes]
    for r in reads:
        all_notes.extend(r.notes)

    def ingest_progress(stage: str, i: int, n: int) -> None:
        if progress is not None:
            progress(f"writing {stage}", len(files) + 1 + i, total)

    grader = next((n.split(": ", 1)[1] for n in val_notes if n.startswith("correctness: ")), None)
    info = store.ingest(
        data,
        name=ds_name,
        source_format="+".join(fmts),
        content_sha256=sha,
        source_path=str(p),
        replace=replace,
        iid=iid,
        simulated=simulated,
        grader=grader,
        notes="; ".join(
            [
                *(n for n in all_notes if not n.startswith("correctness: ")),
                *([notes] if notes else []),
            ]
        )
        or None,
        progress=ingest_progress,
    )
    if progress is not None:
        progress("done", total, total)
    return ImportResult(
        info=info, files=tuple(str(f) for f in files), fmt="+".join(fmts), notes=tuple(all_notes)
    )


__all__ = [
    "FORMAT_HELP",
    "LONG_COLUMNS",
    "READERS",
    "ImportResult",
    "ImportValidationError",
    "Issue",
    "collect_files",
    "detect_format",
    "import_path",
]
