"""Readers of the generic formats: long CSV / JSONL / Parquet and wide JSONL.

Each reader returns a `RawRead`: the raw long frame (see `core.importers.validate`) plus
the file's SHA-256. Reading never writes anything; problems found while reading are
collected and raised together as `ImportValidationError`.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import stat
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from core.importers.errors import ImportValidationError, Issue, IssueList, loads
from core.importers.limits import MAX_COLUMNS, MAX_LINE_CHARS

WIDE_LIST_FIELDS = ("answers", "is_correct", "n_tokens")
SUPPORTED_SUFFIXES = (".csv", ".jsonl", ".json", ".parquet", ".pq")


@dataclass
class RawRead:
    """What a reader returns.

    ``grade``: the frame's answers are to be clustered (and, where the file carries no
    correctness labels, graded against ``gold_answer``) with `core.grading` at import time;
    labels the file does carry are kept and compared with the grader's verdicts.
    ``files``: the data files read, when the reader read more than the path it was given
    (an OpenR run folder). ``lower_is_better``: verifiers (signals) the format knows to
    point down, such as response length.
    """

    frame: pd.DataFrame
    fmt: str
    loc_kind: str
    sha256: str
    notes: list[str] = field(default_factory=list)
    grade: bool = False
    files: list[Path] | None = None
    lower_is_better: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReadOptions:
    """Options of one import that readers may use.

    complete_records_only: skip JSON lines that cannot be decoded (a truncated last line, a
        corrupt line) and report them in the notes instead of failing the import.
    """

    complete_records_only: bool = False


def skipped_note(file: str, skipped: list[tuple[int, str]]) -> str:
    """Human-readable note about JSON lines skipped under complete_records_only."""
    shown = "; ".join(f"line {ln}: {msg}" for ln, msg in skipped[:5])
    more = f"; and {len(skipped) - 5} more" if len(skipped) > 5 else ""
    n = len(skipped)
    return (
        f"{file}: skipped {n} incomplete record{'s' if n != 1 else ''} "
        f"(complete records only): {shown}{more}"
    )


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


def display_name(path: Path) -> str:
    return path.name


def read_bytes(path: Path) -> bytes:
    """The file's bytes; a named error for anything that is not a readable regular file
    (a FIFO or device would block the import forever)."""
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            raise ImportValidationError(
                [Issue(display_name(path), "not a regular file (a pipe, device or socket?)")]
            )
        data = path.read_bytes()
    except OSError as exc:
        raise ImportValidationError(
            [Issue(display_name(path), f"cannot read file: {exc.strerror or exc}")]
        ) from exc
    if not data.strip():
        raise ImportValidationError([Issue(display_name(path), "the file is empty")])
    return data


def decode_utf8(data: bytes, file: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ImportValidationError(
            [
                Issue(
                    file,
                    f"not valid UTF-8 text (byte {exc.start} of the file, undecodable "
                    f"byte 0x{data[exc.start]:02x}); is this really a text file?",
                    line=line,
                )
            ]
        ) from exc


def iter_json_lines(
    text: str,
    file: str,
    issues: IssueList,
    skipped: list[tuple[int, str]] | None = None,
) -> Iterator[tuple[int, Any]]:
    """Yield (line number, decoded object) for each non-blank line; collect bad lines.

    With ``skipped`` given, bad lines go there as (line, message) instead of into ``issues``.
    """
    lines = text.split("\n")
    ends_with_newline = text.endswith("\n")
    last_content = max((i for i, ln in enumerate(lines) if ln.strip()), default=-1)
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        if len(line) > MAX_LINE_CHARS:
            msg = f"the line has {len(line):,} characters; the limit is {MAX_LINE_CHARS:,}"
            if skipped is not None:
                skipped.append((i + 1, msg))
            else:
                issues.add(Issue(file, msg, line=i + 1))
            continue
        try:
            yield i + 1, loads(line)
        except json.JSONDecodeError as exc:
            if i == last_content and not ends_with_newline:
                msg = (
                    f"truncated record: the file ends in the middle of this line "
                    f"({len(line)} characters; JSON error: {exc.msg}, column {exc.colno})"
                )
            else:
                msg = f"invalid JSON: {exc.msg} at column {exc.colno}"
            if skipped is not None:
                skipped.append((i + 1, msg))
            else:
                issues.add(Issue(file, msg, line=i + 1))


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_line_endings(data: bytes, file: str) -> None:
    """Refuse text whose lines end in a bare CR (classic Mac): every reader would see one
    giant line."""
    if b"\r" in data and b"\n" not in data.rstrip(b"\r"):
        raise ImportValidationError(
            [Issue(file, "lines end in a bare CR (old Mac line endings); convert to LF or CRLF")]
        )


def check_line_lengths(data: bytes, file: str) -> None:
    """Refuse a file with a line of more than MAX_LINE_CHARS bytes (found with one vectorised
    pass over the newlines; UTF-8 text has at least as many bytes as characters)."""
    if len(data) <= MAX_LINE_CHARS:
        return
    ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
    bounds = np.concatenate(([-1], ends, [len(data)]))
    lengths = np.diff(bounds) - 1
    worst = int(np.argmax(lengths))
    if lengths[worst] > MAX_LINE_CHARS:
        raise ImportValidationError(
            [
                Issue(
                    file,
                    f"the line has {int(lengths[worst]):,} bytes; the limit is {MAX_LINE_CHARS:,}",
                    line=worst + 1,
                )
            ]
        )


def read_long_csv(path: Path, opts: ReadOptions | None = None) -> RawRead:
    file = display_name(path)
    data = read_bytes(path)
    decode_utf8(data, file)
    check_line_endings(data, file)
    check_line_lengths(data, file)
    first_line = data.split(b"\n", 1)[0].decode("utf-8-sig").strip("\r")
    if first_line.count(",") >= MAX_COLUMNS:
        raise ImportValidationError(
            [Issue(file, f"the header has more than {MAX_COLUMNS} columns", line=1)]
        )
    try:
        names = next(csv.reader([first_line]))
    except csv.Error as exc:
        raise ImportValidationError([Issue(file, f"unreadable header: {exc}", line=1)]) from exc
    counts = Counter(names)
    dup_names = sorted(c for c, k in counts.items() if k > 1)
    if dup_names:
        raise ImportValidationError(
            [Issue(file, "column name appears more than once", line=1, column=c) for c in dup_names]
        )
    try:
        table = pacsv.read_csv(
            pa.BufferReader(data),
            read_options=pacsv.ReadOptions(use_threads=True, block_size=16 << 20),
            convert_options=pacsv.ConvertOptions(
                column_types={c: pa.string() for c in names},
                strings_can_be_null=True,
                null_values=[""],
            ),
        )
    except pa.ArrowInvalid as exc:
        raise ImportValidationError([Issue(file, f"CSV parse error: {_csv_msg(exc)}")]) from exc
    if table.num_rows == 0:
        raise ImportValidationError([Issue(file, "the file has a header but no data rows")])
    notes: list[str] = []
    if not data.endswith(b"\n"):
        # a file that stops without a newline may have been cut off in its last row
        # (inside a quoted field, or inside the last value): never store that row as if
        # it were complete
        last = data.rsplit(b"\n", 1)[-1]
        where = "inside a quoted field" if last.count(b'"') % 2 == 1 else "without a final newline"
        if opts is None or not opts.complete_records_only or table.num_rows < 2:
            raise ImportValidationError(
                [
                    Issue(
                        file,
                        f"the file ends {where}: its last row may be cut off (add a final "
                        "newline if it is complete, or import the complete records only)",
                        line=data.count(b"\n") + 1,
                    )
                ]
            )
        table = table.slice(0, table.num_rows - 1)
        data = data[: data.rfind(b"\n") + 1]
        notes.append(f"{file}: skipped the last line, which ends {where} (complete records only)")
    # one row per non-blank line after the header (values hold no newlines here): fewer
    # rows means the parser swallowed lines, as a file cut off inside a quoted field does
    lines = [ln for ln in data.split(b"\n")[1:] if ln.strip(b"\r \t")]
    if len(lines) != table.num_rows:
        cut = "" if data.endswith(b"\n") else " (the file does not end with a newline: cut off?)"
        raise ImportValidationError(
            [
                Issue(
                    file,
                    f"{len(lines)} data lines but {table.num_rows} rows could be read: a "
                    f"quoted field is never closed{cut}",
                    line=table.num_rows + 2,
                )
            ]
        )
    frame = table.to_pandas(types_mapper=None)
    frame = frame.astype(object).where(frame.notna(), None)
    # header is line 1; data row i (0-based) is line i + 2 (no embedded newlines)
    frame["_loc"] = np.arange(2, table.num_rows + 2, dtype=np.int64)
    return RawRead(frame, "long-csv", "line", sha256_of(data), notes)


def _csv_msg(exc: Exception) -> str:
    msg = str(exc)
    return msg.replace("CSV parse error: ", "")[:300]


def read_long_jsonl(path: Path, opts: ReadOptions | None = None) -> RawRead:
    file = display_name(path)
    data = read_bytes(path)
    text = decode_utf8(data, file)
    check_line_endings(data, file)
    issues = IssueList()
    records: list[dict[str, Any]] = []
    locs: list[int] = []
    skipped: list[tuple[int, str]] | None = (
        [] if opts is not None and opts.complete_records_only else None
    )
    for line_no, obj in iter_json_lines(text, file, issues, skipped):
        if not isinstance(obj, dict):
            issues.add(
                Issue(file, f"expected a JSON object, got {type(obj).__name__}", line=line_no)
            )
            continue
        records.append(obj)
        locs.append(line_no)
    issues.raise_if_any()
    frame = pd.DataFrame.from_records(records)
    frame = frame.astype(object).where(frame.notna(), None) if len(frame) else frame
    frame["_loc"] = np.asarray(locs, dtype=np.int64)
    notes = [skipped_note(file, skipped)] if skipped else []
    return RawRead(frame, "long-jsonl", "line", sha256_of(data), notes)


def read_long_parquet(path: Path, opts: ReadOptions | None = None) -> RawRead:
    """The whole file at once: the batches of `stream_long_parquet` put together."""
    sr = stream_long_parquet(path, opts)
    frames: list[pd.DataFrame] = []
    issues = IssueList()
    for frame, found in sr.batches():
        issues.extend(found)
        frames.append(frame)
    issues.raise_if_any()
    whole = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    for col in whole.columns:  # one chunk per Arrow column, as the validator expects
        arr = whole[col].array
        if isinstance(arr, pd.arrays.ArrowExtensionArray):
            whole[col] = pd.Series(pd.arrays.ArrowExtensionArray(arr._pa_array.combine_chunks()))
    return RawRead(whole, sr.fmt, sr.loc_kind, sr.sha256)


#: Rows validated at once by a streamed import (memory grows with this, not the file).
STREAM_BATCH_ROWS = 500_000


@dataclass
class StreamRead:
    """A file read in batches by a streamed import (`batches` yields raw long frames
    whose ``_loc`` continue across batches, each with the problems found while reading
    it, such as NaN in a float column)."""

    path: Path
    fmt: str
    loc_kind: str
    sha256: str
    n_rows: int
    batches: Callable[[], Iterator[tuple[pd.DataFrame, list[Issue]]]]
    notes: list[str] = field(default_factory=list)
    grade: bool = False
    files: list[Path] | None = None
    lower_is_better: tuple[str, ...] = ()


def _regular_file(path: Path) -> os.stat_result:
    try:
        st = path.stat()
    except OSError as exc:
        raise ImportValidationError(
            [Issue(display_name(path), f"cannot read file: {exc.strerror or exc}")]
        ) from exc
    if not stat.S_ISREG(st.st_mode):
        raise ImportValidationError(
            [Issue(display_name(path), "not a regular file (a pipe, device or socket?)")]
        )
    if st.st_size == 0:
        raise ImportValidationError([Issue(display_name(path), "the file is empty")])
    return st


def sha256_of_file(path: Path, chunk: int = 8 << 20) -> str:
    """SHA-256 of a file's bytes, read in chunks (equal to `sha256_of` of its bytes)."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def stream_long_parquet(
    path: Path, opts: ReadOptions | None = None, batch_rows: int | None = None
) -> StreamRead:
    """A long-format Parquet file read row group by row group, `batch_rows` rows at a
    time (default `STREAM_BATCH_ROWS`): the frames `read_long_parquet` makes, in pieces."""
    file = display_name(path)
    rows = batch_rows or STREAM_BATCH_ROWS
    _regular_file(path)
    try:
        meta = pq.ParquetFile(path).metadata
    except (pa.ArrowInvalid, OSError) as exc:
        raise ImportValidationError(
            [Issue(file, f"not a readable Parquet file: {str(exc)[:200]}")]
        ) from exc
    if meta.num_rows == 0:
        raise ImportValidationError([Issue(file, "the file has no rows")])

    def batches() -> Iterator[tuple[pd.DataFrame, list[Issue]]]:
        start = 0
        try:
            # pre_buffer off: with it the reader keeps every column chunk it has read, so
            # memory would grow with the file
            with pq.ParquetFile(path, pre_buffer=False) as pf:
                for batch in pf.iter_batches(batch_size=rows):
                    table = pa.Table.from_batches([batch])
                    issues: list[Issue] = []
                    try:
                        _check_parquet_nan(table, file, start)
                    except ImportValidationError as exc:
                        issues = list(exc.issues)
                    frame = pd.DataFrame(
                        {name: _arrow_column(table.column(name)) for name in table.column_names}
                    )
                    frame["_loc"] = np.arange(start + 1, start + table.num_rows + 1, dtype=np.int64)
                    start += table.num_rows
                    yield frame, issues
        except (pa.ArrowInvalid, OSError) as exc:
            raise ImportValidationError(
                [Issue(file, f"unreadable Parquet data after row {start}: {str(exc)[:200]}")]
            ) from exc

    return StreamRead(path, "long-parquet", "row", sha256_of_file(path), meta.num_rows, batches)


