"""Hugging Face search-and-learn best-of-N output (`best_of_n_completions.jsonl`).

One JSON line per problem: ``completions[n]`` (full texts), ``scores[n]`` (per-step PRM
scores of each completion), ``agg_scores[n]`` (the run's own aggregation of the steps, by
default the last step), gold ``answer``, ``unique_id``, ``problem``, ``level``, ``subject``,
optionally ``completion_tokens[n]``; plus the run's own picks (``pred``, ``pred_maj@N`` ...),
which are not needed.

Mapping: one response per completion, ``sample_idx`` = its position; verifier ``prm``;
score = ``agg_scores[i]`` (the file's own aggregation) or, without it, the last step;
step_scores = ``scores[i]``; answer = content of the completion's last ``\\boxed{}`` (none
when it has no closed box: an empty answer, incorrect); gold = ``answer``; ``n_tokens`` =
``completion_tokens[i]``. Correctness and answer clusters come from the grader at import.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from core.grading import extract_boxed
from core.importers.common import (
    DEFAULT_LLM,
    Columns,
    bad_record,
    finite_number,
    json_lines,
)
from core.importers.errors import IssueList
from core.importers.generic import RawRead, ReadOptions, display_name
from core.importers.limits import too_many_boxes

FMT = "sal"
VERIFIER = "prm"
HELP = (
    "search-and-learn best_of_n_completions.jsonl: completions, per-step PRM scores, "
    "agg_scores, gold answer (answers from \\boxed{}, graded at import)"
)

_COLS = (
    "problem_id",
    "sample_idx",
    "llm",
    "verifier",
    "answer",
    "gold_answer",
    "score",
    "step_scores",
    "n_tokens",
    "level",
    "subject",
    "problem_text",
    "_loc",
)


def is_sal(rec: object) -> bool:
    return (
        isinstance(rec, dict)
        and isinstance(rec.get("completions"), list)
        and isinstance(rec.get("scores"), list)
    )


def read_sal(path: Path, opts: ReadOptions | None = None) -> RawRead:
    opts = opts or ReadOptions()
    file = display_name(path)
    recs = json_lines(path, opts)
    issues = IssueList()
    cols = Columns(*_COLS)
    agg_kinds: set[str] | None = None  # step reductions that reproduce agg_scores so far
    for loc, rec in recs.items:
        if not isinstance(rec, dict):
            issues.add(
                bad_record(file, loc, "line", f"expected a JSON object, got {type(rec).__name__}")
            )
            continue
        kinds = _one(rec, loc, file, cols, issues)
        if kinds is not None:
            agg_kinds = kinds if agg_kinds is None else agg_kinds & kinds
    issues.raise_if_any()
    notes = list(recs.notes)
    if agg_kinds is None:
        notes.append("search-and-learn: no agg_scores in the file, score = last step score")
    elif agg_kinds:
        notes.append(
            "search-and-learn: score = the file's agg_scores (here equal to the "
            f"{' = '.join(sorted(agg_kinds))} step score)"
        )
    else:
        notes.append("search-and-learn: score = the file's agg_scores")
    return RawRead(cols.frame(), FMT, "line", recs.sha256, notes, grade=True)


def _agg_matches(steps: list[Any], agg: Any) -> set[str]:
    """Which of last / min / prod of the step scores equal the stored aggregate."""
    fa = finite_number(agg)
    vals = [finite_number(x) for x in steps]
    if fa is None or not vals or any(v is None for v in vals):
        return set()
    fl = [float(v) for v in vals if v is not None]
    cand = {"last": fl[-1], "min": min(fl), "prod": math.prod(fl)}
    return {k for k, v in cand.items() if math.isclose(v, fa, rel_tol=1e-9, abs_tol=1e-12)}


def _one(
    rec: dict[str, Any], loc: int, file: str, cols: Columns, issues: IssueList
) -> set[str] | None:
    """Rows of one line; returns the reductions matching agg_scores (None: no agg_scores)."""
    if not is_sal(rec):
        msg = "expected 'completions' and 'scores' lists (a search-and-learn record)"
        issues.add(bad_record(file, loc, "line", msg, "completions"))
        return None
    completions = rec["completions"]
    steps = rec["scores"]
    n = len(completions)
    agg = rec.get("agg_scores")
    tokens = rec.get("completion_tokens")
    for name, seq in (("scores", steps), ("agg_scores", agg), ("completion_tokens", tokens)):
        if seq is None:
            continue
        if not isinstance(seq, list):
            issues.add(bad_record(file, loc, "line", "expected a list", name))
            return None
        if len(seq) != n:
            msg = f"{name} has {len(seq)} values but completions has {n}"
            issues.add(bad_record(file, loc, "line", msg, name))
            return None
    pid = rec.get("unique_id") if rec.get("unique_id") is not None else rec.get("problem")
    if pid is None:
        msg = "missing field: unique_id (or problem)"
        issues.add(bad_record(file, loc, "line", msg, "unique_id"))
        return None
    if n == 0:
        issues.add(bad_record(file, loc, "line", "no completions on this line", "completions"))
        return None
    for i, text in enumerate(completions):
        boxes = too_many_boxes(text) if isinstance(text, str) else None
        if boxes is not None:
            issues.add(bad_record(file, loc, "line", f"completion {i}: {boxes}", "completions"))
            return None
    kinds = {"last", "min", "prod"}
    for i in range(n):
        text = completions[i]
        st = steps[i]
        a = agg[i] if agg is not None else None
        if isinstance(st, list) and not st:
            st = None  # an empty step list: the stored aggregate (if any) is the score
        elif isinstance(st, list) and agg is not None:
            kinds &= _agg_matches(st, a)
        cols.add(
            problem_id=str(pid),
            sample_idx=i,
            llm=DEFAULT_LLM,
            verifier=VERIFIER,
            answer=extract_boxed(text) if isinstance(text, str) else None,
            gold_answer=rec.get("answer"),
            score=a,
            step_scores=st,
            n_tokens=tokens[i] if tokens is not None else None,
            level=rec.get("level"),
            subject=rec.get("subject"),
            problem_text=rec.get("problem"),
            _loc=loc,
        )
    return kinds if agg is not None else None
