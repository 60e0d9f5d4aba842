"""Tests of core.grading: answer extraction, normalisation, math-verify grading, clustering,
time limits, the process pool and the label-disagreement report.

The verdict table holds real answer pairs copied verbatim from the files in ../shared/data;
every expected verdict was decided by reading the mathematics (and, where the gold looked
odd, the MATH problem), not by running the grader. ``test_table_rows_occur_in_shared_files``
keeps the rows honest.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core import grading as G
from core.grading import (
    GradingError,
    build_report,
    cluster_answers,
    compare_with_labels,
    extract_boxed,
    grade_one,
    grade_problems,
    grader_version,
    normalize_answer,
)

# ------------------------------------------------------------------------------------------
# Shared data
# ------------------------------------------------------------------------------------------

DATA = Path(
    os.environ.get(
        "TTSLAB_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"
    )
)
QWEN = DATA / "qwen25math_rm_maj" / "math_cot_100.jsonl"
OPENR = DATA / "openr_math500_bon/MATH_best_of_n/Qwen2.5-1.5B-Instruct/math-shepherd-mistral-7b-prm"
SAL = DATA / "sal_best_of_n"
BOINF = DATA / "boinf"

realdata = pytest.mark.realdata


def _jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Records of a JSONL file; a cut-off last line (real in the SAL file) is skipped."""
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue


@cache
def _qwen() -> list[dict[str, Any]]:
    return list(_jsonl(QWEN))


@cache
def _openr() -> list[dict[str, Any]]:
    return [rec for f in sorted(OPENR.glob("1_1_1/question_*/record_*.jsonl")) for rec in _jsonl(f)]


@cache
def _sal(name: str) -> list[dict[str, Any]]:
    return list(_jsonl(SAL / name))


@cache
def _boinf(name: str) -> list[dict[str, Any]]:
    return list(_jsonl(BOINF / name))


# ------------------------------------------------------------------------------------------
# The verdict table: (source, pred, gold, expected)
#   boinf/<file>: an entry of all_answers of a problem whose gold_answer is `gold`
#   qwen:         an entry of `pred` of a record whose `gt` is `gold`
#   openr:        output[0].extracted_answer of a record whose groundtruth has \boxed{gold}
#   sal/<file>:   the content of \boxed{pred} in a completion of a record whose answer is gold
# ------------------------------------------------------------------------------------------

PHI = "boinf/analysis_math500_Phi-4-reasoning.jsonl"
GPT = "boinf/analysis_math500_gpt-oss-20b.jsonl"
EXA = "boinf/analysis_math500_EXAONE-Deep-32B.jsonl"
NEM = "boinf/analysis_math500_NVIDIA-Nemotron-Nano-9B-v2.jsonl"
MET = "boinf/analysis_math500_MetaStone-S1-32B.jsonl"
Q30 = "boinf/analysis_math500_Qwen3-30B-A3B-Thinking-2507.jsonl"
AIME24_Q30 = "boinf/analysis_aime2024_Qwen3-30B-A3B-Thinking-2507.jsonl"
AIME24_PHI = "boinf/analysis_aime2024_Phi-4-reasoning.jsonl"
SAL256 = "sal/llama32_1b_math500_n256_truncated.jsonl"
SAL4 = "sal/llama32_1b_math500_n4.jsonl"