def _check_parquet_nan(table: pa.Table, file: str, start: int = 0) -> None:
    """NaN in a float column is an error (missing values are nulls), named by row
    (``start``: rows of the file before this table)."""
    issues = IssueList()
    for name in table.column_names:
        col = table.column(name)
        if not pa.types.is_floating(col.type):
            continue
        nan = np.flatnonzero(
            np.asarray(pc.fill_null(pc.is_nan(col), False).to_numpy(zero_copy_only=False))
        )
        for j in nan[:20]:
            issues.add(
                Issue(
                    file,
                    "value is NaN",
                    line=start + int(j) + 1,
                    column=name,
                    location_kind="row",
                )
            )
    issues.raise_if_any()


def _arrow_column(col: pa.ChunkedArray) -> Any:
    """Keep numbers numeric and lists as Arrow lists (fast paths of the validator)."""
    typ = col.type
    if pa.types.is_floating(typ) or pa.types.is_integer(typ):
        if col.null_count:
            return col.to_numpy(zero_copy_only=False).astype(np.float64)
        return col.to_numpy()
    if pa.types.is_boolean(typ):
        if col.null_count:
            return pd.Series(col.to_pylist(), dtype=object)
        return col.to_numpy(zero_copy_only=False)
    if pa.types.is_list(typ) or pa.types.is_large_list(typ):
        return pd.Series(pd.arrays.ArrowExtensionArray(col.combine_chunks()))
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        return pd.Series(pd.arrays.ArrowExtensionArray(col.combine_chunks()))
    return pd.Series(col.to_pylist(), dtype=object)


