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

from core.importers.chunks import TEXT_CHUNK_BYTES, bare_cr, line_chunks
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


def decode_utf8(data: bytes, file: str, first_line: int = 1, offset: int = 0) -> str:
    """The text of `data`, the part of a file from byte `offset` and line `first_line`
    (the start of the file by default, where a byte-order mark is dropped)."""
    try:
        return data.decode("utf-8-sig" if offset == 0 else "utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + first_line
        raise ImportValidationError(
            [
                Issue(
                    file,
                    f"not valid UTF-8 text (byte {offset + exc.start} of the file, undecodable "
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
    first_line: int = 1,
) -> Iterator[tuple[int, Any]]:
    """Yield (line number, decoded object) for each non-blank line; collect bad lines.

    With ``skipped`` given, bad lines go there as (line, message) instead of into ``issues``.
    ``first_line``: the number of the text's first line in its file (the text is a chunk
    of whole lines; only the file's last piece may end without a newline).
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
                skipped.append((i + first_line, msg))
            else:
                issues.add(Issue(file, msg, line=i + first_line))
            continue
        try:
            yield i + first_line, loads(line)
        except json.JSONDecodeError as exc:
            if i == last_content and not ends_with_newline:
                msg = (
                    f"truncated record: the file ends in the middle of this line "
                    f"({len(line)} characters; JSON error: {exc.msg}, column {exc.colno})"
                )
            else:
                msg = f"invalid JSON: {exc.msg} at column {exc.colno}"
            if skipped is not None:
                skipped.append((i + first_line, msg))
            else:
                issues.add(Issue(file, msg, line=i + first_line))


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_line_lengths(data: bytes, file: str, first_line: int = 1) -> int:
    """Refuse text with a line of more than MAX_LINE_CHARS bytes (found with one vectorised
    pass over the newlines; UTF-8 text has at least as many bytes as characters); return
    the longest line's length. ``first_line``: the number of the text's first line."""
    ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
    bounds = np.concatenate(([-1], ends, [len(data)]))
    lengths = np.diff(bounds) - 1
    worst = int(np.argmax(lengths))
    if lengths[worst] > MAX_LINE_CHARS:
        raise ImportValidationError([_overlong(file, int(lengths[worst]), worst + first_line)])
    return int(lengths[worst])


def _overlong(file: str, length: int, line: int) -> Issue:
    return Issue(file, f"the line has {length:,} bytes; the limit is {MAX_LINE_CHARS:,}", line=line)


def read_long_csv(path: Path, opts: ReadOptions | None = None) -> RawRead:
    """The whole file at once: the batches of `stream_long_csv` put together."""
    return whole_read(stream_long_csv(path, opts))


def read_long_jsonl(path: Path, opts: ReadOptions | None = None) -> RawRead:
    """The whole file at once: the batches of `stream_long_jsonl` put together."""
    return whole_read(stream_long_jsonl(path, opts))


def whole_read(sr: StreamRead) -> RawRead:
    """All batches of a streamed file as one frame (its problems raised together)."""
    frames: list[pd.DataFrame] = []
    issues = IssueList()
    for frame, found in sr.batches():
        issues.extend(found)
        if frame is not None:
            frames.append(frame)
    issues.raise_if_any()
    whole = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    if len({tuple(f.columns) for f in frames}) > 1:  # a later batch brought a column
        added = [c for c in whole.columns if c not in frames[0].columns]
        whole[added] = whole[added].astype(object).where(whole[added].notna(), None)
    for col in whole.columns:  # one chunk per Arrow column, as the validator expects
        arr = whole[col].array
        if isinstance(arr, pd.arrays.ArrowExtensionArray):
            whole[col] = pd.Series(pd.arrays.ArrowExtensionArray(arr._pa_array.combine_chunks()))
    return RawRead(whole, sr.fmt, sr.loc_kind, sr.sha256, sr.notes)


def _csv_header(path: Path, file: str) -> list[str]:
    """The column names of a CSV file's first line, checked."""
    with path.open("rb") as fh:
        head = fh.readline(MAX_LINE_CHARS + 1)
    if b"\n" not in head and b"\r" in head:
        raise bare_cr(file)
    if len(head) > MAX_LINE_CHARS:
        raise ImportValidationError([_overlong(file, len(head), 1)])
    if not head.strip():
        with path.open("rb") as fh:
            blank = all(block.isspace() for block in iter(lambda: fh.read(1 << 20), b""))
        raise ImportValidationError(
            [Issue(file, "the file is empty" if blank else "the header (line 1) is blank", line=1)]
        )
    first_line = decode_utf8(head, file).strip("\r\n")
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
    return names


def stream_long_csv(
    path: Path, opts: ReadOptions | None = None, chunk_bytes: int | None = None
) -> StreamRead:
    """A long-format CSV file read in chunks of whole lines (`line_chunks`), each parsed
    by Arrow into one batch whose ``_loc`` is the line number of each row.

    A last row without its final newline may be cut off: it is an error, or, with
    ``complete_records_only``, skipped and noted (and left out of the fingerprint).
    """
    file = display_name(path)
    size = _regular_file(path).st_size
    names = _csv_header(path, file)
    complete_only = opts is not None and opts.complete_records_only
    sr = StreamRead(path, "long-csv", "line", "", 0, lambda: iter(()), size=size)

    def batches() -> Iterator[tuple[pd.DataFrame | None, list[Issue]]]:
        digest = hashlib.sha256()
        rows = 0
        for chunk in line_chunks(path, file, chunk_bytes or TEXT_CHUNK_BYTES):
            if chunk.overlong:
                raise ImportValidationError([_overlong(file, chunk.overlong, chunk.first_line)])
            data = chunk.data
            decode_utf8(data, file, chunk.first_line, chunk.offset)
            longest = check_line_lengths(data, file, chunk.first_line)
            body, line0 = data, chunk.first_line
            if chunk.offset == 0:  # without the header
                nl = data.find(b"\n")
                body, line0 = (data[nl + 1 :] if nl >= 0 else b""), line0 + 1
            kept = len(data)
            if not chunk.complete:
                tail = body[body.rfind(b"\n") + 1 :]
                body = body[: len(body) - len(tail)]
                if tail.strip(b"\r \t"):
                    # a file that stops without a newline may have been cut off in its
                    # last row (inside a quoted field, or inside the last value): never
                    # store that row as if it were complete
                    where = (
                        "inside a quoted field"
                        if tail.count(b'"') % 2 == 1
                        else "without a final newline"
                    )
                    if not complete_only or rows + len(_row_lines(body.split(b"\n"))) < 1:
                        raise ImportValidationError(
                            [
                                Issue(
                                    file,
                                    f"the file ends {where}: its last row may be cut off (add "
                                    "a final newline if it is complete, or import the complete "
                                    "records only)",
                                    line=chunk.first_line + data.count(b"\n"),
                                )
                            ]
                        )
                    kept = len(data) - len(tail)
                    sr.notes.append(
                        f"{file}: skipped the last line, which ends {where} (complete records only)"
                    )
            digest.update(data[:kept])
            frame = _csv_batch(body, names, line0, file, longest)
            sr.done_bytes = chunk.offset + len(data)
            if frame is not None:
                rows += len(frame)
                yield frame, []
        if rows == 0:
            raise ImportValidationError([Issue(file, "the file has a header but no data rows")])
        sr.sha256 = digest.hexdigest()

    sr.batches = batches
    return sr


def _row_lines(lines: list[bytes]) -> list[int]:
    """Indices of the non-blank lines (one CSV row each)."""
    return [i for i, ln in enumerate(lines) if ln.strip(b"\r \t")]


def _csv_batch(
    body: bytes, names: list[str], line0: int, file: str, longest: int
) -> pd.DataFrame | None:
    """The rows of `body` (whole lines from line `line0`) as a raw frame of strings."""
    lines = body.split(b"\n")
    at = _row_lines(lines)
    if not at:
        return None
    locs = line0 + np.asarray(at, dtype=np.int64)
    rows = [lines[i] for i in at]
    if len(at) != sum(1 for ln in lines if ln not in (b"", b"\r")):
        # lines of white space only hold no row (Arrow would read one-field rows there)
        body = b"\n".join(rows) + b"\n"
    try:
        table = pacsv.read_csv(
            pa.BufferReader(body),
            read_options=pacsv.ReadOptions(
                column_names=names, use_threads=True, block_size=max(4 << 20, 2 * longest + 2)
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={c: pa.string() for c in names},
                strings_can_be_null=True,
                null_values=[""],
            ),
        )
    except pa.ArrowInvalid as exc:
        raise ImportValidationError(
            [Issue(file, f"CSV parse error: {_csv_msg(exc)}", line=_bad_row(rows, locs, names))]
        ) from exc
    # one row per non-blank line (values hold no newlines here): fewer rows means the
    # parser swallowed lines, as a file cut off inside a quoted field does
    if len(at) != table.num_rows:
        raise ImportValidationError(
            [
                Issue(
                    file,
                    f"{len(at)} data lines but {table.num_rows} rows could be read: a "
                    "quoted field is never closed",
                    line=int(locs[min(table.num_rows, len(at) - 1)]),
                )
            ]
        )
    frame = table.to_pandas(types_mapper=None)
    frame = frame.astype(object).where(frame.notna(), None)
    frame["_loc"] = locs
    return frame


def _bad_row(rows: list[bytes], locs: np.ndarray, names: list[str]) -> int | None:
    """The line of the first row whose number of fields is not the header's."""
    for row, loc in zip(rows, locs, strict=True):
        try:
            fields = next(csv.reader([row.decode("utf-8", "replace").rstrip("\r")]))
        except csv.Error:
            return int(loc)
        if len(fields) != len(names):
            return int(loc)
    return None


def _csv_msg(exc: Exception) -> str:
    msg = str(exc)
    return msg.replace("CSV parse error: ", "")[:300]


def stream_long_jsonl(
    path: Path, opts: ReadOptions | None = None, chunk_bytes: int | None = None
) -> StreamRead:
    """A long-format JSON Lines file read in chunks of whole lines: one batch of records
    per chunk, ``_loc`` their line numbers."""

    def build(
        lines: Iterator[tuple[int, dict[str, Any]]], file: str, issues: IssueList
    ) -> pd.DataFrame | None:
        records: list[dict[str, Any]] = []
        locs: list[int] = []
        for line_no, obj in lines:
            records.append(obj)
            locs.append(line_no)
        if not records:
            return None
        frame = pd.DataFrame.from_records(records)
        frame = frame.astype(object).where(frame.notna(), None)
        frame["_loc"] = np.asarray(locs, dtype=np.int64)
        return frame

    return _stream_json(path, opts, chunk_bytes, "long-jsonl", build)


def stream_wide_jsonl(
    path: Path, opts: ReadOptions | None = None, chunk_bytes: int | None = None
) -> StreamRead:
    """A wide JSON Lines file (one line per problem and LLM, with lists of answers,
    correctness and scores) read in chunks of whole lines, each expanded to long rows."""

    def build(
        lines: Iterator[tuple[int, dict[str, Any]]], file: str, issues: IssueList
    ) -> pd.DataFrame | None:
        rows: dict[str, list[Any]] = {k: [] for k in WIDE_COLUMNS}
        present: set[str] = set()
        for line_no, obj in lines:
            _expand_wide(obj, line_no, file, rows, present, issues)
        if not rows["_loc"]:
            return None
        frame = pd.DataFrame({k: v for k, v in rows.items() if k in present or k == "_loc"})
        frame["_loc"] = frame["_loc"].astype(np.int64)
        return frame

    return _stream_json(path, opts, chunk_bytes, "wide-jsonl", build)


def _objects(
    lines: Iterator[tuple[int, Any]], file: str, issues: IssueList
) -> Iterator[tuple[int, dict[str, Any]]]:
    """The JSON objects of decoded lines; anything else is an issue of its line."""
    for line_no, obj in lines:
        if isinstance(obj, dict):
            yield line_no, obj
        else:
            issues.add(
                Issue(file, f"expected a JSON object, got {type(obj).__name__}", line=line_no)
            )


#: Fields whose absence means something else than a null: a default LLM / verifier name,
#: grading by string match, answer keys from the answers, one cluster per response. A
#: streamed file whose later records bring one of them that its first batch lacked is
#: refused (read whole, the early records would have had nulls there).
MEANINGFUL_FIELDS = ("answer", "answer_key", "is_correct", "llm", "verifier")


def _stream_json(
    path: Path,
    opts: ReadOptions | None,
    chunk_bytes: int | None,
    fmt: str,
    build: Callable[[Iterator[tuple[int, dict[str, Any]]], str, IssueList], pd.DataFrame | None],
) -> StreamRead:
    """A JSON Lines file in chunks of whole lines; `build` makes one chunk's objects
    (line number, object) into a raw long frame (None: no row)."""
    file = display_name(path)
    size = _regular_file(path).st_size
    skipped: list[tuple[int, str]] | None = (
        [] if opts is not None and opts.complete_records_only else None
    )
    sr = StreamRead(path, fmt, "line", "", 0, lambda: iter(()), size=size)

    def batches() -> Iterator[tuple[pd.DataFrame | None, list[Issue]]]:
        digest = hashlib.sha256()
        columns: list[str] = []
        first_loc = 0
        rows = 0
        found = 0
        for chunk in line_chunks(path, file, chunk_bytes or TEXT_CHUNK_BYTES, digest=digest):
            issues = IssueList()
            if chunk.overlong:
                issue = _overlong(file, chunk.overlong, chunk.first_line)
                if skipped is not None:
                    skipped.append((chunk.first_line, issue.message))
                else:
                    issues.add(issue)
                frame = None
            else:
                text = decode_utf8(chunk.data, file, chunk.first_line, chunk.offset)
                lines = iter_json_lines(text, file, issues, skipped, chunk.first_line)
                frame = build(_objects(lines, file, issues), file, issues)
            if frame is not None:
                if not columns:
                    columns, first_loc = list(frame.columns), int(frame["_loc"].iloc[0])
                for c in [c for c in frame.columns if c not in columns]:
                    columns.append(c)
                    if c in MEANINGFUL_FIELDS:
                        given = frame["_loc"].to_numpy()[frame[c].notna().to_numpy()]
                        at = int(given[0] if given.size else frame["_loc"].iloc[0])
                        issues.add(
                            Issue(
                                file,
                                f"the field {c!r} first appears on line {at}, but the "
                                f"records before it (from line {first_loc}) lack it: give "
                                "it in every record (null where unknown)",
                                line=first_loc,
                                column=c,
                            )
                        )
                for c in columns:
                    if c not in frame.columns:
                        frame[c] = None
                rows += len(frame)
            found += len(issues)
            sr.done_bytes = chunk.offset + len(chunk.data) + chunk.overlong
            yield frame, issues.issues
        if skipped:
            sr.notes.append(skipped_note(file, skipped))
        if rows == 0 and not found:
            raise ImportValidationError(
                [
                    Issue(
                        file,
                        "no complete record in the file"
                        if skipped
                        else "no records found in the file",
                    )
                ]
            )
        sr.sha256 = digest.hexdigest()

    sr.batches = batches
    return sr


def read_long_parquet(path: Path, opts: ReadOptions | None = None) -> RawRead:
    """The whole file at once: the batches of `stream_long_parquet` put together."""
    return whole_read(stream_long_parquet(path, opts))


#: Rows validated at once by a streamed import (memory grows with this, not the file).
STREAM_BATCH_ROWS = 500_000


@dataclass
class StreamRead:
    """A file read in batches by a streamed import (`batches` yields raw long frames
    whose ``_loc`` continue across batches, each with the problems found while reading
    it, such as NaN in a float column or an undecodable JSON line; None where a batch
    held no row). A text file's ``sha256`` is known once its batches were read."""

    path: Path
    fmt: str
    loc_kind: str
    sha256: str
    n_rows: int
    batches: Callable[[], Iterator[tuple[pd.DataFrame | None, list[Issue]]]]
    notes: list[str] = field(default_factory=list)
    grade: bool = False
    files: list[Path] | None = None
    lower_is_better: tuple[str, ...] = ()
    #: the file's size and how much of it the batches read so far (progress of a file
    #: whose number of rows is not known before it is read: ``n_rows`` 0)
    size: int = 0
    done_bytes: int = 0


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

    def batches() -> Iterator[tuple[pd.DataFrame | None, list[Issue]]]:
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
    """The whole file at once: the batches of `stream_wide_jsonl` put together."""
    return whole_read(stream_wide_jsonl(path, opts))


WIDE_COLUMNS = (
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
