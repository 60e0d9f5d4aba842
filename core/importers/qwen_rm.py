"""Qwen2.5-Math ``rm_maj_eval`` JSONL (the input of ``evaluation/rm_maj_eval.py``).

One JSON line per problem: ``idx``, ``question``, ``gt`` (gold answer as the repository's
parser normalised it), ``level``, ``pred[n]`` (extracted answers), ``score[n]``
(correctness labels) and ``pred_score[n]`` (outcome-reward-model score per sample, a list
holding one float).

Mapping: problem = ``idx``; ``sample_idx`` = position; verifier ``orm`` with the raw ORM
score (it is outside [0, 1]; the analysis transforms scores where it needs to); answer =
``pred[i]``; gold = ``gt``; the file's ``score`` labels are kept, the grader clusters the
answers and reports how often it disagrees with the labels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.importers.common import (
    DEFAULT_LLM,
    Columns,
    bad_record,
    json_lines,
)
from core.importers.errors import IssueList
from core.importers.generic import RawRead, ReadOptions, display_name

FMT = "qwen-rm"
VERIFIER = "orm"
HELP = "Qwen2.5-Math rm_maj_eval JSONL: pred, score (labels, kept), pred_score (ORM, raw scale)"

_COLS = (
    "problem_id",
    "sample_idx",
    "llm",
    "verifier",
    "answer",
    "gold_answer",
    "is_correct",
    "score",
    "step_scores",
    "level",
    "problem_text",
    "_loc",
)


def is_qwen_rm(rec: object) -> bool:
    return (
        isinstance(rec, dict)
        and isinstance(rec.get("pred"), list)
        and isinstance(rec.get("pred_score"), list)
    )


def _orm_score(v: Any) -> tuple[Any, list[Any] | None]:
    """(score, step scores) of one ``pred_score`` entry: a list of one float (the score),
    a longer list (per-step scores: score = last), or a bare number."""
    if isinstance(v, list):
        if len(v) == 1:
            return v[0], None
        if len(v) > 1:
            return None, v
        return None, None
    return v, None


def read_qwen_rm(path: Path, opts: ReadOptions | None = None) -> RawRead:
    opts = opts or ReadOptions()
    file = display_name(path)
    recs = json_lines(path, opts)
    issues = IssueList()
    cols = Columns(*_COLS)
    for loc, rec in recs.items:
        if not isinstance(rec, dict):
            msg = f"expected a JSON object, got {type(rec).__name__}"
            issues.add(bad_record(file, loc, "line", msg))
            continue
        if not is_qwen_rm(rec):
            msg = "expected 'pred' and 'pred_score' lists (an rm_maj_eval record)"
            issues.add(bad_record(file, loc, "line", msg, "pred"))
            continue
        preds, scores = rec["pred"], rec["pred_score"]
        labels = rec.get("score")
        n = len(preds)
        if len(scores) != n:
            msg = f"pred_score has {len(scores)} values but pred has {n}"
            issues.add(bad_record(file, loc, "line", msg, "pred_score"))
            continue
        if labels is not None and (not isinstance(labels, list) or len(labels) != n):
            msg = f"score (labels) must be a list of {n} values like pred"
            issues.add(bad_record(file, loc, "line", msg, "score"))
            continue
        pid = rec.get("idx") if rec.get("idx") is not None else rec.get("question")
        if pid is None:
            issues.add(bad_record(file, loc, "line", "missing field: idx", "idx"))
            continue
        for i in range(n):
            score, steps = _orm_score(scores[i])
            cols.add(
                problem_id=str(pid),
                sample_idx=i,
                llm=DEFAULT_LLM,
                verifier=VERIFIER,
                answer=preds[i],
                gold_answer=rec.get("gt") if rec.get("gt") is not None else rec.get("answer"),
                is_correct=labels[i] if labels is not None else None,
                score=score,
                step_scores=steps,
                level=rec.get("level"),
                problem_text=rec.get("question"),
                _loc=loc,
            )
    issues.raise_if_any()
    notes = [
        *recs.notes,
        "Qwen rm_maj: verifier 'orm' = pred_score (raw ORM scale), correctness = the "
        "file's score labels",
    ]
    return RawRead(cols.frame(), FMT, "line", recs.sha256, notes, grade=True)
