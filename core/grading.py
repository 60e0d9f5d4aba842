"""Final-answer extraction, equivalence clustering and correctness against the gold answer.

The heavy lifting is done by `math-verify`_ (LaTeX -> SymPy parsing and symbolic/numeric
comparison). Around it this module adds what a test-time-scaling study needs:

* ``extract_boxed`` / ``normalize_answer``: cheap, conservative string canonicalisation. Two
  answers whose normalised strings are equal are treated as equivalent without calling
  math-verify, and an answer whose normalised string equals the normalised gold is correct.
* ``cluster_answers``: groups the answers of ONE problem into equivalence clusters. Only the
  distinct normalised strings reach math-verify (BoInf has 80 samples per problem but usually
  1-5 distinct answers), and parse/verify results are cached per process.
* ``grade_problems``: grades many problems in a process pool. math-verify's own time limits
  use ``signal.alarm`` and only work in a process's main thread, so we switch them off and
  enforce our own limit per parse / per comparison with ``signal.setitimer`` -- in the main
  thread of worker processes started with the ``forkserver`` (or ``spawn``) context, never in
  a Streamlit script thread. ``grade_one`` / ``cluster_answers`` called directly must run in
  the main thread (or with ``timeout_s=0``, which disables the limit).
* ``GradingReport``: what could not be parsed, and how often our verdict disagrees with
  correctness labels a file already carries (those labels are kept, not overwritten).

Verdicts: ``True`` / ``False``; ``None`` when the answer (or the gold) could not be parsed or
the time limit was hit. An empty or missing answer is ``False`` (it answers nothing) and is
counted separately from unparsed answers. ``grader_version()`` must be stored with every
graded dataset.

.. _math-verify: https://github.com/huggingface/Math-Verify
"""

from __future__ import annotations

import logging
import math
import multiprocessing as mp
import os
import re
import signal
import sys
import threading
import time
import unicodedata
import zlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _pkg_version
from types import FrameType, ModuleType
from typing import Any

from core.types import TTSLabError

__all__ = [
    "GRADER_NAME",
    "GRADING_LOGIC_VERSION",
    "ClusterResult",
    "GradeResult",
    "GradingError",
    "GradingReport",
    "ProblemGrading",
    "build_report",
    "choice_letter",
    "cluster_answers",
    "compare_with_labels",
    "extract_boxed",
    "grade_one",
    "grade_problems",
    "grader_version",
    "normalize_answer",
]

GRADER_NAME = "math-verify"
#: Bump whenever a change here can change a verdict or an answer key (invalidates stored grades).
GRADING_LOGIC_VERSION = 2
#: Answers longer than this (after extraction) are not handed to math-verify: its regexes and
#: SymPy can take unbounded time on long free text, and a final answer is never that long.
MAX_PARSE_CHARS = 600

_log = logging.getLogger(__name__)


class GradingError(TTSLabError):
    """Grading was called in a way that cannot work (wrong thread, mismatched lengths)."""


class _TimeLimitExceeded(BaseException):
    """Raised from SIGALRM. A BaseException so that math-verify's ``except Exception`` lets it
    through."""


def grader_version() -> str:
    """Name and version of the grader, to be stored with graded data."""
    try:
        mv = _pkg_version("math-verify")
    except PackageNotFoundError:  # pragma: no cover - the dependency is required
        mv = "unknown"
    return f"{GRADER_NAME} {mv} / ttslab-grading {GRADING_LOGIC_VERSION}"


# --------------------------------------------------------------------------------------------
# String level: extraction and normalisation
# --------------------------------------------------------------------------------------------

_BOX_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")


def extract_boxed(text: str) -> str | None:
    """Content of the LAST ``\\boxed{...}`` or ``\\fbox{...}`` in ``text`` (brace-balanced).

    Returns None when there is no box, or when the last box is never closed (cut-off text).
    ``\\boxed 5`` (no braces) yields ``"5"``.
    """
    last_match = None
    for last_match in _BOX_RE.finditer(text):  # noqa: B007 - only the last one is used
        pass
    if last_match is None:
        bare = re.findall(r"\\boxed\s+([^\s$]+)", text)
        return bare[-1] if bare else None
    # one brace-balanced scan from the last box (scanning from every box, as before, was
    # quadratic in the number of boxes: hours for a megabyte of "\boxed{")
    depth = 1
    i = start = last_match.end()
    n = len(text)
    while i < n and depth:
        c = text[i]
        if c == "\\":  # skip escaped characters such as \{ and \}
            i += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        i += 1
    return text[start : i - 1] if depth == 0 else None