TABLE: list[tuple[str, str, str, bool]] = [
    # --- fractions: \frac vs \dfrac vs a/b vs decimals
    (PHI, "2/21", "\\frac{2}{21}", True),
    (PHI, "-35/9", "-\\frac{35}{9}", True),
    (EXA, "0.35625", ".35625", True),
    (EXA, "0.09", "\\frac{9}{100}", True),
    (PHI, "5.5", "\\frac{11}{2}", True),
    (PHI, "\\frac{2240}{78125}", "\\frac{448}{15625}", True),  # both 448/15625 after /5
    (PHI, "\\binom{7}{4}(1/5)^4(4/5)^3", "\\frac{448}{15625}", True),  # 35*64/78125
    (PHI, "-\\frac{35}{64}", "\\frac{35}{64}", False),
    ("openr", "\\frac{17}{50}", "\\dfrac{17}{50}", True),
    ("openr", "\\frac{1065}{66.67}", "\\frac{639}{40}", False),  # 15.97420 vs 15.975
    ("qwen", "\\frac{5}{16}", "\\frac{3}{8}", False),
    ("qwen", "1\\frac{1}{9}", "1\\frac{1}{10}", False),  # mixed numbers
    (SAL4, "14/3", "\\frac{14}{3}", True),
    (SAL4, "\\frac{8}{3}", "\\frac{14}{3}", False),
    # --- \left( ... \right), tuples, ordered pairs
    ("openr", "(3,\\frac{\\pi}{2})", "\\left( 3, \\frac{\\pi}{2} \\right)", True),
    (SAL256, "\\left(3, \\frac{\\pi}{2}\\right)", "\\left( 3, \\frac{\\pi}{2} \\right)", True),
    (SAL4, "(3, \\pi)", "\\left( 3, \\frac{\\pi}{2} \\right)", False),
    (PHI, "(3,\\pi/2)", "(3,\\frac{\\pi}{2})", True),
    ("openr", "(\\frac{3}{2},-13)", "\\left( \\frac{3}{2}, -13 \\right)", True),
    ("openr", "(\\frac{3}{2},-11)", "\\left( \\frac{3}{2}, -13 \\right)", False),
    (EXA, "(\\frac{16}{49},\\frac{48}{49},\\frac{24}{49})", "(16/49,48/49,24/49)", True),
    (GPT, "(a,b,c,d)=(1,-16,-4,43)", "(1,-16,-4,43)", True),
    (GPT, "(p,q,r)=(6,31,-1)", "(6,31,-1)", True),
    (MET, "(-7,\\16,\\5)", "(-7,16,5)", True),  # "\ 16" with BoInf's whitespace stripped
    # --- degrees and units
    ("openr", "30", "30^\\circ", True),
    ("openr", "14.48", "30^\\circ", False),
    (SAL4, "90", "90^\\circ", True),
    (SAL4, "60", "90^\\circ", False),
    ("openr", "864", "864 \\mbox{ inches}^2", True),
    ("openr", "15", "15\\mbox{ cm}^2", True),
    # --- intervals and unions
    ("openr", "(\\frac{3}{5},\\frac{8}{3}]", "\\left(\\frac{3}{5},\\frac{8}{3}\\right]", True),
    (MET, "(3/5,8/3]", "(\\frac{3}{5},\\frac{8}{3}]", True),
    (NEM, "(-\\infty,0)", "(-\\infty,0]", False),  # open vs closed at 0
    ("openr", "(-\\infty,0)", "(-\\infty, 0]", False),
    ("openr", "[-2,7]", "x \\in [-2,7]", True),
    (GPT, "(-\\infty,2)\\;\\cup\\;(3,\\infty)", "(-\\infty,2)\\cup(3,\\infty)", True),
    (
        GPT,
        "\\displaystyle[\\,\\frac{\\pi^{2}}{8},\\\\frac{5\\pi^{2}}{4}\\,]",
        "[\\frac{\\pi^2}{8},\\frac{5\\pi^2}{4}]",
        True,
    ),
    (PHI, "\\lambda\\in(3,4]", "(3,4]", True),
    # --- text answers and multiple choice
    (EXA, "East", "east", True),
    (PHI, "Ellipse", "ellipse", True),
    (GPT, "circle", "ellipse", False),
    ("openr", "circle", "\\text{ellipse}", False),
    (PHI, "odd", "even", False),
    (SAL4, "Angela", "\\text{Evelyn}", False),
    (Q30, "\\textbf{(B)}", "B", True),
    (GPT, "(B)", "B", True),
    ("qwen", "C", "A", False),
    # --- square roots
    (EXA, "11(1+\\sqrt{5})", "11\\sqrt{5}+11", True),
    (PHI, "11+\\sqrt{605}", "11\\sqrt{5}+11", True),  # sqrt(605) = 11 sqrt(5)
    (MET, "4\\sqrt{29}", "2\\sqrt{113}", False),  # sqrt(464) vs sqrt(452)
    (SAL4, "\\sqrt{117}", "3\\sqrt{13}", True),
    ("qwen", "\\sqrt{34}+3\\sqrt{10}", "28", False),
    (EXA, "1-\\sqrt{19},1+\\sqrt{19}", "1\\pm\\sqrt{19}", True),
    (PHI, "\\frac{1}{3+2\\sqrt{2}},3+2\\sqrt{2}", "3\\pm2\\sqrt{2}", True),  # 1/(3+2r2)=3-2r2
    # --- pi
    (NEM, "\\frac{\\pi}{3}", "\\pi", False),
    (PHI, "20000/\\pi", "\\frac{20000}{\\pi}", True),
    (PHI, "-\\pi/6", "-\\frac{\\pi}{6}", True),
    (PHI, "\\frac{216\\pi}{5}", "216", False),
    # --- negative numbers and lists of solutions
    ("openr", "-4,-5", "-4", False),
    ("openr", "-2,1", "1,-2", True),
    ("openr", "1,-2", "-2,1", True),
    # --- large numbers, thousands separators
    ("qwen", "10000", "10{,}000", True),
    ("qwen", "9999\\frac{6}{7}", "10{,}000", False),
    ("qwen", "50625", "50,625", True),
    ("qwen", "759375", "50,625", False),
    ("qwen", "6287000", "6290000", False),
    # --- expressions, equations, complex numbers, odd characters
    (EXA, "\\frac{9a+11}{20}", "\\frac{11+9a}{20}", True),
    (GPT, "x^{3}+3x-6", "x^3+3x-6", True),
    (EXA, "(2n)^2+(2n+1)^2", "8n^2+4n+1", True),
    (GPT, "3-13x", "-13x+3", True),
    ("openr", "(5)(2)", "(a+5)(b+2)", False),
    (SAL4, "\\frac{1}{3} p - q", "p - q", False),
    (AIME24_Q30, "m+n=127", "127", True),
    (GPT, "1+274\\,i", "1+274i", True),
    (MET, "5\\cdot2^{7/4}", "16", False),  # 5 * 2^1.75 = 16.82
    (AIME24_PHI, "\U0001d7ed\U0001d7ec\U0001d7f0", "104", True),  # bold digits 1 0 4
]