def read_wide_jsonl(path: Path, opts: ReadOptions | None = None) -> RawRead:
    """One line per problem (and LLM) with lists of answers, correctness and scores."""
    file = display_name(path)
    data = read_bytes(path)
    text = decode_utf8(data, file)
    issues = IssueList()
    rows: dict[str, list[Any]] = {
        k: []
        for k in (
            "problem_id",
            "sample_idx",
            "llm",
            "verifier",
            "answer",
            "is_correct",
            "n_tokens",
            "score",
            "step_scores",
            "gold_answer",
            "level",
            "subject",
            "problem_text",
            "_loc",
        )
    }
    present: set[str] = set()
    skipped: list[tuple[int, str]] | None = (
        [] if opts is not None and opts.complete_records_only else None
    )
    for line_no, obj in iter_json_lines(text, file, issues, skipped):
        if not isinstance(obj, dict):
            issues.add(
                Issue(file, f"expected a JSON object, got {type(obj).__name__}", line=line_no)
            )
            continue
        _expand_wide(obj, line_no, file, rows, present, issues)
    issues.raise_if_any()
    frame = pd.DataFrame({k: v for k, v in rows.items() if k in present or k == "_loc"})
    frame["_loc"] = frame["_loc"].astype(np.int64)
    notes = [skipped_note(file, skipped)] if skipped else []
    return RawRead(frame, "wide-jsonl", "line", sha256_of(data), notes)