_WRAPPERS = ("text", "textbf", "textit", "textrm", "mbox", "mathrm", "mathbf", "mathit")
_WRAP_RE = re.compile(r"\\(?:" + "|".join(_WRAPPERS) + r")\s*\{([^{}]*)\}")
_UNIT_RE = re.compile(
    r"(?<=[0-9}])\s*\\(?:text|mbox|mathrm)\s*\{\s*[A-Za-z][A-Za-z .]*\}(?:\^\{?[23]\}?)?\s*$"
)
_SPACE_CMDS_RE = re.compile(r"\\\\|\\[,;:! ]|~|\\q?quad(?![A-Za-z])")
_WS_RE = re.compile(r"(\\[A-Za-z]+)\s+(?=[A-Za-z])|\s+")
_DEGREE_RE = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|°|\\degree(?![A-Za-z])")
_LEFT_RIGHT_RE = re.compile(r"\\(?:left|right|big|Big|bigg|Bigg)(?![A-Za-z])\s*")
_FRAC_CMD_RE = re.compile(r"\\[dt]frac(?![A-Za-z])")
# 10,\!000 and 10{,}000 (a bare "10,000" may be a list: left to math-verify)
_THOUSANDS_RE = re.compile(r"(?<=\d)(?:,\\!|\{,\})(?=\d{3})")
_INT_FRAC_RE = re.compile(r"(?<![\w}.^_\\])(\d+)/(\d+)(?![\w{.^_])")
# BoInf stripped all whitespace, so a control space "\ 16" became "\16" and "\ \sqrt" became
# "\\sqrt" (which reads as a line break): undo both (the latter outside matrix environments).
_CTRL_SPACE_DIGIT_RE = re.compile(r"(?<!\\)\\(?=[0-9+\-])")
_CTRL_SPACE_CMD_RE = re.compile(r"\\\\(?=[A-Za-z])")
_DASHES = dict.fromkeys(map(ord, "\u2010\u2011\u2012\u2013\u2014\u2212"), "-")


def _fold_unicode(s: str) -> str:
    """Dashes to '-', mathematical alphanumerics (U+1D400..U+1D7FF, e.g. bold digits) to ASCII."""
    s = s.translate(_DASHES)
    if any(0x1D400 <= ord(c) <= 0x1D7FF for c in s):
        s = "".join(
            unicodedata.normalize("NFKC", c) if 0x1D400 <= ord(c) <= 0x1D7FF else c for c in s
        )
    return s


def _fix_unbraced(s: str) -> str:
    # \frac12 -> \frac{1}{2}, \frac{a}2 -> \frac{a}{2}, \frac1{b} -> \frac{1}{b}, \sqrt2 -> \sqrt{2}
    s = re.sub(r"\\frac(\d)(\d)", r"\\frac{\1}{\2}", s)
    s = re.sub(r"\\frac(\{[^{}]*\})(\d)", r"\\frac\1{\2}", s)
    s = re.sub(r"\\frac(\d)(\{)", r"\\frac{\1}\2", s)
    s = re.sub(r"\\sqrt(\d)", r"\\sqrt{\1}", s)
    # x^{3} -> x^3 (a single character in braces)
    return re.sub(r"([\^_])\{([A-Za-z0-9])\}", r"\1\2", s)


def normalize_answer(ans: str) -> str:
    """Cheap canonical string of an extracted final answer.

    Conservative by design: equal results mean equivalent answers (up to the MATH
    conventions that units, degree signs and ``\\%`` do not matter). Removes ``$``, an outer
    ``\\boxed{}``, ``\\left``/``\\right``, ``\\displaystyle``, spacing commands, ``^\\circ``,
    trailing unit text, ``\\text{}``-style wrappers, whitespace and a trailing period; maps
    ``\\dfrac``/``\\tfrac`` to ``\\frac``, ``a/b`` (integers) to ``\\frac{a}{b}``,
    ``1,\\!000`` and ``1{,}000`` to ``1000``, ``.5`` to ``0.5``; folds Unicode dashes and
    bold digits; undoes the control-space damage of whitespace-stripped answers (``\\16``
    for ``\\ 16``).

    Idempotent: the rules are applied until nothing changes.
    """
    s = ans
    for _ in range(6):
        prev, s = s, _normalize_once(s)
        if s == prev:
            break
    return s


def _normalize_once(ans: str) -> str:
    s = _fold_unicode(ans).strip()
    if not s:
        return ""
    if "\\boxed" in s or "\\fbox" in s:
        inner = extract_boxed(s)
        if inner is not None:
            s = inner
    s = s.replace("\\$", "").replace("$", "").replace("\\displaystyle", "")
    s = _LEFT_RIGHT_RE.sub("", s)
    s = _THOUSANDS_RE.sub("", s)
    s = _SPACE_CMDS_RE.sub(lambda m: m.group(0) if m.group(0) == "\\\\" else " ", s)
    s = _CTRL_SPACE_DIGIT_RE.sub("", s)
    if "\\begin" not in s:
        s = _CTRL_SPACE_CMD_RE.sub(r"\\", s)
    s = _FRAC_CMD_RE.sub(r"\\frac", s)
    s = _DEGREE_RE.sub("", s)
    s = s.replace("\\%", "").replace("%", "")
    s = _UNIT_RE.sub("", s)
    for _ in range(3):  # nested wrappers such as \textbf{\text{x}}
        s2 = _WRAP_RE.sub(lambda m: m.group(1), s)
        if s2 == s:
            break
        s = s2
    s = _WS_RE.sub(lambda m: m.group(1) + " " if m.group(1) else "", s.strip())
    s = s.rstrip(".").strip()
    s = _fix_unbraced(s)
    if s.startswith("."):
        s = "0" + s
    s = s.replace("-.", "-0.")
    return _INT_FRAC_RE.sub(r"\\frac{\1}{\2}", s)