# Non-empty answers the grader cannot read: the verdict must be None ("could not parse").
UNPARSABLE: list[tuple[str, str, str]] = [
    ("boinf/analysis_aime2025_Phi-4-reasoning.jsonl", "?", "248"),
    (PHI, "\\{(x,y,z)\\in\\mathbb{R}^3:x^2+y^2+z^2\\le36\\}", "288\\pi"),
    ("openr", "12^{", "12"),
    ("openr", "2R^2+^2+b^2+^2", "3R^2"),
]


def _occurs(source: str, pred: str, gold: str) -> bool:
    if source.startswith("boinf/"):
        return any(
            rec["gold_answer"] == gold and any(a == pred for a, _ in rec["all_answers"])
            for rec in _boinf(source.split("/", 1)[1])
        )
    if source == "qwen":
        return any(rec["gt"] == gold and pred in rec["pred"] for rec in _qwen())
    if source == "openr":
        box = "\\boxed{" + gold + "}"
        return any(
            rec["output"][0]["extracted_answer"] == pred and box in rec["groundtruth"]
            for rec in _openr()
        )
    if source.startswith("sal/"):
        box = "\\boxed{" + pred + "}"
        return any(
            rec["answer"] == gold and any(box in c for c in rec["completions"])
            for rec in _sal(source.split("/", 1)[1])
        )
    raise AssertionError(f"unknown source {source}")


def test_table_is_big_and_varied() -> None:
    assert len(TABLE) >= 40
    assert len({(p, g) for _, p, g, _ in TABLE}) == len(TABLE)
    assert sum(1 for *_, v in TABLE if not v) >= 15
    assert {s.split("/")[0] for s, *_ in TABLE} == {"boinf", "qwen", "openr", "sal"}


@realdata
@pytest.mark.realdata
@pytest.mark.parametrize(("source", "pred", "gold"), [r[:3] for r in TABLE] + UNPARSABLE)
def test_table_rows_occur_in_shared_files(source: str, pred: str, gold: str) -> None:
    assert _occurs(source, pred, gold), f"({pred!r}, {gold!r}) not found in {source}"


