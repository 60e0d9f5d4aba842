"""Import scored-response files into the store.

`import_path` is the one public entry point used by the CLI and the dashboard: it detects
the format (or takes one), reads every file, grades answers where the format needs it
(`core.importers.grade`, in worker processes), validates, and writes the dataset in one
transaction. A folder is imported as one dataset made of all its files (an OpenR run
folder: of its ``question_K/record_J.jsonl`` files); links that lead out of the folder are
never followed.

Formats: the generic long (CSV / JSONL / Parquet) and wide JSONL formats, and the output
formats of public test-time-scaling tools, each in its own module: `sal`
(search-and-learn), `prm800k`, `qwen_rm` (Qwen2.5-Math rm_maj_eval), `openr`, `boinf`,
`rewardmath`.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from core.importers import boinf, openr, prm800k, qwen_rm, rewardmath, sal
from core.importers.budget import ImportStopped, WorkBudget
from core.importers.common import check_free_name, direction_meta, shown_path
from core.importers.errors import ImportValidationError, Issue, IssueList, loads
from core.importers.generic import (
    SUPPORTED_SUFFIXES,
    RawRead,
    ReadOptions,
    StreamRead,
    _regular_file,
    collect_files,
    decode_utf8,
    read_bytes,
    read_long_csv,
    read_long_jsonl,
    read_long_parquet,
    read_wide_jsonl,
    stream_long_csv,
    stream_long_jsonl,
    stream_long_parquet,
    stream_wide_jsonl,
)
from core.importers.grade import GradeSummary, grade_frame
from core.importers.limits import MAX_LINE_CHARS
from core.importers.sqlcheck import unreadable
from core.importers.staging import Staging
from core.importers.typed import TypedImport
from core.importers.validate import (
    LONG_COLUMNS,
    ValidationContext,
    check_answer_lengths,
    to_canonical,
)
from core.store import DatasetInfo, Store, resolve_storage

Reader = Callable[[Path, ReadOptions], RawRead]

READERS: dict[str, Reader] = {
    "long-csv": read_long_csv,
    "long-jsonl": read_long_jsonl,
    "long-parquet": read_long_parquet,
    "wide-jsonl": read_wide_jsonl,
    sal.FMT: sal.read_sal,
    prm800k.FMT: prm800k.read_prm800k,
    qwen_rm.FMT: qwen_rm.read_qwen_rm,
    openr.FMT: openr.read_openr,
    boinf.FMT: boinf.read_boinf,
    rewardmath.FMT: rewardmath.read_rewardmath,
}
#: The formats read in batches by an import (memory bounded by one batch).
STREAMERS: dict[str, Callable[[Path, ReadOptions], StreamRead]] = {
    "long-csv": stream_long_csv,
    "long-jsonl": stream_long_jsonl,
    "long-parquet": stream_long_parquet,
    "wide-jsonl": stream_wide_jsonl,
}
FORMAT_HELP: dict[str, str] = {
    "long-csv": "CSV, one row per response and verifier score",
    "long-jsonl": "JSON Lines, one object per response and verifier score",
    "long-parquet": "Parquet, one row per response and verifier score",
    "wide-jsonl": "JSON Lines, one object per problem with lists of answers and scores",
    sal.FMT: sal.HELP,
    prm800k.FMT: prm800k.HELP,
    qwen_rm.FMT: qwen_rm.HELP,
    openr.FMT: openr.HELP,
    boinf.FMT: boinf.HELP,
    rewardmath.FMT: rewardmath.HELP,
}
#: What detection looks for, in the order it checks (shown when nothing matches).
DETECTION_RULES = (
    "an OpenR record has 'question' and an 'output' list of objects with 'value' / "
    "'extracted_answer' (a folder: question_K/record_J.jsonl files)",
    "a search-and-learn line has 'completions' and 'scores' lists",
    "a PRM800K sample has 'prm_score', 'orm_score' or 'rating_probs'",
    "a Qwen rm_maj line has 'pred' and 'pred_score' lists",
    "a BoInf line has 'all_answers' and 'answer_counts' (or 'majority_answer')",
    "a RewardMATH file is an array of objects with 'score' and 'solution_reference' lists",
    "a wide-format line has an 'answers' or 'scores' list",
    "a long-format line has 'problem_id' and 'sample_idx'",
)

ProgressFn = Callable[[str, int, int], None]

#: A long Parquet file with typed columns is checked and staged as queries
#: (`core.importers.typed`); off, every file takes the batch path (tests compare the two).
TYPED_PATH = True


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
    """Name of the reader for `path` (a file or folder), decided from its suffix and content.

    A folder is an OpenR run when it holds ``question_K/record_J.jsonl`` files; other
    folders are read file by file.
    """
    if path.is_dir():
        if openr.is_run_folder(path):
            return openr.FMT
        raise ImportValidationError(
            [Issue(path.name, "a folder is read file by file; give the format of a file")]
        )
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "long-csv"
    if suffix in (".parquet", ".pq"):
        return "long-parquet"
    if suffix in (".jsonl", ".json"):
        first = _first_json_record(path)
        for fmt, test in (
            (openr.FMT, openr.is_openr),
            (sal.FMT, sal.is_sal),
            (prm800k.FMT, prm800k.is_prm800k),
            (qwen_rm.FMT, qwen_rm.is_qwen_rm),
            (boinf.FMT, boinf.is_boinf),
            (rewardmath.FMT, rewardmath.is_rewardmath),
        ):
            if test(first):
                return fmt
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
                    "the file matches no known format: "
                    + "; ".join(DETECTION_RULES)
                    + f" (known formats: {', '.join(READERS)})",
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
    """The first record of a JSON Lines file, or of a JSON document (its first element when
    it is an array); None when there is none or it cannot be decoded. Reads the first
    non-blank line only, unless it is the start of a document over many lines."""
    first_line: bytes | None = None
    _regular_file(path)
    with path.open("rb") as fh:
        while first_line is None and (line := fh.readline(MAX_LINE_CHARS + 1)):
            first_line = line if line.strip() else None
    if first_line is None:
        raise ImportValidationError([Issue(path.name, "the file is empty")])
    try:
        obj = loads(first_line)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        if first_line.strip()[:1] not in (b"[", b"{"):
            return None
        data = read_bytes(path)
        try:  # one JSON document over many lines
            obj = loads(decode_utf8(data, path.name))
        except json.JSONDecodeError:
            truncated = b"\n" not in data.strip()
            why = (
                "the file ends inside it (truncated)"
                if truncated
                else getattr(exc, "msg", str(exc))[:160]
            )
            raise ImportValidationError(
                [
                    Issue(
                        path.name,
                        f"cannot detect the format: the first record is not valid JSON ({why})",
                        line=1,
                    )
                ]
            ) from exc
    if isinstance(obj, list):
        return obj[0] if obj else None
    return obj


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
    complete_records_only: bool = False,
    llm: str | None = None,
    verifier: str | None = None,
    include: str | None = None,
    lower_is_better: Sequence[str] = (),
    higher_is_better: Sequence[str] = (),
    actor: str = "",
    time_limit_s: float | None = None,
    cancel: threading.Event | None = None,
    cpu_limit_s: float | None = None,
    storage: str = "auto",
) -> ImportResult:
    """Read, grade (where needed), validate and store one file or folder as one dataset
    (recorded in the store's audit table under `actor`; default the OS user).

    ``storage``: where the score rows are kept (`Store.ingest_staged`): ``auto`` (the
    DuckDB file, or partitioned Parquet beside it from `PARQUET_MIN_SCORES` rows),
    ``table`` or ``parquet``.

    ``time_limit_s`` / ``cpu_limit_s`` / ``cancel``: an overall budget of wall-clock and
    CPU time (grading workers included; see `WorkBudget`) for reading, grading,
    validating and writing, and an event that stops the import when set; each ends it
    with `ImportStopped` at the next progress step or within a quarter second while
    grading (grading workers are stopped), and nothing is stored.

    ``include``: for a folder, import only the files whose name matches this glob
    pattern (e.g. ``analysis_aime2024_*``).

    ``complete_records_only``: skip JSON lines that cannot be decoded (e.g. the cut-off
    last line of a truncated file) and report them in the notes instead of failing.
    ``llm`` / ``verifier``: name of the LLM / verifier of every response, replacing the
    name the format gives (default ``model``, or a name from the file or folder); refused
    when the input holds several LLMs / verifiers.
    ``lower_is_better`` / ``higher_is_better``: verifiers whose direction is declared (a
    format may declare one, e.g. BoInf's length; what is given here wins); the others'
    direction is estimated on calibration problems by every analysis.
    """
    budget = WorkBudget(time_limit_s, cpu_limit_s, cancel)
    user_progress = progress

    last: list[tuple[str, int, int]] = [("starting", 0, 1)]

    def guarded(stage: str, done: int, total: int) -> None:
        last[0] = (stage, done, total)
        budget.check(stage)
        if user_progress is not None:
            user_progress(stage, done, total)

    progress = guarded

    p = Path(path)
    if not p.exists():
        raise ImportValidationError([Issue(shown_path(p), "no such file or folder")])
    if fmt != "auto" and fmt not in READERS:
        raise ImportValidationError(
            [Issue(shown_path(p), f"unknown format {fmt!r}; known: auto, {', '.join(READERS)}")]
        )
    opts = ReadOptions(complete_records_only=complete_records_only)
    extra_notes: list[str] = []
    run_folder = False
    if p.is_dir():
        files, extra_notes = collect_files(p)
        if include is not None:
            files = [f for f in files if fnmatch.fnmatch(f.name, include)]
            extra_notes.append(f"only files matching {include!r}")
        run_folder = fmt == openr.FMT or (fmt == "auto" and bool(openr.record_files(p, files)))
        if run_folder:
            records = openr.record_files(p, files)
            others = [f for f in files if f not in set(records)]
            if others:
                shown = ", ".join(str(f.relative_to(p)) for f in others[:5])
                more = f" and {len(others) - 5} more" if len(others) > 5 else ""
                extra_notes.append(
                    f"OpenR run folder: read the question_K/record_J.jsonl files; "
                    f"ignored {shown}{more}"
                )
            files = records
        if not files:
            raise ImportValidationError(
                [
                    Issue(
                        shown_path(p),
                        f"the folder holds no data files ({', '.join(SUPPORTED_SUFFIXES)})",
                    )
                ]
            )
    else:
        files = [p]
    ds_name = name if name is not None else p.stem
    check_free_name(store, ds_name, p, replace)
    if (
        TYPED_PATH
        and p.is_file()
        and llm is None
        and verifier is None
        and (fmt == "long-parquet" or (fmt == "auto" and p.suffix.lower() in (".parquet", ".pq")))
    ):
        typed = _import_typed(
            store,
            p,
            name=ds_name,
            progress=progress,
            replace=replace,
            iid=iid,
            simulated=simulated,
            notes=notes,
            lower_is_better=lower_is_better,
            higher_is_better=higher_is_better,
            actor=actor,
            storage=storage,
        )
        if typed is not None:
            return typed
    total = len(files) + 5
    reads: list[RawRead | StreamRead] = []
    read_files: list[Path] = []
    issues = IssueList()
    if run_folder:
        progress(f"reading {len(files)} OpenR records", 0, total)
        reads.append(openr.read_openr_files(p, files, opts))
        read_files = [p]  # one read of the whole run
    else:
        for k, f in enumerate(files):
            progress(f"reading {f.name}", k, total)
            try:
                kind = detect_format(f) if fmt == "auto" else fmt
                # the generic formats are read and validated in batches (memory
                # bounded by one)
                reads.append(
                    STREAMERS[kind](f, opts) if kind in STREAMERS else READERS[kind](f, opts)
                )
                read_files.append(f)
            except ImportValidationError as exc:
                issues.extend(exc.issues)
    issues.raise_if_any()
    rm_reads = [
        (str(f.relative_to(p)) if p.is_dir() else f.name, r)
        for f, r in zip(read_files, reads, strict=True)
        if isinstance(r, RawRead) and r.fmt == rewardmath.FMT
    ]
    if len(rm_reads) > 1:
        IssueList(rewardmath.check_same_problems(rm_reads)).raise_if_any()
    fmts = sorted({r.fmt for r in reads})
    many = len(reads) > 1
    whole = [(f, r) for f, r in zip(read_files, reads, strict=True) if isinstance(r, RawRead)]
    streams = [(f, r) for f, r in zip(read_files, reads, strict=True) if isinstance(r, StreamRead)]
    grading = any(r.grade for _, r in whole)
    loc_kind = reads[0].loc_kind if len({r.loc_kind for r in reads}) == 1 else "line/row"
    ctx = ValidationContext(files[0].name, loc_kind)
    summary: GradeSummary | None = None
    val_notes: list[str] = []
    names: dict[str, set[str]] = {"llm": set(), "verifier": set()}
    staging = Staging(store.path.parent if store.path.parent.exists() else None)

    def stage(
        raw: pd.DataFrame, lengths_checked: bool = False, ctx: ValidationContext = ctx
    ) -> None:
        """Validate one batch of raw rows and write it to the staging database."""
        for column, new in (("llm", llm), ("verifier", verifier)):
            if new is not None and column in raw.columns:
                names[column].update(str(v) for v in raw[column].dropna().unique())
        raw = _rename(raw, "llm", llm, p)
        raw = _rename(raw, "verifier", verifier, p)
        if not lengths_checked:
            check_answer_lengths(raw, ctx)
        data, notes = to_canonical(raw, ctx, keep_locs=True)
        val_notes.extend(notes)
        staging.add(data)

    try:
        if whole:
            frames = []
            for f, r in whole:
                fr = r.frame
                if many:
                    fr = fr.assign(_file=str(f.relative_to(p)))
                if grading:
                    fr = fr.assign(_grade=r.grade)
                frames.append(fr)
            raw = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
            check_answer_lengths(raw, ctx)  # before grading: the grader never sees a huge one
            if "_grade" in raw.columns:
                n_graded = int(raw["_grade"].sum())
                progress(f"grading {n_graded} answers", len(files), total)

                def grade_wait(worker_pids: list[int]) -> None:
                    # the last progress again, four times a second: limits are checked,
                    # and a caller (the dashboard) can stop the import from its progress
                    budget.see_workers(worker_pids)
                    guarded(*last[0])

                def grade_progress(done: int, n: int) -> None:
                    progress(f"grading answers: {done} of {n} problems", len(files), total)

                raw, summary = grade_frame(
                    raw,
                    raw["_grade"].to_numpy(dtype=bool),
                    files[0].name,
                    loc_kind,
                    progress=grade_progress,
                    on_wait=grade_wait,
                )
            progress("validating", len(files) + 1, total)
            stage(raw, lengths_checked=True)
            del raw, frames
        batch_issues = IssueList()
        for f, sr in streams:
            shown = str(f.relative_to(p)) if many else f.name
            file_ctx = ValidationContext(shown, sr.loc_kind)
            done_rows = 0
            for batch in _batches(sr, batch_issues):
                done_rows += len(batch)
                of = (
                    f"{done_rows:,} of {sr.n_rows:,} rows"
                    if sr.n_rows
                    else f"{done_rows:,} rows ({sr.done_bytes / max(sr.size, 1):.0%} of the file)"
                )
                progress(f"validating {f.name}: {of}", len(files) + 1, total)
                if many:
                    batch = batch.assign(_file=str(f.relative_to(p)))
                try:
                    if not batch_issues:
                        stage(batch, ctx=file_ctx)
                    else:  # stored nothing more: only look for further problems
                        check_answer_lengths(batch, file_ctx)
                        to_canonical(batch, file_ctx)
                except ImportValidationError as exc:
                    batch_issues.extend(exc.issues)
                if len(batch_issues) >= MAX_ISSUES:
                    break
        batch_issues.raise_if_any()
        for column, seen in names.items():
            if len(seen) > 1:
                _rename(pd.DataFrame({column: sorted(seen)}), column, "x", p)  # raises
        progress("checking across batches", len(files) + 1, total)
        IssueList(staging.cross_checks(loc_kind)).raise_if_any()
        figures = staging.finish()
        sha = (
            reads[0].sha256
            if not many
            else hashlib.sha256(
                "".join(
                    f"{f.relative_to(p)}:{r.sha256}\n"
                    for f, r in zip(read_files, reads, strict=True)
                ).encode()
            ).hexdigest()
        )
        all_notes = [*extra_notes]
        if len(fmts) > 1:
            per = Counter(r.fmt for r in reads)
            all_notes.append(
                "the folder mixes formats ("
                + ", ".join(f"{k}: {v} file{'s' if v != 1 else ''}" for k, v in sorted(per.items()))
                + "); their records were merged into one dataset"
            )
        for rd in reads:
            all_notes.extend(rd.notes)
        all_notes.extend(val_notes)
        if summary is not None:
            all_notes.extend(summary.notes())
        all_notes = list(dict.fromkeys(all_notes))  # a folder of like files repeats its notes
        declared = {v for r in reads for v in r.lower_is_better}
        if verifier is not None and declared:
            declared = {verifier}  # the one verifier was renamed

        def ingest_progress(stage: str, i: int, n: int) -> None:
            progress(f"writing {stage}", len(files) + 2 + i, total)

        grader = (
            summary.grader
            if summary is not None
            else next(
                (n.split(": ", 1)[1] for n in val_notes if n.startswith("correctness: ")), None
            )
        )
        shown_files = reads[0].files if run_folder and reads[0].files is not None else read_files
        result = _store_staged(
            store,
            staging.path,
            figures,
            source=p,
            name=ds_name,
            fmt="+".join(fmts),
            sha=sha,
            all_notes=all_notes,
            grader=grader,
            declared_low=declared,
            lower_is_better=lower_is_better,
            higher_is_better=higher_is_better,
            replace=replace,
            iid=iid,
            simulated=simulated,
            notes=notes,
            actor=actor,
            storage=storage,
            progress=ingest_progress,
            files=tuple(str(f) for f in shown_files),
        )
        progress("done", total, total)
        return result
    finally:
        staging.close()


def _import_typed(
    store: Store,
    p: Path,
    *,
    name: str,
    progress: ProgressFn,
    lower_is_better: Sequence[str],
    higher_is_better: Sequence[str],
    replace: bool,
    iid: bool,
    simulated: bool,
    notes: str | None,
    actor: str,
    storage: str,
) -> ImportResult | None:
    """A typed long Parquet file checked and staged as queries (`core.importers.typed`);
    None when the file is not typed so (the batch path reads it)."""
    job = TypedImport.open(p, store.path.parent if store.path.parent.exists() else None)
    if job is None:
        return None
    stages = ("checking every row", "answer keys", "checking across rows", "building the tables")
    total = len(stages) + 5
    try:
        progress(f"reading {p.name}", 0, total)
        where = resolve_storage(storage, job.rows)
        try:
            figures, val_notes, sha = job.run(
                lambda stage: progress(stage, 1 + stages.index(stage), total), where
            )
        except duckdb.Error as exc:
            raise unreadable(p.name, exc) from exc

        def ingest_progress(stage: str, i: int, n: int) -> None:
            progress(f"writing {stage}", len(stages) + 1 + i, total)

        job.check_unchanged()
        result = _store_staged(
            store,
            job.staged,
            figures,
            source=p,
            name=name,
            fmt="long-parquet",
            sha=sha,
            all_notes=val_notes,
            grader="labels from file",
            declared_low=set(),
            lower_is_better=lower_is_better,
            higher_is_better=higher_is_better,
            replace=replace,
            iid=iid,
            simulated=simulated,
            notes=notes,
            actor=actor,
            storage=where,
            progress=ingest_progress,
            files=(str(p),),
        )
        progress("done", total, total)
        return result
    finally:
        job.close()


def _store_staged(
    store: Store,
    staged: Path,
    figures: dict[str, Any],
    *,
    source: Path,
    name: str,
    fmt: str,
    sha: str,
    all_notes: list[str],
    grader: str | None,
    declared_low: set[str],
    lower_is_better: Sequence[str],
    higher_is_better: Sequence[str],
    replace: bool,
    iid: bool,
    simulated: bool,
    notes: str | None,
    actor: str,
    storage: str,
    progress: ProgressFn,
    files: tuple[str, ...],
) -> ImportResult:
    """The last step of every import: the declared directions checked against the
    verifiers found, and the staged tables copied into the store in one transaction."""
    meta = direction_meta(
        source, figures["verifiers"], declared_low, lower_is_better, higher_is_better
    )
    kept = [n for n in all_notes if not n.startswith("correctness: ")]
    info = store.ingest_staged(
        staged,
        figures,
        actor=actor,
        name=name,
        source_format=fmt,
        content_sha256=sha,
        source_path=str(source),
        replace=replace,
        iid=iid,
        simulated=simulated,
        grader=grader,
        notes="; ".join([*kept, *([notes] if notes else [])]) or None,
        meta=meta,
        progress=progress,
        storage=storage,
    )
    return ImportResult(
        info=info,
        files=files,
        fmt=fmt,
        notes=tuple(kept) + ((f"correctness: {grader}",) if grader else ()),
    )


#: Problems collected from the batches of a streamed file before the import stops.
MAX_ISSUES = 1000


def _batches(sr: StreamRead, issues: IssueList) -> Iterator[pd.DataFrame]:
    """The batches of a streamed file. The problems found while reading a batch (NaN in
    a float column, a line that is not JSON) go to `issues` and the batch is still
    validated; damaged data that cannot be read ends the file with its error."""
    try:
        for frame, found in sr.batches():
            issues.extend(found)
            if frame is not None:
                yield frame
    except ImportValidationError as exc:
        issues.extend(exc.issues)


def _rename(raw: pd.DataFrame, column: str, new: str | None, p: Path) -> pd.DataFrame:
    """Give every row the LLM / verifier name ``new`` (None: keep the names)."""
    if new is None:
        return raw
    if not new.strip():
        raise ImportValidationError([Issue(shown_path(p), f"the {column} name must not be empty")])
    if column in raw.columns:
        names = sorted({str(v) for v in raw[column].dropna().unique()})
        if len(names) > 1:
            raise ImportValidationError(
                [
                    Issue(
                        shown_path(p),
                        f"cannot name the {column} {new!r}: the input holds several "
                        f"({', '.join(names[:10])})",
                        column=column,
                    )
                ]
            )
    return raw.assign(**{column: np.full(len(raw), new, dtype=object)})


__all__ = [
    "FORMAT_HELP",
    "LONG_COLUMNS",
    "READERS",
    "SUPPORTED_SUFFIXES",
    "ImportResult",
    "ImportStopped",
    "ImportValidationError",
    "Issue",
    "ReadOptions",
    "collect_files",
    "detect_format",
    "import_path",
]