#: Option letters of multiple-choice problems.
CHOICE_LETTERS = "ABCDEFGHIJ"
_CHOICE_WRAP_RE = re.compile(
    r"\\(?:text|textbf|textrm|textnormal|mathrm|mathbf|mathsf|mbox|operatorname)\s*\{([^{}]*)\}"
)
_CHOICE_SPACE_RE = re.compile(r"\\(?:[,;:! ]|quad|qquad)|~|\$")
_CHOICE_BARE_RE = re.compile(r"\(?([A-J])\)?|\(([a-j])\)")
_CHOICE_LABEL_RE = re.compile(r"\(([A-Ja-j])\)(?=[\s\d\\+\-.]|$)|([A-J])[.:)](?=\s)")


def choice_letter(answer: str | None) -> str | None:
    """The option letter an extracted answer gives when it is written as one, else None.

    Accepts a bare letter A-J, a letter in parentheses (``(b)`` too), and decorations around
    either: ``\\text{}``, ``\\mathrm{}``, ``\\textbf{}`` and similar wrappers, spacing
    commands (``\\,C\\,``), ``$`` and braces; also an option label followed by the option's
    text, ``\\text{(A)}\\ 16.9\\%`` or ``A. 16.9``. A word or an expression (``Bob``,
    ``A+B``, ``AB``) is not a letter.
    """
    if answer is None:
        return None
    s = _fold_unicode(answer)
    for _ in range(3):
        s2 = _CHOICE_WRAP_RE.sub(lambda m: m.group(1), s)
        if s2 == s:
            break
        s = s2
    s = _CHOICE_SPACE_RE.sub(" ", s).replace("{", "").replace("}", "").strip()
    m = _CHOICE_BARE_RE.fullmatch(s)
    if m:
        return (m.group(1) or m.group(2)).upper()
    m = _CHOICE_LABEL_RE.match(s)
    if m:
        return (m.group(1) or m.group(2)).upper()
    return None


_TEXTUAL_RE = re.compile(r"[A-Za-z][A-Za-z']*[A-Za-z]")
_HAS_WRAPPER_RE = re.compile(r"\\(?:text|textbf|mbox|mathrm)\s*\{")


def _is_textual(norm: str, raw: str) -> bool:
    """A word answer (``Evelyn``, ``\\text{east}``): compared as a string, never by SymPy,
    which would read ``Evenly`` and ``Evelyn`` as the same product of six symbols."""
    if not _TEXTUAL_RE.fullmatch(norm):
        return False
    return len(norm) >= 3 or bool(_HAS_WRAPPER_RE.search(raw))


def _extract(raw: str | None) -> str:
    """Final answer of a raw answer field: the last box if there is one, else the field.

    A field whose last box is never closed (a cut-off text) has no answer: "".
    """
    if raw is None:
        return ""
    if "\\boxed" in raw or "\\fbox" in raw:
        inner = extract_boxed(raw)
        return "" if inner is None else inner
    return raw


# --------------------------------------------------------------------------------------------
# math-verify level: parsing and comparison under a time limit
# --------------------------------------------------------------------------------------------


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    raise _TimeLimitExceeded


@contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """Raise _TimeLimitExceeded in the main thread after ``seconds`` (<= 0: no limit).

    The timer repeats every 50 ms after the first expiry, so a stray ``except:`` inside
    SymPy cannot swallow the interrupt for good.
    """
    if seconds <= 0:
        yield
        return
    if threading.current_thread() is not threading.main_thread():
        raise GradingError(
            "math-verify grading with a time limit must run in a process's main thread "
            "(use grade_problems(), which grades in worker processes, or timeout_s=0)"
        )
    old = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds, 0.05)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


_MV: dict[str, Any] = {}


def _mv() -> dict[str, Any]:
    """Import math-verify lazily (it pulls in SymPy, ~1 s) and switch off its own timeouts."""
    if not _MV:
        import math_verify
        import math_verify.grader
        import math_verify.parser

        # We enforce our own limit; silence the "timeout disabled" warning meant for others.
        math_verify.parser.TIMEOUT_WARNING_SHOWN = True
        math_verify.grader.TIMEOUT_WARNING_SHOWN = True
        _MV["parse"] = math_verify.parse
        _MV["verify"] = math_verify.verify
        _MV["config"] = [
            math_verify.LatexExtractionConfig(boxed_match_priority=0),
            math_verify.ExprExtractionConfig(),
        ]
    return _MV


@dataclass(frozen=True)
class _Parsed:
    value: Any  # math-verify's list of [sympy object, fallback string] (or [] when unparsed)
    ok: bool  # at least one SymPy object came out
    note: str  # "" | "unparsable" | "timeout" | "too long" | "empty"