@pytest.mark.parametrize(("source", "pred", "gold", "expected"), TABLE)
def test_grade_real_pairs(source: str, pred: str, gold: str, expected: bool) -> None:
    res = grade_one(pred, gold)
    assert res.is_correct is expected, (pred, gold, res)
    assert res.parsed


@pytest.mark.parametrize(("source", "pred", "gold"), UNPARSABLE)
def test_unparsable_answers_give_none(source: str, pred: str, gold: str) -> None:
    res = grade_one(pred, gold)
    assert res.is_correct is None
    assert not res.parsed
    assert res.note in {"unparsable", "timeout", "too long"}


def test_empty_answer_is_wrong_not_unparsed() -> None:
    assert grade_one("", "5") == G.GradeResult(False, False, "empty")
    assert grade_one("...", "864") == G.GradeResult(False, False, "empty")  # a BoInf answer
    g = grade_problems([("5", ["", None, "5"])], workers=1)[0]  # BoInf has null answers
    assert g.is_correct == [False, False, True]
    assert g.empty == [0, 1] and g.unparsed == []
    assert g.answer_keys[:2] == ["", ""]


# ------------------------------------------------------------------------------------------
# Extraction and normalisation
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("so $\\boxed{5}$.", "5"),
        ("\\boxed{1} then \\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
        ("\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}", "\\left( 3, \\frac{\\pi}{2} \\right)"),
        ("\\fbox{x^{2}} end", "x^{2}"),
        ("\\boxed{\\{1,2\\}}", "\\{1,2\\}"),
        ("\\boxed 7.", "7."),
        ("no box here", None),
        ("cut off \\boxed{\\frac{1}{", None),
    ],
)
def test_extract_boxed(text: str, expected: str | None) -> None:
    assert extract_boxed(text) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})"),
        ("\\dfrac{14}{3}", "\\frac{14}{3}"),
        ("90^\\circ", "90"),
        ("\\text{Evelyn}", "Evelyn"),
        ("\\$32,\\!348", "32348"),
        ("10{,}000", "10000"),
        ("5.4 \\text{ cents}", "5.4"),
        ("\\frac{270}7\\text{ degrees}", "\\frac{270}{7}"),
        ("14/3", "\\frac{14}{3}"),
        ("(3/5,8/3]", "(\\frac{3}{5},\\frac{8}{3}]"),
        (".35625", "0.35625"),
        ("\\pi r^2", "\\pi r^2"),  # the space after a command is kept
        ("\\begin{pmatrix} -2 \\\\ -14 \\end{pmatrix}", "\\begin{pmatrix}-2\\\\-14\\end{pmatrix}"),
        ("(-7,\\16,\\5)", "(-7,16,5)"),
        ("\\boxed{x^{3}}.", "x^3"),
        ("", ""),
    ],
)
def test_normalize_answer(raw: str, expected: str) -> None:
    assert normalize_answer(raw) == expected


_TOKENS = [
    "1", "2", "12", "-", "+", "/", ".", ",", "x", "\\pi", "\\frac{1}{2}", "\\dfrac", "{", "}",
    "(", ")", "[", "]", "^", "_", "\\circ", "\\left(", "\\right)", " ", "\\,", "\\!", "$",
    "\\text{", "\\sqrt", "\\boxed{", "\\%", "\\\\", "\\infty", "{,}",
]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_TOKENS), max_size=12).map("".join))
def test_normalize_is_idempotent(s: str) -> None:
    once = normalize_answer(s)
    assert normalize_answer(once) == once


def test_grader_version_names_math_verify() -> None:
    from importlib.metadata import version

    v = grader_version()
    assert v.startswith(f"math-verify {version('math-verify')} / ttslab-grading ")
    assert G.GRADER_NAME == "math-verify"


# ------------------------------------------------------------------------------------------
# Clustering
# ------------------------------------------------------------------------------------------


def test_clusters_of_real_answers() -> None:
    # Boxed answers of one SAL problem (gold (3, pi/2)), as written in the completions.
    answers = [
        "\\left(3, \\frac{\\pi}{2}\\right)",
        "(3, \\pi)",
        "\\left(3,\\frac{\\pi}{2}\\right)",
        "(3,\\frac{\\pi}{2})",
        "\\left( 3, \\  \\frac{\\pi}{2}\\right)",
        "(3,\\pi)",
        "\\left(3, \\frac{3\\pi}{2}\\right)",
        "(3, 0)",
    ]
    res = cluster_answers(answers)
    k = res.keys
    assert k[0] == k[2] == k[3] == k[4]
    assert k[1] == k[5]
    assert len({k[0], k[1], k[6], k[7]}) == 4
    assert res.unparsed == []


