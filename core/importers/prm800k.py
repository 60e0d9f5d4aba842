"""OpenAI PRM800K scored best-of-N samples (`scored-test-samples.jsonl`).

One sample per JSON line (a ``.json`` file holding one such object, or an array of them,
is read too): ``problem``, ``unique_id``, ``answer`` (the sample's final answer),
``ground_truth_answer``, ``is_correct``, ``steps``, ``rating_probs`` (per step, the PRM's
probabilities of the ratings ``"1"``, ``"0"``, ``"-1"``), ``prm_score``, ``orm_score``,
``subject``, ``level``.

Mapping: problem = ``unique_id`` (else the problem text); ``sample_idx`` = order of the
sample among its problem's samples in the file; two verifiers per response:
``prm`` (score = ``prm_score``; step scores = P("1") + P("0") per step, i.e. the chance the
step is not rated bad, so that their product is exactly the file's ``prm_score``, as in
"Let's Verify Step by Step", which counts neutral steps as fine) and ``orm`` (score =
``orm_score``). The file's ``is_correct`` labels are kept; the grader still clusters the
answers and reports how often it disagrees with the labels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.importers.common import (
    DEFAULT_LLM,
    Columns,
    bad_record,
    finite_number,
    json_records,
)
from core.importers.errors import IssueList
from core.importers.generic import RawRead, ReadOptions, display_name

FMT = "prm800k"
HELP = (
    "PRM800K scored-test-samples.jsonl: prm_score, orm_score, per-step rating_probs, "
    "is_correct labels (kept; the grader's disagreement is reported)"
)
KEYS = ("prm_score", "orm_score", "rating_probs")

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
    "subject",
    "problem_text",
    "_loc",
)


def is_prm800k(rec: object) -> bool:
    return isinstance(rec, dict) and any(k in rec for k in KEYS)


def step_ok_prob(probs: Any) -> float | None:
    """P("1") + P("0") of one step's rating probabilities (None when malformed)."""
    if not isinstance(probs, dict):
        return None
    p1 = finite_number(probs.get("1", 0.0))
    p0 = finite_number(probs.get("0", 0.0))
    if p1 is None or p0 is None or ("1" not in probs and "0" not in probs):
        return None
    return p1 + p0


def read_prm800k(path: Path, opts: ReadOptions | None = None) -> RawRead:
    opts = opts or ReadOptions()
    file = display_name(path)
    recs = json_records(path, opts)
    kind = recs.loc_kind
    issues = IssueList()
    cols = Columns(*_COLS)
    seen: dict[str, int] = {}
    for loc, rec in recs.items:
        if not isinstance(rec, dict):
            msg = f"expected a JSON object, got {type(rec).__name__}"
            issues.add(bad_record(file, loc, kind, msg))
            continue
        pid = rec.get("unique_id") if rec.get("unique_id") is not None else rec.get("problem")
        if pid is None:
            issues.add(
                bad_record(file, loc, kind, "missing field: unique_id (or problem)", "unique_id")
            )
            continue
        pid = str(pid)
        idx = seen.get(pid, 0)
        seen[pid] = idx + 1
        steps: list[float] | None = None
        probs = rec.get("rating_probs")
        if isinstance(probs, list) and probs:
            vals = [step_ok_prob(p) for p in probs]
            if any(v is None for v in vals):
                k = next(j for j, v in enumerate(vals) if v is None)
                msg = f"rating_probs[{k}]: expected an object of rating -> probability"
                issues.add(bad_record(file, loc, kind, msg, "rating_probs"))
                continue
            steps = [float(v) for v in vals if v is not None]
        elif probs is not None and not isinstance(probs, list):
            issues.add(bad_record(file, loc, kind, "expected a list", "rating_probs"))
            continue
        common = {
            "problem_id": pid,
            "sample_idx": idx,
            "llm": DEFAULT_LLM,
            "answer": rec.get("answer"),
            "gold_answer": rec.get("ground_truth_answer"),
            "is_correct": rec.get("is_correct"),
            "level": rec.get("level"),
            "subject": rec.get("subject"),
            "problem_text": rec.get("problem"),
            "_loc": loc,
        }
        if "prm_score" in rec or steps is not None:
            cols.add(verifier="prm", score=rec.get("prm_score"), step_scores=steps, **common)
        if "orm_score" in rec:
            cols.add(verifier="orm", score=rec.get("orm_score"), **common)
    issues.raise_if_any()
    notes = [
        *recs.notes,
        "PRM800K: verifier 'prm' = prm_score with step scores P('1') + P('0') per step "
        "(their product is prm_score); verifier 'orm' = orm_score; is_correct labels from "
        "the file",
    ]
    return RawRead(cols.frame(), FMT, kind, recs.sha256, notes, grade=True)