@lru_cache(maxsize=50_000)
def _parse_norm(norm: str, timeout_s: float) -> _Parsed:
    if not norm:
        return _Parsed([], False, "empty")
    if len(norm) > MAX_PARSE_CHARS:
        return _Parsed([], False, "too long")
    mv = _mv()
    try:
        with _time_limit(timeout_s):
            value = mv["parse"](
                "\\boxed{" + norm + "}", extraction_config=mv["config"], parsing_timeout=None
            )
    except _TimeLimitExceeded:
        return _Parsed([], False, "timeout")
    ok = any(not isinstance(v, str) for v in value)
    return _Parsed(value, ok, "" if ok else "unparsable")


_CACHE_MAX = 200_000
_VERIFY_CACHE: dict[tuple[str, str], bool] = {}


def _verify_norm(
    gold_norm: str, pred_norm: str, timeout_s: float, limit_s: float | None = None
) -> bool | None:
    """math-verify equivalence of two normalised answers; None on timeout or unparsable.

    Parsing is limited to ``timeout_s`` per answer, the comparison to ``limit_s`` (default
    ``timeout_s``).

    Definite verdicts are cached per process (math-verify's ``verify`` is asymmetric, so the
    key is ordered).
    """
    key = (gold_norm, pred_norm)
    hit = _VERIFY_CACHE.get(key)
    if hit is not None:
        return hit
    g = _parse_norm(gold_norm, timeout_s)
    p = _parse_norm(pred_norm, timeout_s)
    if not (g.ok and p.ok):
        return None
    try:
        with _time_limit(timeout_s if limit_s is None else limit_s):
            v = bool(_mv()["verify"](g.value, p.value, timeout_seconds=None))
    except _TimeLimitExceeded:
        return None
    if len(_VERIFY_CACHE) >= _CACHE_MAX:
        _VERIFY_CACHE.clear()
    _VERIFY_CACHE[key] = v
    return v


#: Relative tolerance of the numeric fingerprints (math-verify rounds floats to 6 places).
_SIG_RTOL = 1e-6
#: Time allowed for computing one fingerprint (at most ``timeout_s``).
_SIG_TIMEOUT_S = 1.0


def _symbol_value(name: str) -> float:
    """A fixed, irregular value in [0.5, 1.5) per symbol name."""
    return 0.5 + (zlib.crc32(name.encode()) % 1_000_003) / 1_000_003


@dataclass(frozen=True)
class _Sig:
    """Fingerprint of a parsed answer.

    ``kind``: "expr" (plain expression), "tuple<n>", "set<n>", "interval<flags>", "rel"
    (equation, inequality, logic) or "other" (matrix, ...). ``value``: numeric values of the
    expression / elements / endpoints with free symbols set to fixed values per name; None
    when something does not evaluate.
    """

    kind: str
    value: tuple[complex, ...] | None


def _num(e: Any, sympy: Any) -> complex:
    """Numeric value of a SymPy expression, free symbols set to fixed values; raises
    ValueError when it does not evaluate to a finite number (infinities are kept)."""
    if e == sympy.oo:
        return complex(math.inf, 0.0)
    if e == -sympy.oo:
        return complex(-math.inf, 0.0)
    if not isinstance(e, sympy.Expr):
        raise ValueError("not an expression")
    subs = {sym: sympy.Float(_symbol_value(str(sym))) for sym in e.free_symbols}
    v = complex(e.xreplace(subs).evalf(15))
    if not (math.isfinite(v.real) and math.isfinite(v.imag)):
        raise ValueError("not finite")
    return v


def _sig_of(e: Any, limit: float) -> _Sig:
    import sympy

    if isinstance(e, sympy.core.relational.Relational | sympy.logic.boolalg.BooleanFunction):
        return _Sig("rel", None)
    if isinstance(e, sympy.Symbol) or (
        isinstance(e, sympy.Mul) and all(isinstance(a, sympy.Symbol) for a in e.args)
    ):
        return _Sig("other", None)  # math-verify compares these by name ("\\text{(C)}" = "C")
    if isinstance(e, sympy.Expr):
        kind, parts, order = "expr", [e], False
    elif isinstance(e, sympy.Tuple):
        kind, parts, order = f"tuple{len(e)}", list(e.args), False
    elif isinstance(e, sympy.FiniteSet):
        kind, parts, order = f"set{len(e.args)}", list(e.args), True
    elif isinstance(e, sympy.Interval):
        # "(a,b)" is ambiguous (point or open interval): math-verify may equate the two
        # readings, so an open interval shares the kind of a pair.
        lo, ro = bool(e.left_open), bool(e.right_open)
        kind = "tuple2" if lo and ro else f"interval{int(lo)}{int(ro)}"
        parts, order = [e.start, e.end], False
    else:
        return _Sig("other", None)
    try:
        with _time_limit(limit):
            values = [_num(x, sympy) for x in parts]
    except _TimeLimitExceeded:
        return _Sig(kind, None)
    except Exception:  # anything SymPy cannot evaluate: no value
        return _Sig(kind, None)
    if order:
        values.sort(key=lambda v: (round(v.real, 9), round(v.imag, 9)))
    return _Sig(kind, tuple(values))