def test_clusters_merge_equivalent_forms_only() -> None:
    answers = ["\\frac{14}{3}", "14/3", "\\dfrac{14}{3}", "4.666666666666667", "\\frac{8}{3}",
               "8/3", "5", "5.0", "\\sqrt{117}", "3\\sqrt{13}", "-5"]  # fmt: skip
    k = cluster_answers(answers).keys
    assert k[0] == k[1] == k[2] == k[3]
    assert k[4] == k[5]
    assert k[6] == k[7]
    assert k[8] == k[9]
    assert len({k[0], k[4], k[6], k[8], k[10]}) == 5
    assert k[0] == "\\frac{14}{3}"  # the key is the first member's normalised form


def test_text_answers_are_not_anagrams() -> None:
    # SymPy reads a bare word as a product of one-letter symbols: Evelyn == Evenly.
    k = cluster_answers(["Evelyn", "Evenly", "\\text{Evelyn}", "evelyn"]).keys
    assert k[0] == k[2] == k[3] != k[1]
    assert grade_one("Evenly", "\\text{Evelyn}").is_correct is False


def test_grade_problems_groups_correct_answers_in_one_cluster() -> None:
    [g] = grade_problems(
        [
            (
                "\\left( 3, \\frac{\\pi}{2} \\right)",
                ["(3,\\pi/2)", "(3, \\pi)", "(3,\\frac{\\pi}{2})"],
            )
        ],
        workers=1,
    )
    assert g.is_correct == [True, False, True]
    assert g.answer_keys[0] == g.answer_keys[2] != g.answer_keys[1]


# ------------------------------------------------------------------------------------------
# Time limits and threads
# ------------------------------------------------------------------------------------------


def test_slow_verify_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    G._mv()
    G._clear_caches()

    def slow_verify(*args: object, **kwargs: object) -> bool:
        time.sleep(30)
        return True

    monkeypatch.setitem(G._MV, "verify", slow_verify)
    t0 = time.monotonic()
    res = grade_one("\\frac{1}{3}", "0.5", timeout_s=0.3)
    assert time.monotonic() - t0 < 5
    assert res == G.GradeResult(None, True, "timeout")
    [g] = grade_problems([("0.5", ["\\frac{1}{3}", "0.5"])], workers=1, timeout_s=0.3)
    assert g.is_correct == [None, True]
    assert g.unparsed == [0] and g.notes == ["timeout"]
    G._clear_caches()


def test_slow_parse_is_reported_as_unparsed(monkeypatch: pytest.MonkeyPatch) -> None:
    G._mv()
    G._clear_caches()

    def slow_parse(*args: object, **kwargs: object) -> list[object]:
        time.sleep(30)
        return []

    monkeypatch.setitem(G._MV, "parse", slow_parse)
    t0 = time.monotonic()
    problems = [("7", ["x+1", "7"])]
    [g] = grade_problems(problems, workers=1, timeout_s=0.3)
    assert time.monotonic() - t0 < 5
    assert g.is_correct == [None, True]  # "7" equals the gold as a string: no parse needed
    assert g.unparsed == [0] and g.notes == ["timeout"]
    report = build_report(problems, [g])
    assert report.n_unparsed == 1
    assert report.unparsed_examples == [(0, 0, "x+1", "timeout")]
    G._clear_caches()


def test_grading_refuses_a_non_main_thread_with_a_time_limit() -> None:
    out: dict[str, object] = {}

    def run() -> None:
        try:
            grade_one("\\frac{1}{3}", "0.5", timeout_s=1.0)
        except GradingError as e:
            out["error"] = e
        out["no_limit"] = grade_one("1/2", "0.5", timeout_s=0)

    th = threading.Thread(target=run)
    th.start()
    th.join(30)
    assert isinstance(out.get("error"), GradingError)
    assert out["no_limit"] == G.GradeResult(True, True, "math-verify")


# ------------------------------------------------------------------------------------------
# Process pool
# ------------------------------------------------------------------------------------------


