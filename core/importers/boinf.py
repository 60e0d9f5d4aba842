"""BoInf (best-of-infinity) ``analysis_<bench>_<LLM>.jsonl`` files.

One JSON line per problem: ``problem_num``, ``gold_answer``, ``majority_answer``,
``answer_counts``, ``all_answers: [[answer, n_tokens], ...]`` in sampling order. There is
no reward model: the per-response signal is the answer's length in tokens.

Mapping: LLM = the ``<LLM>`` part of the file name (after the last ``_``), problem id =
``<bench>-<problem_num>`` (so that AIME 2024 and AIME 2025 problems stay apart when a
folder of files is imported as one dataset); ``sample_idx`` = position in
``all_answers``; verifier ``length`` with score = ``n_tokens`` (token counts of 0 occur
and are kept); answers are graded against ``gold_answer`` at import. An empty or null
answer (no final answer was extracted) is incorrect and forms its own cluster, as in the
file's ``answer_counts``.
"""

from __future__ import annotations

import re
from pathlib import Path

from core.importers.common import (
    DEFAULT_LLM,
    Columns,
    bad_record,
    base_name,
    json_lines,
)
from core.importers.errors import IssueList
from core.importers.generic import RawRead, ReadOptions, display_name

FMT = "boinf"
VERIFIER = "length"
HELP = (
    "BoInf analysis_<bench>_<LLM>.jsonl: all answers with token counts (signal 'length' = "
    "tokens; LLM from the file name; graded at import)"
)

_NAME_RE = re.compile(r"(?:^|_)analysis_(?P<bench>.+)_(?P<llm>[^_]+)$")
_COLS = (
    "problem_id",
    "sample_idx",
    "llm",
    "verifier",
    "answer",
    "gold_answer",
    "score",
    "n_tokens",
    "_loc",
)


def is_boinf(rec: object) -> bool:
    return (
        isinstance(rec, dict)
        and isinstance(rec.get("all_answers"), list)
        and ("answer_counts" in rec or "majority_answer" in rec)
    )


def names_of(path: Path) -> tuple[str, str]:
    """(benchmark, LLM) of a BoInf file name; ("", stem) when it does not follow the
    ``analysis_<bench>_<LLM>.jsonl`` pattern."""
    stem = base_name(path)
    m = _NAME_RE.search(stem)
    if m is None:
        return "", stem or DEFAULT_LLM
    return m.group("bench"), m.group("llm")


def read_boinf(path: Path, opts: ReadOptions | None = None) -> RawRead:
    opts = opts or ReadOptions()
    file = display_name(path)
    bench, llm = names_of(path)
    recs = json_lines(path, opts)
    issues = IssueList()
    cols = Columns(*_COLS)
    for loc, rec in recs.items:
        if not isinstance(rec, dict):
            msg = f"expected a JSON object, got {type(rec).__name__}"
            issues.add(bad_record(file, loc, "line", msg))
            continue
        num = rec.get("problem_num")
        if num is None:
            issues.add(bad_record(file, loc, "line", "missing field", "problem_num"))
            continue
        answers = rec.get("all_answers")
        if not isinstance(answers, list) or not answers:
            msg = "expected a non-empty list of [answer, n_tokens] pairs"
            issues.add(bad_record(file, loc, "line", msg, "all_answers"))
            continue
        pid = f"{bench}-{num}" if bench else str(num)
        gold = rec.get("gold_answer")
        for i, item in enumerate(answers):
            if not isinstance(item, list) or len(item) != 2:
                msg = f"all_answers[{i}]: expected [answer, n_tokens], got {item!r}"[:160]
                issues.add(bad_record(file, loc, "line", msg, "all_answers"))
                break
            ans, tok = item
            cols.add(
                problem_id=pid,
                sample_idx=i,
                llm=llm,
                verifier=VERIFIER,
                answer=ans if ans is None or isinstance(ans, str) else str(ans),
                gold_answer=gold,
                score=tok,
                n_tokens=tok,
                _loc=loc,
            )
    issues.raise_if_any()
    notes = [
        *recs.notes,
        "BoInf: no reward model; verifier 'length' = the response's token count "
        "(some counts are 0); answers graded against gold_answer",
        "'length' is lower-is-better (shorter responses are more often correct): declared "
        "at import, so best-of-N picks the shortest response",
    ]
    return RawRead(
        cols.frame(), FMT, "line", recs.sha256, notes, grade=True, lower_is_better=(VERIFIER,)
    )