@lru_cache(maxsize=50_000)
def _signature(norm: str, timeout_s: float) -> _Sig | None:
    """Numeric fingerprint of a parsed answer (None when it did not parse).

    Two answers of the same kind with clearly different values are not equivalent, so
    clustering skips math-verify for them: without this, a problem with 150 distinct
    answers needs ~11,000 comparisons of ~20-300 ms each.
    """
    p = _parse_norm(norm, timeout_s)
    if not p.ok:
        return None
    e = next(v for v in p.value if not isinstance(v, str))
    return _sig_of(e, min(timeout_s, _SIG_TIMEOUT_S) if timeout_s > 0 else 0.0)


def _close(a: complex, b: complex) -> bool:
    if not (math.isfinite(abs(a)) and math.isfinite(abs(b))):
        return a == b
    return abs(a - b) <= _SIG_RTOL * max(1.0, abs(a), abs(b))


def _maybe_equal(a_norm: str, b_norm: str, timeout_s: float) -> bool:
    """False when the fingerprints rule equivalence out (then math-verify is not asked).

    Ruled out: same kind with values that differ, or two plain expressions of which only
    one evaluates (say ``\\frac{\\pi^2}{6}`` against an infinite sum: such comparisons cost
    up to seconds each and almost never succeed). Different kinds, relations and anything
    without values go to math-verify.
    """
    sa = _signature(a_norm, timeout_s)
    sb = _signature(b_norm, timeout_s)
    if sa is None or sb is None or sa.kind != sb.kind or sa.kind in ("rel", "other"):
        return True
    if sa.value is None or sb.value is None:
        return sa.kind != "expr" or (sa.value is None and sb.value is None)
    return all(_close(x, y) for x, y in zip(sa.value, sb.value, strict=True))


def _sig_cost(norm: str, timeout_s: float) -> int:
    sig = _signature(norm, timeout_s)
    return 0 if sig is not None and sig.value is not None else 1


def _clear_caches() -> None:
    """Forget cached parses, fingerprints and comparisons (for benchmarks and tests)."""
    _parse_norm.cache_clear()
    _signature.cache_clear()
    _VERIFY_CACHE.clear()


# --------------------------------------------------------------------------------------------
# Public grading API
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GradeResult:
    """Verdict for one answer. ``is_correct`` is None when it could not be decided."""

    is_correct: bool | None
    parsed: bool
    note: str


def _judge(
    pred_norm: str, pred_raw: str, gold_norm: str, gold_raw: str, timeout_s: float
) -> GradeResult:
    if not pred_norm:
        return GradeResult(False, False, "empty")
    if pred_norm == gold_norm:
        return GradeResult(True, True, "string match")
    p_text = _is_textual(pred_norm, pred_raw)
    g_text = _is_textual(gold_norm, gold_raw)
    if p_text or g_text:
        same = p_text and g_text and pred_norm.casefold() == gold_norm.casefold()
        return GradeResult(same, True, "text")
    p = _parse_norm(pred_norm, timeout_s)
    if not p.ok:
        return GradeResult(None, False, p.note)
    g = _parse_norm(gold_norm, timeout_s)
    if not g.ok:
        return GradeResult(None, True, "gold " + g.note)
    v = _verify_norm(gold_norm, pred_norm, timeout_s)
    if v is None:
        return GradeResult(None, True, "timeout")
    return GradeResult(v, True, "math-verify")


def grade_one(pred: str, gold: str, timeout_s: float = 5.0) -> GradeResult:
    """Grade one answer against the gold answer, in this process (main thread only).

    Both may be bare answers or texts with a ``\\boxed{}`` (the last box is used).
    """
    pred_raw, gold_raw = _extract(pred), _extract(gold)
    return _judge(
        normalize_answer(pred_raw), pred_raw, normalize_answer(gold_raw), gold_raw, timeout_s
    )


@dataclass(frozen=True)
class ClusterResult:
    """``keys[i]``: canonical representative (normalised string) of answer i's cluster.

    ``unparsed``: indices of non-empty answers math-verify could not parse (each is its own
    cluster unless its normalised string repeats). Empty answers get the key ``""``.
    """

    keys: list[str]
    unparsed: list[int]


def _equivalent(
    a_norm: str, a_raw: str, b_norm: str, b_raw: str, timeout_s: float, limit_s: float
) -> bool:
    if a_norm == b_norm:
        return True
    a_text, b_text = _is_textual(a_norm, a_raw), _is_textual(b_norm, b_raw)
    if a_text or b_text:
        return a_text and b_text and a_norm.casefold() == b_norm.casefold()
    if not _maybe_equal(a_norm, b_norm, timeout_s):
        return False
    return _verify_norm(a_norm, b_norm, timeout_s, limit_s) is True