@realdata
@pytest.mark.realdata
def test_pool_equals_in_process_and_handles_a_slow_input() -> None:
    problems: list[tuple[str, list[str | None]]] = [(r["gt"], r["pred"]) for r in _qwen()]
    problems += [(r["gold_answer"], [a for a, _ in r["all_answers"]])
                 for r in _boinf("analysis_math500_gpt-oss-20b.jsonl")[:60]]  # fmt: skip
    sal = _sal("llama32_1b_math500_n4.jsonl")
    problems += [(r["answer"], [extract_boxed(c) or "" for c in r["completions"]]) for r in sal]
    # A synthetic answer whose comparison would run for minutes (9^387420489).
    problems.append(("5", ["9^{9^{9}}", "5"]))
    seen: list[tuple[int, int]] = []
    pooled = grade_problems(
        problems,
        workers=2,
        timeout_s=1.0,
        chunk_answers=500,
        progress=lambda d, t: seen.append((d, t)),
    )
    local = grade_problems(problems, workers=1, timeout_s=1.0)
    assert pooled == local
    assert len(pooled) == len(problems)
    assert pooled[-1].is_correct == [None, True] and pooled[-1].unparsed == [0]
    assert seen[-1] == (len(problems), len(problems))
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_an_interrupt_while_the_chunks_are_submitted_does_not_wait_for_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ctrl-C can arrive while the workers start and the chunks are submitted: grading
    stops at once. (The pool's `with` block waited for every queued chunk first, and
    `ttslab import` ignored a Ctrl-C for the whole grading: seen on a loaded machine.)"""
    from contextlib import contextmanager

    @contextmanager
    def interrupted_after_submits() -> Iterator[None]:
        yield
        raise KeyboardInterrupt

    monkeypatch.setattr(G, "_script_main_hidden", interrupted_after_submits)
    # six chunks, each comparing an answer that runs into its 5 s limit (9^387420489):
    # at least 15 s of grading on two workers
    problems: list[tuple[str, list[str | None]]] = [("5", ["9^{9^{9}}"])] * 6
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        grade_problems(problems, workers=2, timeout_s=5.0, chunk_answers=1)
    assert time.monotonic() - t0 < 7.5


STOPPED_SCRIPT = """
import sys
sys.path.insert(0, sys.argv[1])
import time
import concurrent.futures.process as cfp
from core.grading import grade_problems
_shutdown = cfp.ProcessPoolExecutor.shutdown
def late_shutdown(self, *args, **kwargs):
    time.sleep(0.5)  # the pool's manager thread sees its workers gone first
    return _shutdown(self, *args, **kwargs)
cfp.ProcessPoolExecutor.shutdown = late_shutdown
# eight chunks of 200 kB each (one answer that runs into its 5 s limit, 200 long ones):
# more than the workers and the pool's queue hold, and larger than a pipe's buffer
problems = [("5", ["9^{9^{9}}"] + ["x" * 1000] * 200)] * 8
ticks = []
def stop(pids):
    ticks.append(pids)
    if len(ticks) >= 4:
        raise RuntimeError("stop")
try:
    grade_problems(problems, workers=2, timeout_s=5.0, chunk_answers=1, on_wait=stop)
except RuntimeError:
    print("stopped", flush=True)
"""


def test_grading_stopped_mid_run_lets_the_process_exit_cleanly() -> None:
    """A stop from `on_wait` (a time limit, a cancel) while chunks are queued: the
    process exits at once, with no traceback from the pool's threads. (Cancelling the
    queued futures made the pool's manager thread die on them in Python 3.11, with a
    traceback, before it closed its queues and stopped its workers. The late shutdown
    below makes the manager thread see its workers gone first, as it sometimes did on a
    loaded machine.)"""
    root = str(Path(__file__).resolve().parents[1])
    proc = subprocess.run(
        [sys.executable, "-c", STOPPED_SCRIPT, root],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "stopped"
    assert "Traceback" not in proc.stderr and "Exception in thread" not in proc.stderr, proc.stderr[
        -3000:
    ]


def test_grading_workers_start_with_math_verify_loaded() -> None:
    """Workers fork from a forkserver that imported math-verify once (each worker imported
    it itself, 1-3 s, paid by every import that grades); the forkserver does not import
    the parent's __main__."""
    from concurrent.futures import ProcessPoolExecutor

    ctx = G._pool_context()
    if ctx.get_start_method() != "forkserver":
        pytest.fail("this platform has no forkserver: workers are spawned")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        loaded = pool.submit(eval, "'math_verify.parser' in __import__('sys').modules")
        main = pool.submit(eval, "getattr(__import__('sys').modules['__main__'], '__file__', '')")
        assert loaded.result(timeout=120) is True
        assert "pytest" not in str(main.result(timeout=120))