def _expand_wide(
    obj: dict[str, Any],
    line_no: int,
    file: str,
    rows: dict[str, list[Any]],
    present: set[str],
    issues: IssueList,
) -> None:
    def bad(column: str, msg: str) -> None:
        issues.add(Issue(file, msg, line=line_no, column=column))

    scores = obj.get("scores")
    steps = obj.get("step_scores")
    verifier = obj.get("verifier")
    per_verifier: dict[str, tuple[list[Any] | None, list[Any] | None]] = {}
    if isinstance(scores, dict):
        for v, vals in scores.items():
            per_verifier[str(v)] = (vals, None)
    elif isinstance(scores, list):
        per_verifier[str(verifier) if verifier is not None else "score"] = (scores, None)
    elif scores is not None:
        bad("scores", "expected a list, or an object mapping verifier names to lists")
        return
    if isinstance(steps, dict):
        for v, vals in steps.items():
            old = per_verifier.get(str(v), (None, None))
            per_verifier[str(v)] = (old[0], vals)
    elif isinstance(steps, list):
        name = str(verifier) if verifier is not None else "score"
        old = per_verifier.get(name, (None, None))
        per_verifier[name] = (old[0], steps)
    elif steps is not None:
        bad("step_scores", "expected a list of lists, or an object of verifier -> lists")
        return
    if not per_verifier:
        bad("scores", "missing field: each line needs 'scores' (or 'step_scores')")
        return
    if "problem_id" not in obj:
        bad("problem_id", "missing field")
        return
    lists: dict[str, list[Any]] = {}
    for f in WIDE_LIST_FIELDS:
        if f in obj and obj[f] is not None:
            if not isinstance(obj[f], list):
                bad(f, f"expected a list, got {type(obj[f]).__name__}")
                return
            lists[f] = obj[f]
    n: int | None = len(lists["answers"]) if "answers" in lists else None
    ref = "answers"
    for v, (vals, st) in per_verifier.items():
        for label, seq in ((f"scores[{v}]", vals), (f"step_scores[{v}]", st)):
            if seq is None:
                continue
            if not isinstance(seq, list):
                bad(label.split("[")[0], f"{label}: expected a list")
                return
            if n is None:
                n, ref = len(seq), label
            elif len(seq) != n:
                bad(label.split("[")[0], f"{label} has {len(seq)} values but {ref} has {n}")
                return
    assert n is not None
    for f, seq in lists.items():
        if len(seq) != n:
            bad(f, f"{f} has {len(seq)} values but {ref} has {n}")
            return
    if n == 0:
        bad(ref.split("[")[0], "no responses on this line (empty lists)")
        return
    for v, (vals, st) in per_verifier.items():
        for i in range(n):
            rows["problem_id"].append(obj["problem_id"])
            rows["sample_idx"].append(i)
            rows["llm"].append(obj.get("llm"))
            rows["verifier"].append(v)
            rows["answer"].append(lists["answers"][i] if "answers" in lists else None)
            rows["is_correct"].append(lists["is_correct"][i] if "is_correct" in lists else None)
            rows["n_tokens"].append(lists["n_tokens"][i] if "n_tokens" in lists else None)
            rows["score"].append(vals[i] if vals is not None else None)
            rows["step_scores"].append(st[i] if st is not None else None)
            rows["gold_answer"].append(obj.get("gold_answer"))
            rows["level"].append(obj.get("level"))
            rows["subject"].append(obj.get("subject"))
            rows["problem_text"].append(obj.get("problem_text"))
            rows["_loc"].append(line_no)
        if vals is not None:
            present.add("score")
        if st is not None:
            present.add("step_scores")
    present.update({"problem_id", "sample_idx", "verifier"})
    if "llm" in obj:
        present.add("llm")
    for f, col in (("answers", "answer"), ("is_correct", "is_correct"), ("n_tokens", "n_tokens")):
        if f in lists:
            present.add(col)
    for f in ("gold_answer", "level", "subject", "problem_text"):
        if f in obj:
            present.add(f)