def _grade_problem(
    gold: str | None, answers: Sequence[str | None], timeout_s: float
) -> tuple[ProblemGrading, list[GradeResult]]:
    """Cluster the answers of one problem and, when a gold is given, grade them.

    Answers equivalent to the gold form one cluster; the other answers are compared with each
    cluster's representative (first member) in order of first appearance.
    """
    raws = [_extract(a) for a in answers]
    norm_of: dict[str, str] = {}
    norms: list[str] = []
    for r in raws:
        n = norm_of.get(r)
        if n is None:
            n = norm_of[r] = normalize_answer(r)
        norms.append(n)

    gold_raw = _extract(gold) if gold is not None else ""
    gold_norm = normalize_answer(gold_raw) if gold is not None else ""
    # multiple choice (the gold is an option letter): decorated letters become the letter
    gold_letter = choice_letter(gold_raw) if gold is not None else None
    changed: list[int] = []
    if gold_letter is not None:
        gold_raw = gold_norm = gold_letter
        for i, r in enumerate(raws):
            letter = choice_letter(r)
            if letter is not None:
                if norms[i] != letter:
                    changed.append(i)
                raws[i] = norms[i] = letter
    first_raw: dict[str, str] = {}
    for n, r in zip(norms, raws, strict=True):
        first_raw.setdefault(n, r)
    verdict: dict[str, GradeResult] = {}
    key_of: dict[str, str] = {}
    reps: list[str] = []  # cluster representatives that are not known to be correct
    gold_key: str | None = None
    for n, r in first_raw.items():
        if not n:
            verdict[n] = GradeResult(False, False, "empty")
            key_of[n] = ""
            continue
        if gold is not None:
            res = _judge(n, r, gold_norm, gold_raw, timeout_s)
        else:
            p = _parse_norm(n, timeout_s) if not _is_textual(n, r) else None
            res = GradeResult(None, p is None or p.ok, "" if p is None else p.note)
        verdict[n] = res
        if res.is_correct:
            if gold_key is None:
                gold_key = n
            key_of[n] = gold_key
            continue
        if not res.parsed:  # cannot be shown equal to anything but itself
            key_of[n] = n
            continue
        # Compare with the representatives; all comparisons of one answer share one budget.
        deadline = time.monotonic() + timeout_s if timeout_s > 0 else math.inf
        key_of[n] = n
        # Representatives with a numeric fingerprint first: they are cheap to rule out.
        ordered = sorted(reps, key=lambda k: _sig_cost(k, timeout_s))
        for rep in ordered:
            left = deadline - time.monotonic()
            if left <= 0:
                _log.debug("clustering budget exhausted for answer %r", n[:80])
                break
            if _equivalent(rep, first_raw[rep], n, r, timeout_s, min(timeout_s, left)):
                key_of[n] = rep
                break
        if key_of[n] == n:
            reps.append(n)

    results = [verdict[n] for n in norms]
    unparsed = [
        i
        for i, res in enumerate(results)
        if res.note != "empty" and (not res.parsed or (gold is not None and res.is_correct is None))
    ]
    grading = ProblemGrading(
        answer_keys=[key_of[n] for n in norms],
        is_correct=[res.is_correct for res in results],
        unparsed=unparsed,
        notes=[results[i].note for i in unparsed],
        empty=[i for i, res in enumerate(results) if res.note == "empty"],
        choice=gold_letter is not None,
        choice_normalized=changed,
    )
    return grading, results


def cluster_answers(answers: Sequence[str], timeout_s: float = 5.0) -> ClusterResult:
    """Equivalence clusters of the answers of ONE problem (in this process, main thread)."""
    g, _ = _grade_problem(None, answers, timeout_s)
    return ClusterResult(keys=g.answer_keys, unparsed=g.unparsed)


@dataclass(frozen=True)
class ProblemGrading:
    """Grading of all answers of one problem, in answer order.

    ``answer_keys``: cluster key per answer, the normalised form of the cluster's first
    member (all answers equivalent to the gold share one key). ``unparsed``: indices of
    non-empty answers whose verdict is None; ``notes`` says why (parallel to ``unparsed``).
    ``empty``: indices of empty or missing answers (key ``""``, verdict False).
    ``choice``: the gold answer is an option letter (a multiple-choice problem);
    ``choice_normalized``: indices of answers written as a decorated letter (``(\\mathrm{B})``)
    that were read as that bare letter before clustering and grading.
    """

    answer_keys: list[str]
    is_correct: list[bool | None]
    unparsed: list[int]
    notes: list[str] = field(default_factory=list)
    empty: list[int] = field(default_factory=list)
    choice: bool = False
    choice_normalized: list[int] = field(default_factory=list)


ProblemInput = tuple[str, Sequence[str | None]]


def _worker_init() -> None:
    # Ctrl-C reaches the terminal's whole process group: the parent stops the workers
    # (terminates them), so a worker waiting for its next chunk must not die of it first
    # with a KeyboardInterrupt traceback of its own
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    _mv()
    # math-verify builds its parsers on first use (0.2 s, more on a loaded machine): here,
    # not inside the first answer's time limit
    grade_one("\\frac{1}{2}", "0.5", timeout_s=0)


def _chunk_cost(chunk: Sequence[ProblemInput]) -> int:
    """Rough cost of grading a chunk: its number of distinct answers per problem."""
    return sum(len(set(answers)) for _, answers in chunk)


def _grade_chunk(chunk: Sequence[ProblemInput], timeout_s: float) -> list[ProblemGrading]:
    return [_grade_problem(gold, answers, timeout_s)[0] for gold, answers in chunk]


_MAIN_LOCK = threading.Lock()