def test_pool_does_not_rerun_an_unguarded_main_script(tmp_path: Path) -> None:
    # Streamlit runs the page script as __main__ without a main guard; spawn/forkserver
    # workers would execute it again. The script below prints once per execution.
    script = tmp_path / "page.py"
    script.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})\n"
        "from core.grading import grade_problems\n"
        "print('page ran', flush=True)\n"
        "out = grade_problems([('1/2', ['0.5', '2'])] * 4, workers=2, chunk_answers=1)\n"
        "print([g.is_correct for g in out], flush=True)\n",
        encoding="utf-8",
    )
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["page ran", str([[True, False]] * 4)]


def test_grade_problems_rejects_bad_worker_count() -> None:
    with pytest.raises(GradingError):
        grade_problems([("1", ["1"])], workers=0)
    assert grade_problems([], workers=2) == []


# ------------------------------------------------------------------------------------------
# Agreement with a file's own labels
# ------------------------------------------------------------------------------------------


def test_compare_with_labels_semantics() -> None:
    assert compare_with_labels([True, False, None, True], [True, True, False, True]) == (2, [1, 2])
    with pytest.raises(GradingError):
        compare_with_labels([True], [True, False])


@realdata
@pytest.mark.realdata
def test_qwen_label_disagreements() -> None:
    rows = _qwen()
    problems = [(r["gt"], r["pred"]) for r in rows]
    gradings = grade_problems(problems, workers=1)
    ours = [c for g in gradings for c in g.is_correct]
    theirs = [bool(s) for r in rows for s in r["score"]]
    n, idx = compare_with_labels(ours, theirs)
    # Read off the file: the one pair where the file's label is wrong is "10000" against the
    # gold "10{,}000" (labelled False). Every other label agrees with the mathematics.
    flat = [(p, r["gt"], s) for r in rows for p, s in zip(r["pred"], r["score"], strict=True)]
    expected = [i for i, (p, gt, s) in enumerate(flat) if (p, gt) == ("10000", "10{,}000")]
    assert expected and all(flat[i][2] is False for i in expected)
    assert idx == expected
    assert n == len(expected) == 1
    report = build_report(problems, gradings, labels=[r["score"] for r in rows])
    assert report.n_answers == 800 and report.n_label_disagreements == 1
    assert report.n_unparsed == 0
    assert "disagreements with the file's own labels: 1" in report.summary()


def test_single_chunk_from_a_non_main_thread_uses_a_worker() -> None:
    # a Streamlit upload grades from a script thread: one small problem must still work
    import threading

    from core.grading import grade_problems

    out: list[object] = []

    def run() -> None:
        try:
            out.append(grade_problems([("\\frac{1}{2}", ["0.5", "1/2", "3"])], workers=2))
        except Exception as exc:
            out.append(exc)

    t = threading.Thread(target=run)
    t.start()
    t.join(timeout=120)
    (res,) = out
    assert not isinstance(res, Exception), res
    assert res[0].is_correct == [True, True, False]  # type: ignore[index]


def test_grading_notes_give_a_small_share_as_it_is() -> None:
    """8 unparsed answers of 29,400 are 0.027 %, not "0.0 %" (BoInf AIME 2025's notes)."""
    from core.importers.grade import GradeSummary

    notes = " ".join(
        GradeSummary(grader="g", n_responses=29400, n_correct=19450, n_unparsed=8).notes()
    )
    assert "19450 equivalent to the gold answer (66.2 %)" in notes
    assert "8 could not be parsed (0.027 %;" in notes
    none = " ".join(GradeSummary(grader="g", n_responses=100, n_unparsed=0).notes())
    assert "0 could not be parsed (0.0 %;" in none
