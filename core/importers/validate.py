"""Validation of the long format and its conversion to the canonical tables.

Every reader (CSV, JSONL, Parquet, wide JSONL, and the tool-specific importers) produces a
*raw long frame*: one row per (response, verifier) with the columns of `LONG_COLUMNS` that
the file has, in whatever types the file used, plus ``_loc`` (the 1-based line or row of
the record in its file) and ``_file`` (the file's display name). `to_canonical` checks it
and returns `CanonicalData` or raises `ImportValidationError` listing every problem.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from core.importers.errors import ImportValidationError, Issue, IssueList, loads
from core.importers.limits import MAX_ANSWER_CHARS
from core.store import RESPONSE_COLUMNS, CanonicalData

# name -> description (the README's column table is written from this)
LONG_COLUMNS: dict[str, str] = {
    "problem_id": "required. Identifier of the problem (text).",
    "sample_idx": "required. Index of the response within its problem and LLM (integer >= 0).",
    "llm": "optional. Name of the LLM that wrote the response (default 'model').",
    "verifier": "optional. Name of the verifier / signal (default 'score').",
    "score": "required unless step_scores is given. The verifier's score (finite number).",
    "step_scores": "optional. Per-step scores (JSON list in CSV; list in JSONL/Parquet); "
    "non-empty, finite. If score is absent, score = last step.",
    "answer": "optional. The response's final answer as text.",
    "answer_key": "optional. Equivalence-cluster key of the answer within its problem "
    "(default: the normalised answer).",
    "is_correct": "required unless answer and gold_answer are given. true/false, 1/0.",
    "gold_answer": "optional. Reference answer; must agree across a problem's rows.",
    "n_tokens": "optional. Length of the response in tokens (integer >= 0).",
    "level": "optional. Difficulty level (integer, or text such as 'Level 3').",
    "subject": "optional. Subject of the problem.",
    "problem_text": "optional. Text of the problem.",
}
REQUIRED = ("problem_id", "sample_idx")
DEFAULT_LLM = "model"
DEFAULT_VERIFIER = "score"
MAX_ISSUES_PER_CHECK = 1000  # keep memory bounded on hopeless files
MAX_SAMPLE_IDX = 2**31 - 1  # sample indices are stored as 32-bit integers
MAX_TOKENS = 2**53  # token counts are exact as doubles below this

_TRUE = {"true", "1", "yes", "y", "t", "correct"}
_FALSE = {"false", "0", "no", "n", "f", "incorrect"}


@dataclass(frozen=True)
class ValidationContext:
    file: str
    loc_kind: str = "line"  # "line" for text formats, "row" for Parquet
    files: np.ndarray | None = None  # per-row file name when a folder was read

    def file_at(self, j: int) -> str:
        return str(self.files[j]) if self.files is not None else self.file


def basic_answer_key(ans: str) -> str:
    """Cheap canonical form of an answer used when the file gives no answer_key."""
    s = ans.strip()
    s = re.sub(r"^\$+|\$+$", "", s)
    s = re.sub(r"\\boxed\{(.*)\}$", r"\1", s)
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = s.replace("\\left", "").replace("\\right", "")
    s = re.sub(r"\^\{?\\circ\}?", "", s)
    s = s.replace("\\!", "").replace("\\,", "").replace("\\ ", "")
    s = re.sub(r"\s+", "", s)
    s = s.rstrip(".")
    return s


def suggest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_columns(columns: list[str], ctx: ValidationContext, issues: IssueList) -> None:
    known = list(LONG_COLUMNS)
    cols = [c for c in columns if not c.startswith("_")]
    unknown = [c for c in cols if c not in LONG_COLUMNS]
    present = set(cols)

    def missing(col: str, why: str) -> None:
        close = difflib.get_close_matches(col, unknown, n=1, cutoff=0.6)
        hint = f" (found {close[0]!r}: rename it to {col!r}?)" if close else ""
        issues.add(Issue(ctx.file, f"missing column{hint}; {why}", column=col))

    for col in REQUIRED:
        if col not in present:
            missing(col, LONG_COLUMNS[col])
    if "score" not in present and "step_scores" not in present:
        missing("score", "give score or step_scores")
    if "is_correct" not in present and not {"answer", "gold_answer"} <= present:
        missing("is_correct", "give is_correct, or answer and gold_answer")
    for col in unknown:
        hint = suggest(col, known)
        if hint:
            issues.add(Issue(ctx.file, f"unknown column{hint}", column=col))


def _bad(
    issues: IssueList,
    ctx: ValidationContext,
    locs: np.ndarray,
    mask: np.ndarray,
    column: str,
    message: Callable[[int], str],
) -> None:
    idx = np.flatnonzero(mask)
    for j in idx[:MAX_ISSUES_PER_CHECK]:
        issues.add(
            Issue(
                ctx.file_at(int(j)),
                message(int(j)),
                line=int(locs[j]),
                column=column,
                location_kind=ctx.loc_kind,
            )
        )


#: columns whose text is an answer (their length is limited: MAX_ANSWER_CHARS)
ANSWER_COLUMNS = ("answer", "gold_answer", "answer_key")


def _too_long_message(lengths: np.ndarray) -> Callable[[int], str]:
    return lambda j: (
        f"{int(lengths[j]):,} characters; an answer may have at most " + (f"{MAX_ANSWER_CHARS:,}")
    )


def check_answer_lengths(raw: pd.DataFrame, ctx: ValidationContext) -> None:
    """Refuse answers longer than MAX_ANSWER_CHARS before anything parses or grades them."""
    issues = IssueList()
    locs = raw["_loc"].to_numpy() if "_loc" in raw.columns else np.arange(1, len(raw) + 1)
    if "_file" in raw.columns:
        ctx = ValidationContext(ctx.file, ctx.loc_kind, raw["_file"].to_numpy(dtype=object))
    for col in ANSWER_COLUMNS:
        if col not in raw.columns or pd.api.types.is_numeric_dtype(raw[col]):
            continue
        values = raw[col]
        if isinstance(values.array, pd.arrays.ArrowExtensionArray) and pa.types.is_string(
            values.array._pa_array.type
        ):  # Arrow strings (Parquet): characters counted in Arrow, not row by row
            lengths = (
                pc.utf8_length(values.array._pa_array).fill_null(0).to_numpy(zero_copy_only=False)
            )
        else:
            lengths = values.map(lambda v: len(v) if isinstance(v, str) else 0).to_numpy()
        too_long = lengths > MAX_ANSWER_CHARS
        if too_long.any():
            _bad(issues, ctx, locs, too_long, col, _too_long_message(lengths))
    issues.raise_if_any()


def _conv_text(v: Any) -> Any:
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return None
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def map_unique(series: pd.Series, fn: Callable[[Any], Any]) -> np.ndarray:
    """fn applied once per distinct value (None for missing): fast on repetitive columns.
    A column holding unhashable values (lists, objects) is mapped value by value."""
    try:
        codes, uniques = pd.factorize(series, use_na_sentinel=True)
    except TypeError:
        return np.asarray(
            [None if v is None else fn(v) for v in series.to_numpy(dtype=object)], dtype=object
        )
    mapped = np.empty(len(uniques) + 1, dtype=object)
    mapped[:-1] = [fn(u) for u in uniques]
    mapped[-1] = None
    return np.asarray(mapped[codes], dtype=object)  # code -1 (missing) -> last slot


#: inferred kinds of an object column that hold only scalars
_SCALAR_KINDS = frozenset(
    {"string", "empty", "integer", "floating", "mixed-integer-float", "boolean", "decimal"}
)


def _as_text(
    series: pd.Series,
    ctx: ValidationContext | None = None,
    locs: np.ndarray | None = None,
    column: str = "",
    issues: IssueList | None = None,
) -> pd.Series:
    """Strings with missing values as None; numbers become their text ('1', not '1.0').
    A list or object where text is expected is an error per row (with `issues`), never
    turned into its text."""
    if series.dtype == object and len(series):
        kind = pd.api.types.infer_dtype(series, skipna=True)
        if kind not in _SCALAR_KINDS:
            nested = series.map(lambda v: isinstance(v, list | tuple | dict | np.ndarray))
            bad = nested.to_numpy(dtype=bool)
            if bad.any():
                if issues is not None and ctx is not None and locs is not None:
                    vals = series.to_numpy(dtype=object)
                    _bad(
                        issues,
                        ctx,
                        locs,
                        bad,
                        column,
                        lambda j: f"expected text, got a {type(vals[j]).__name__}",
                    )
                series = series.where(~nested, None)
    return pd.Series(map_unique(series, _conv_text), index=series.index, dtype=object)


def _parse_numbers(
    series: pd.Series,
    ctx: ValidationContext,
    locs: np.ndarray,
    column: str,
    issues: IssueList,
    *,
    required: bool,
    integer: bool,
    finite: bool,
    nonneg: bool,
    upper: float | None = None,
) -> np.ndarray:
    """Numeric parse with per-row errors; returns float64 (NaN where empty and optional).
    `upper`: largest value stored exactly (sample indices fit 32 bits, token counts are
    exact below 2^53)."""
    if pd.api.types.is_bool_dtype(series.dtype):
        raw = series.astype(np.float64)
        values = raw.to_numpy(dtype=np.float64)
        empty = np.zeros(len(series), dtype=bool)
        unparsable = np.zeros(len(series), dtype=bool)
    elif pd.api.types.is_numeric_dtype(series.dtype):
        values = np.array(series.to_numpy(dtype=np.float64, na_value=np.nan))
        empty = np.isnan(values) & series.isna().to_numpy()
        unparsable = np.zeros(len(series), dtype=bool)
    else:
        text = series.astype(object)
        is_empty = text.isna() | (text.astype(str).str.strip() == "")
        empty = is_empty.to_numpy()
        # bools in JSON are not numbers
        is_boolobj = text.map(lambda v: isinstance(v, bool)).to_numpy(dtype=bool)
        values = np.array(
            pd.to_numeric(text.where(~is_empty, None), errors="coerce").to_numpy(
                dtype=np.float64, na_value=np.nan
            ),
            dtype=np.float64,
        )
        lowered = text.astype(str).str.strip().str.lower()
        literal_nan = lowered.isin(["nan", "-nan", "+nan"]).to_numpy()
        unparsable = (np.isnan(values) & ~empty & ~literal_nan) | is_boolobj
        values[is_boolobj] = np.nan
        text_values = text.to_numpy()
        _bad(
            issues,
            ctx,
            locs,
            unparsable,
            column,
            lambda j: f"expected a number, got {text_values[j]!r}",
        )
    if required:
        _bad(issues, ctx, locs, empty, column, lambda j: "missing value")
    checked = ~empty & ~unparsable
    if finite:
        nan = np.isnan(values) & checked
        _bad(issues, ctx, locs, nan, column, lambda j: "value is NaN")
        inf = np.isinf(values) & checked
        _bad(issues, ctx, locs, inf, column, lambda j: f"value is infinite ({values[j]})")
    ok = checked & np.isfinite(values)
    if integer:
        frac = ok & (np.floor(values) != values)
        _bad(
            issues,
            ctx,
            locs,
            frac,
            column,
            lambda j: f"expected an integer, got {float(values[j])!r}",
        )
    if nonneg:
        neg = ok & (values < 0)
        _bad(issues, ctx, locs, neg, column, lambda j: f"must be >= 0, got {float(values[j])!r}")
    if upper is not None:
        big = ok & (np.abs(values) > upper)
        _bad(
            issues,
            ctx,
            locs,
            big,
            column,
            lambda j: f"must be at most {upper:.0f}, got {values[j]:.0f}",
        )
        values = np.where(big, np.nan, values)
    return np.asarray(values, dtype=np.float64)


def _level_of(v: str | None) -> int | str | None:
    """A level number from text such as "Level 3"; "bad" when there is none or it is not a
    plausible level (more than six digits)."""
    if v is None:
        return None
    m = re.search(r"-?\d+", v)
    return int(m.group(0)) if m and len(m.group(0).lstrip("-")) <= 6 else "bad"


def _bool_of(v: Any) -> bool | None:
    if isinstance(v, bool | np.bool_):
        return bool(v)
    if isinstance(v, int | np.integer | float) and not isinstance(v, bool) and v in (0, 1):
        return bool(v)
    if isinstance(v, str):
        t = v.strip().lower()
        if t in _TRUE:
            return True
        if t in _FALSE:
            return False
    return None


def _parse_bools(
    series: pd.Series,
    ctx: ValidationContext,
    locs: np.ndarray,
    column: str,
    issues: IssueList,
) -> np.ndarray:
    if pd.api.types.is_bool_dtype(series.dtype) and not series.isna().any():
        return np.asarray(series.to_numpy(dtype=bool), dtype=bool)
    parsed = map_unique(series, _bool_of)
    bad = np.array([v is None for v in parsed], dtype=bool)
    values = series.to_numpy(dtype=object)
    _bad(
        issues,
        ctx,
        locs,
        bad,
        column,
        lambda j: f"expected true/false (or 1/0), got {values[j]!r}",
    )
    return np.array([bool(v) for v in parsed], dtype=bool)


STEP_TYPE = pa.list_(pa.float64())


def _steps_fast(series: pd.Series) -> pa.ListArray | None:
    """Arrow list<double> of the column when every cell is a well-formed list (or empty
    cell); None when some cell needs the careful path (which reports the problem)."""
    values = series.array
    try:
        if isinstance(values, pd.arrays.ArrowExtensionArray):
            arr = pa.array(values)
            if pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type):
                return arr.cast(STEP_TYPE)
            if not pa.types.is_string(arr.type) and not pa.types.is_large_string(arr.type):
                return None
        else:
            objs = series.to_numpy(dtype=object)
            first = next((v for v in objs if v is not None and v is not pd.NA), None)
            if first is None or not isinstance(first, str):
                lists = [None if v is None or v is pd.NA else v for v in objs]
                out = pa.array(lists, type=STEP_TYPE, from_pandas=True)
                return out if isinstance(out, pa.ListArray) else None
            arr = pa.array(objs, type=pa.string(), from_pandas=True)
        # JSON text such as "[0.5, 0.9]"
        stripped = pc.utf8_trim_whitespace(arr)
        ok_shape = pc.and_(pc.starts_with(stripped, "["), pc.ends_with(stripped, "]"))
        if not pc.all(pc.or_(ok_shape, pc.is_null(stripped))).as_py():
            return None
        inner = pc.utf8_slice_codeunits(stripped, 1, -1)
        parts = pc.split_pattern(inner, ",")
        flat = pc.utf8_trim_whitespace(pc.list_flatten(parts))
        nums = pc.cast(flat, pa.float64())
        out = pa.ListArray.from_arrays(parts.offsets, nums, mask=pc.is_null(parts))
        return out
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
        return None


def _steps_ok(arr: pa.ListArray) -> bool:
    lengths = pc.list_value_length(arr).to_numpy(zero_copy_only=False)
    valid = ~np.asarray(arr.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    if np.any(lengths[valid] == 0):
        return False
    flat = arr.flatten().to_numpy(zero_copy_only=False)
    return bool(np.all(np.isfinite(flat)))


def _parse_steps(
    series: pd.Series,
    ctx: ValidationContext,
    locs: np.ndarray,
    issues: IssueList,
) -> tuple[pa.ListArray, np.ndarray, np.ndarray]:
    """(list<double> per row, last step per row, missing-cell mask)."""
    fast = _steps_fast(series)
    if fast is not None and _steps_ok(fast):
        missing = np.asarray(fast.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        last = np.full(len(series), np.nan)
        offs = np.asarray(fast.offsets.to_numpy(), dtype=np.int64)
        flat = np.asarray(fast.values.to_numpy(zero_copy_only=False), dtype=np.float64)
        has = ~missing & (offs[1:] > offs[:-1])
        last[has] = flat[offs[1:][has] - 1]
        return fast, last, missing
    return _parse_steps_slow(series, ctx, locs, issues)


def _parse_steps_slow(
    series: pd.Series,
    ctx: ValidationContext,
    locs: np.ndarray,
    issues: IssueList,
) -> tuple[pa.ListArray, np.ndarray, np.ndarray]:
    """Cell by cell, reporting every bad cell."""
    out: list[list[float] | None] = []
    last = np.full(len(series), np.nan)
    missing = np.zeros(len(series), dtype=bool)
    n_bad = 0
    for j, v in enumerate(series.to_numpy(dtype=object)):
        problem = None
        steps: list[float] | None = None
        if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
            missing[j] = True
            out.append(None)
            continue
        if isinstance(v, str):
            txt = v.strip()
            if txt == "":
                missing[j] = True
                out.append(None)
                continue
            try:
                v = loads(txt)
            except json.JSONDecodeError:
                problem = f"expected a JSON list of numbers, got {txt[:40]!r}"
        if problem is None:
            if isinstance(v, np.ndarray):
                v = v.tolist()
            if not isinstance(v, list | tuple):
                problem = f"expected a list of numbers, got {v!r}"[:120]
            elif len(v) == 0:
                problem = "empty step-score list"
            elif any(isinstance(x, bool) or x is None for x in v):
                problem = f"step scores must be numbers, got {list(v)[:6]!r}"[:120]
            else:
                try:
                    steps = [float(x) for x in v]
                except (TypeError, ValueError):
                    problem = f"step scores must be numbers, got {list(v)[:6]!r}"[:120]
                else:
                    if not all(math.isfinite(x) for x in steps):
                        problem = "step scores contain NaN or infinite values"
                        steps = None
        if problem is not None:
            n_bad += 1
            if n_bad <= MAX_ISSUES_PER_CHECK:
                issues.add(
                    Issue(
                        ctx.file_at(j),
                        problem,
                        line=int(locs[j]),
                        column="step_scores",
                        location_kind=ctx.loc_kind,
                    )
                )
            steps = None
        out.append(steps)
        if steps:
            last[j] = steps[-1]
    arr = pa.array(out, type=STEP_TYPE)
    assert isinstance(arr, pa.ListArray)
    return arr, last, missing


def to_canonical(
    raw: pd.DataFrame,
    ctx: ValidationContext,
    *,
    key_fn: Callable[[str], str] = basic_answer_key,
    keep_locs: bool = False,
) -> tuple[CanonicalData, list[str]]:
    """Validate a raw long frame; return canonical tables and notes (or raise).

    Notes are human-readable remarks about defaults that were applied. ``keep_locs``: each
    table also has ``_file`` and ``_loc``, where its row first appears (the checks across
    the batches of a streamed import name them).
    """
    issues = IssueList()
    notes: list[str] = []
    if len(raw) == 0:
        raise ImportValidationError([Issue(ctx.file, "no records found in the file")])
    check_columns([str(c) for c in raw.columns], ctx, issues)
    # Column-level problems make row checks meaningless.
    issues.raise_if_any()
    n = len(raw)
    locs = raw["_loc"].to_numpy(dtype=np.int64)
    if "_file" in raw.columns and ctx.files is None:
        ctx = ValidationContext(ctx.file, ctx.loc_kind, raw["_file"].to_numpy(dtype=object))

    problem_id = _as_text(raw["problem_id"], ctx, locs, "problem_id", issues)
    _bad(issues, ctx, locs, problem_id.isna().to_numpy(), "problem_id", lambda j: "missing value")
    sample_idx = _parse_numbers(
        raw["sample_idx"],
        ctx,
        locs,
        "sample_idx",
        issues,
        required=True,
        integer=True,
        finite=True,
        nonneg=True,
        upper=MAX_SAMPLE_IDX,
    )
    if "llm" in raw.columns:
        llm = _as_text(raw["llm"], ctx, locs, "llm", issues)
        _bad(issues, ctx, locs, llm.isna().to_numpy(), "llm", lambda j: "missing value")
    else:
        llm = pd.Series([DEFAULT_LLM] * n, dtype=object)
        notes.append(f"no 'llm' column: all responses attributed to LLM {DEFAULT_LLM!r}")
    if "verifier" in raw.columns:
        verifier = _as_text(raw["verifier"], ctx, locs, "verifier", issues)
        _bad(issues, ctx, locs, verifier.isna().to_numpy(), "verifier", lambda j: "missing value")
    else:
        verifier = pd.Series([DEFAULT_VERIFIER] * n, dtype=object)
        notes.append(f"no 'verifier' column: scores attributed to verifier {DEFAULT_VERIFIER!r}")

    steps: pa.ListArray | None = None
    steps_missing = np.ones(n, dtype=bool)
    last_step = np.full(n, np.nan)
    if "step_scores" in raw.columns:
        steps, last_step, steps_missing = _parse_steps(raw["step_scores"], ctx, locs, issues)
    if "score" in raw.columns:
        score = _parse_numbers(
            raw["score"],
            ctx,
            locs,
            "score",
            issues,
            required=steps is None,
            integer=False,
            finite=True,
            nonneg=False,
        )
        if steps is not None:
            score_col = raw["score"]
            score_empty = np.array(score_col.isna().to_numpy(), dtype=bool)
            if score_col.dtype == object:
                score_empty |= (score_col.astype(str).str.strip() == "").to_numpy()
            fill = score_empty & ~np.isnan(last_step)
            score[fill] = last_step[fill]
            _bad(
                issues,
                ctx,
                locs,
                score_empty & steps_missing,
                "score",
                lambda j: "missing value (and no step scores)",
            )
    else:
        score = last_step
        notes.append("no 'score' column: score = last step score")
        _bad(issues, ctx, locs, steps_missing, "step_scores", lambda j: "missing value")

    answer = (
        _as_text(raw["answer"], ctx, locs, "answer", issues) if "answer" in raw.columns else None
    )
    gold = (
        _as_text(raw["gold_answer"], ctx, locs, "gold_answer", issues)
        if "gold_answer" in raw.columns
        else None
    )
    if "is_correct" in raw.columns:
        is_correct = _parse_bools(raw["is_correct"], ctx, locs, "is_correct", issues)
        grader = "labels from file"
    else:
        assert answer is not None and gold is not None
        a_key = pd.Series(map_unique(answer, key_fn), dtype=object)
        g_key = pd.Series(map_unique(gold, key_fn), dtype=object)
        no_gold = g_key.isna().to_numpy()
        _bad(
            issues,
            ctx,
            locs,
            no_gold,
            "gold_answer",
            lambda j: "missing value (needed to grade the answer: no is_correct column)",
        )
        is_correct = (a_key == g_key).fillna(False).to_numpy(dtype=bool)
        grader = "normalised string match"
    if "answer_key" in raw.columns:
        answer_key = _as_text(raw["answer_key"], ctx, locs, "answer_key", issues)
        _bad(
            issues, ctx, locs, answer_key.isna().to_numpy(), "answer_key", lambda j: "missing value"
        )
    elif answer is not None:
        answer_key = pd.Series(map_unique(answer, key_fn), dtype=object).fillna("")
        if answer.isna().any():
            notes.append("responses with no answer share the empty-answer cluster")
    else:
        answer_key = pd.Series(
            ["#" + str(int(s)) if not math.isnan(s) else "" for s in sample_idx], dtype=object
        )
        notes.append(
            "no 'answer' column: each response is its own answer cluster "
            "(voting equals best-of-N; use for score studies)"
        )
    n_tokens = None
    if "n_tokens" in raw.columns:
        n_tokens = _parse_numbers(
            raw["n_tokens"],
            ctx,
            locs,
            "n_tokens",
            issues,
            required=False,
            integer=True,
            finite=True,
            nonneg=True,
            upper=MAX_TOKENS,
        )
    level = None
    if "level" in raw.columns:
        level_text = _as_text(raw["level"], ctx, locs, "level", issues)
        parsed = level_text.map(
            lambda v: (
                None
                if v is None
                else (
                    int(m.group(0))
                    if (m := re.search(r"-?\d+", v)) and len(m.group(0)) <= 6
                    else "bad"
                )
            )
        )
        bad_level = (parsed == "bad").to_numpy()
        lt = level_text.to_numpy()
        _bad(
            issues,
            ctx,
            locs,
            bad_level,
            "level",
            lambda j: f"expected a level number, got {lt[j]!r}",
        )
        level = parsed.where(~(parsed == "bad"), None)

    frame = pd.DataFrame(
        {
            "llm": llm.to_numpy(dtype=object),
            "verifier": verifier.to_numpy(dtype=object),
            "problem_id": problem_id.to_numpy(dtype=object),
            "sample_idx": sample_idx,
            "score": score,
            "answer_raw": answer.to_numpy(dtype=object) if answer is not None else None,
            "answer_key": answer_key.to_numpy(dtype=object),
            "is_correct": is_correct,
            "n_tokens": n_tokens if n_tokens is not None else np.nan,
            "_loc": locs,
        }
    )
    if steps is not None:
        frame["step_scores"] = pd.Series(pd.arrays.ArrowExtensionArray(steps))
    _check_duplicates(frame, ctx, issues)
    _check_response_consistency(frame, ctx, issues)
    problems = _problems_table(
        problem_id,
        gold,
        level,
        _as_text(raw["subject"], ctx, locs, "subject", issues)
        if "subject" in raw.columns
        else None,
        _as_text(raw["problem_text"], ctx, locs, "problem_text", issues)
        if "problem_text" in raw.columns
        else None,
        locs,
        ctx,
        issues,
    )
    issues.raise_if_any()

    frame["sample_idx"] = frame["sample_idx"].astype(np.int64)
    locs_cols: list[str] = []
    if keep_locs:
        frame["_file"] = (
            ctx.files if ctx.files is not None else np.full(len(frame), ctx.file, dtype=object)
        )
        locs_cols = ["_file", "_loc"]
        # where the problem first appears: its first row that gives a gold answer (the
        # row a gold-answer conflict names), else its first row
        first = (
            pd.DataFrame(
                {
                    "problem_id": frame["problem_id"],
                    "_file": frame["_file"],
                    "_loc": locs,
                    "_gold": gold.notna().to_numpy() if gold is not None else False,
                }
            )
            .sort_values("_gold", ascending=False, kind="stable")
            .drop_duplicates("problem_id")
            .drop(columns="_gold")
        )
        problems = problems.merge(first, on="problem_id", how="left")
    responses = frame.drop_duplicates(["llm", "problem_id", "sample_idx"])[
        [*RESPONSE_COLUMNS, *locs_cols]
    ].reset_index(drop=True)
    tok = responses["n_tokens"].to_numpy(dtype=np.float64)
    responses["n_tokens"] = (
        pd.array([None if np.isnan(t) else int(t) for t in tok], dtype="Int64")
        if np.isnan(tok).any()
        else tok.astype(np.int64)
    )
    score_cols = ["llm", "verifier", "problem_id", "sample_idx", "score"]
    if steps is not None:
        score_cols.append("step_scores")
    score_cols += locs_cols
    scores = frame[score_cols].reset_index(drop=True)
    notes.append(f"correctness: {grader}")
    return CanonicalData(problems=problems, responses=responses, scores=scores), notes


def _check_duplicates(frame: pd.DataFrame, ctx: ValidationContext, issues: IssueList) -> None:
    key = ["llm", "verifier", "problem_id", "sample_idx"]
    usable = (frame["sample_idx"].notna() & frame["problem_id"].notna()).to_numpy()
    dup = frame.duplicated(key, keep=False).to_numpy() & usable
    if not dup.any():
        return
    sub = frame.loc[dup, [*key, "_loc"]]
    pos = np.flatnonzero(dup)
    first = sub.groupby(key, sort=False)["_loc"].transform("min").to_numpy()
    locs = sub["_loc"].to_numpy()
    rows = sub.to_numpy(dtype=object)
    count = 0
    for j in range(len(sub)):
        if locs[j] == first[j]:
            continue
        count += 1
        if count > MAX_ISSUES_PER_CHECK:
            break
        llm, ver, pid, sidx = rows[j][:4]
        issues.add(
            Issue(
                ctx.file_at(int(pos[j])),
                f"duplicate key (llm={llm!r}, verifier={ver!r}, problem_id={pid!r}, "
                f"sample_idx={int(sidx)}): first seen at {ctx.loc_kind} {first[j]}",
                line=int(locs[j]),
                column="sample_idx",
                location_kind=ctx.loc_kind,
            )
        )


def _check_response_consistency(
    frame: pd.DataFrame, ctx: ValidationContext, issues: IssueList
) -> None:
    """The same response scored by several verifiers must agree on its answer fields."""
    key = ["llm", "problem_id", "sample_idx"]
    # exact duplicates (same verifier too) are reported by _check_duplicates
    keep = ~frame.duplicated(["llm", "verifier", "problem_id", "sample_idx"]).to_numpy()
    for col in ("answer_key", "is_correct", "n_tokens"):
        sub = frame.loc[keep, [*key, col, "_loc"]]
        n_keys = sub.drop_duplicates(key).shape[0]
        n_pairs = sub.drop_duplicates([*key, col]).shape[0]
        if n_pairs == n_keys:
            continue
        nun = sub.groupby(key, sort=False)[col].transform("nunique", dropna=False)
        bad = sub[nun.to_numpy() > 1]
        firsts = bad.groupby(key, sort=False)["_loc"].transform("min")
        for (ix, r), f in zip(bad.iterrows(), firsts, strict=True):
            if r["_loc"] == f:
                continue
            issues.add(
                Issue(
                    ctx.file_at(int(ix)),
                    f"{col} of response (llm={r['llm']!r}, problem_id={r['problem_id']!r}, "
                    f"sample_idx={int(r['sample_idx'])}) differs from {ctx.loc_kind} {f} "
                    f"({r[col]!r})",
                    line=int(r["_loc"]),
                    column=col if col != "answer_key" else "answer",
                    location_kind=ctx.loc_kind,
                )
            )
            if len(issues) > MAX_ISSUES_PER_CHECK:
                return


def _problems_table(
    problem_id: pd.Series,
    gold: pd.Series | None,
    level: pd.Series | None,
    subject: pd.Series | None,
    text: pd.Series | None,
    locs: np.ndarray,
    ctx: ValidationContext,
    issues: IssueList,
) -> pd.DataFrame:
    cols: dict[str, Any] = {"problem_id": problem_id.to_numpy(dtype=object), "_loc": locs}
    for name, s in (("gold_answer", gold), ("level", level), ("subject", subject), ("text", text)):
        cols[name] = s.to_numpy(dtype=object) if s is not None else None
    df = pd.DataFrame(cols)
    if gold is not None:
        g = df[["problem_id", "gold_answer", "_loc"]].dropna(subset=["gold_answer"])
        pairs = g.drop_duplicates(["problem_id", "gold_answer"])
        conflict = pairs["problem_id"].duplicated(keep=False)
        if conflict.any():
            firsts = pairs[conflict].groupby("problem_id", sort=False).first()
            for ix, r in pairs[conflict].iterrows():
                f = firsts.loc[r["problem_id"]]
                if r["_loc"] == f["_loc"]:
                    continue
                issues.add(
                    Issue(
                        ctx.file_at(int(ix)),
                        f"conflicting gold answers for problem {r['problem_id']!r}: "
                        f"{r['gold_answer']!r} here, {f['gold_answer']!r} at "
                        f"{ctx.loc_kind} {f['_loc']}",
                        line=int(r["_loc"]),
                        column="gold_answer",
                        location_kind=ctx.loc_kind,
                    )
                )
    out = (
        df.drop(columns="_loc").groupby("problem_id", sort=True, dropna=False).first().reset_index()
    )
    out["level"] = (
        pd.array(out["level"].astype(object).where(out["level"].notna(), None), dtype="Int64")
        if level is not None
        else pd.NA
    )
    return out[["problem_id", "gold_answer", "level", "subject", "text"]]