@contextmanager
def _script_main_hidden() -> Iterator[None]:
    """Hide a script-type ``__main__`` while worker processes start.

    ``spawn`` and ``forkserver`` children re-run the parent's main *script* (as
    ``__mp_main__``) unless it is imported by module name. Streamlit installs the page
    script as ``__main__``, so a child would execute the dashboard (and e.g. open its DuckDB
    file); unguarded scripts would recurse. Workers need nothing from ``__main__``: they only
    run ``core.grading`` functions on plain data.
    """
    with _MAIN_LOCK:  # two threads (Streamlit sessions) must not interleave the swap
        main = sys.modules.get("__main__")
        spec_name = getattr(getattr(main, "__spec__", None), "name", None)
        if main is None or spec_name is not None or getattr(main, "__file__", None) is None:
            yield
            return
        stub = ModuleType("__main__")
        sys.modules["__main__"] = stub
        try:
            yield
        finally:
            if sys.modules.get("__main__") is stub:
                sys.modules["__main__"] = main


#: What the forkserver imports once, before it forks grading workers.
FORKSERVER_PRELOAD = ("core.grading", "math_verify", "math_verify.grader", "math_verify.parser")


def _pool_context() -> mp.context.BaseContext:
    """The grading workers' start method: forked from a forkserver that has imported
    math-verify (with SymPy) once, so each worker starts with it loaded instead of
    importing it (1-3 s a worker, paid by every import that grades); spawned where there
    is no forkserver. The forkserver never imports ``__main__`` (a Streamlit page)."""
    if "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(list(FORKSERVER_PRELOAD))  # used when the server starts
    return ctx


#: Caps the grading worker processes (`ttslab serve` sets it to leave a core for serving).
GRADE_WORKERS_ENV = "TTSLAB_GRADE_WORKERS"


def default_workers() -> int:
    """Grading processes: the CPUs this process may run on, at most $TTSLAB_GRADE_WORKERS."""
    try:
        n = max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        n = max(1, os.cpu_count() or 1)
    cap = os.environ.get(GRADE_WORKERS_ENV, "").strip()
    if cap.isdigit() and int(cap) >= 1:
        n = min(n, int(cap))
    return n


#: how often `grade_problems` calls its `on_wait` while workers grade
WAIT_TICK_S = 0.25


def grade_problems(
    problems: Sequence[ProblemInput],
    workers: int | None = None,
    timeout_s: float = 5.0,
    progress: Callable[[int, int], None] | None = None,
    chunk_answers: int = 2000,
    processes: bool = False,
    on_wait: Callable[[list[int]], None] | None = None,
) -> list[ProblemGrading]:
    """Grade ``(gold, answers)`` per problem; result order equals input order.

    ``workers``: processes to use (default: the CPUs this process may run on). With 1 the
    grading runs in this process, which must then be its main thread. ``progress(done,
    total)`` is called in the calling thread after each chunk (counted in problems).
    ``chunk_answers``: about how many answers each task sent to a worker holds.
    ``processes``: grade in worker processes even with one worker (never in this thread).
    ``on_wait(worker_pids)``: called in the calling thread about every WAIT_TICK_S seconds
    while workers grade (and before each chunk in this process), so that a budget or a
    cancel can stop grading without waiting for a chunk to finish (it raises to stop).
    """
    total = len(problems)
    n_workers = default_workers() if workers is None else workers
    if n_workers < 1:
        raise GradingError(f"workers must be >= 1, got {n_workers}")
    chunks: list[list[ProblemInput]] = []
    cur: list[ProblemInput] = []
    size = 0
    for gold, answers in problems:
        cur.append((gold, list(answers)))
        size += len(answers)
        if size >= chunk_answers:
            chunks.append(cur)
            cur, size = [], 0
    if cur:
        chunks.append(cur)

    requested = n_workers
    n_workers = min(n_workers, len(chunks))
    off_main = threading.current_thread() is not threading.main_thread()
    if (processes or (requested > 1 and off_main and timeout_s > 0)) and chunks:
        # time limits need a main thread: one chunk still goes to a worker process
        n_workers = max(n_workers, 1)
        in_process = False
    else:
        in_process = n_workers <= 1
    if in_process:
        out: list[ProblemGrading] = []
        for chunk in chunks:
            if on_wait is not None:
                on_wait([])
            out.extend(_grade_chunk(chunk, timeout_s))
            if progress is not None:
                progress(len(out), total)
        return out

    results: list[list[ProblemGrading] | None] = [None] * len(chunks)
    done = 0
    try:
        pool = ProcessPoolExecutor(
            max_workers=n_workers, mp_context=_pool_context(), initializer=_worker_init
        )
        pending: dict[Future[list[ProblemGrading]], int] = {}
        try:
            # Most distinct answers first, so that no expensive chunk is left for the end.
            order = sorted(range(len(chunks)), key=lambda i: -_chunk_cost(chunks[i]))
            with _script_main_hidden():  # all workers start during these submits
                for i in order:
                    pending[pool.submit(_grade_chunk, chunks[i], timeout_s)] = i
            while pending:
                finished, _ = wait(pending, timeout=WAIT_TICK_S, return_when=FIRST_COMPLETED)
                if on_wait is not None:
                    on_wait(list(getattr(pool, "_processes", None) or {}))
                for fut in finished:
                    i = pending.pop(fut)
                    results[i] = fut.result()
                    done += len(chunks[i])
                    if progress is not None:
                        progress(done, total)  # may raise: a time limit, a cancel
        except BaseException:
            # stopped (Ctrl-C, a time limit, a cancelled page), also while the workers
            # start and the chunks are submitted: do not wait for the chunks still queued
            # or running (a `with` block's exit waited for every one of them: a Ctrl-C
            # during the submits was then followed by the whole grading). The futures are
            # not cancelled: the pool's manager thread fails every pending one when it sees
            # its workers gone, and in Python 3.11 it dies on a cancelled one
            # (InvalidStateError, a traceback on stderr) before it closes its queues and
            # stops the other workers
            for proc in list((getattr(pool, "_processes", None) or {}).values()):
                proc.terminate()
            pool.shutdown(wait=False)
            raise
        pool.shutdown(wait=True)
    except BrokenProcessPool as e:
        raise GradingError(
            "a grading worker process died (out of memory, or killed); nothing was graded"
        ) from e
    return [g for part in results if part is not None for g in part]


# --------------------------------------------------------------------------------------------
# Reports
# --------------------------------------------------------------------------------------------


def compare_with_labels(
    ours: Sequence[bool | None], theirs: Sequence[bool]
) -> tuple[int, list[int]]:
    """Where our verdicts disagree with a file's own correctness labels.

    A verdict of None (we could not decide) counts as a disagreement: we did not reproduce
    their label. Returns ``(count, indices)``.
    """
    if len(ours) != len(theirs):
        raise GradingError(f"length mismatch: {len(ours)} verdicts vs {len(theirs)} labels")
    idx = [i for i, (o, t) in enumerate(zip(ours, theirs, strict=True)) if o is None or o != t]
    return len(idx), idx


@dataclass(frozen=True)
class GradingReport:
    """Summary of a grading run, to show at import time and store with the data."""

    grader: str
    n_problems: int
    n_answers: int
    n_empty: int
    n_unparsed: int
    unparsed_examples: list[tuple[int, int, str, str]]  # (problem, answer, raw answer, why)
    n_correct: int
    n_label_disagreements: int | None = None  # None: the file carries no labels
    disagreement_examples: list[tuple[int, int, str, bool | None, bool]] = field(
        default_factory=list
    )  # (problem, answer, raw answer, ours, theirs)

    def summary(self) -> str:
        def pct(k: int) -> str:
            return f"{100.0 * k / self.n_answers:.2f} %" if self.n_answers else "-"

        lines = [
            f"graded {self.n_answers} answers of {self.n_problems} problems with {self.grader}",
            f"correct: {self.n_correct} ({pct(self.n_correct)})",
            f"empty answers: {self.n_empty} ({pct(self.n_empty)})",
            f"could not be parsed: {self.n_unparsed} ({pct(self.n_unparsed)})",
        ]
        for p, a, raw, why in self.unparsed_examples:
            lines.append(f"  problem {p} answer {a}: {raw[:80]!r} ({why})")
        if self.n_label_disagreements is not None:
            lines.append(
                "disagreements with the file's own labels: "
                f"{self.n_label_disagreements} ({pct(self.n_label_disagreements)})"
            )
            for p, a, raw, o, t in self.disagreement_examples:
                lines.append(f"  problem {p} answer {a}: {raw[:80]!r} ours={o} theirs={t}")
        return "\n".join(lines)


def build_report(
    problems: Sequence[ProblemInput],
    gradings: Sequence[ProblemGrading],
    labels: Sequence[Sequence[bool]] | None = None,
    n_examples: int = 20,
) -> GradingReport:
    """Collect unparsed answers and (with ``labels``, per problem) label disagreements."""
    if len(problems) != len(gradings):
        raise GradingError("problems and gradings differ in length")
    unparsed_ex: list[tuple[int, int, str, str]] = []
    dis_ex: list[tuple[int, int, str, bool | None, bool]] = []
    n_unparsed = n_empty = n_correct = n_answers = 0
    n_dis: int | None = None if labels is None else 0
    for p, ((_, answers), g) in enumerate(zip(problems, gradings, strict=True)):
        n_answers += len(answers)
        n_empty += len(g.empty)
        n_correct += sum(1 for c in g.is_correct if c)
        n_unparsed += len(g.unparsed)
        for i, why in zip(g.unparsed, g.notes, strict=True):
            if len(unparsed_ex) < n_examples:
                unparsed_ex.append((p, i, str(answers[i]), why))
        if labels is not None and n_dis is not None:
            k, idx = compare_with_labels(g.is_correct, labels[p])
            n_dis += k
            for i in idx:
                if len(dis_ex) < n_examples:
                    dis_ex.append((p, i, str(answers[i]), g.is_correct[i], labels[p][i]))
    return GradingReport(
        grader=grader_version(),
        n_problems=len(problems),
        n_answers=n_answers,
        n_empty=n_empty,
        n_unparsed=n_unparsed,
        unparsed_examples=unparsed_ex,
        n_correct=n_correct,
        n_label_disagreements=n_dis,
        disagreement_examples=dis_ex,
    )
