"""RewardMATH ``<RM>_reward.json`` files (results/RewardMATH of kimsh0507/RewardMATH_official).

One JSON array per reward model; per problem: ``problem``, ``solution_reference[10]`` (who
wrote each of the ten fixed solutions; ``human_to_GPT-4`` is the correct one, always at
index 0 in the public files, the other nine are incorrect solutions of nine LLMs) and
``score[10]``: one float per solution for an ORM, a list of step scores for a PRM.

Mapping: one response set (LLM ``rewardmath``) of 10 responses per problem; problem id =
position of the problem in the file (the public files list the same problems in the same
order; a folder import checks that the problem texts agree); verifier = the file name
without ``_reward.json``; correct = the solution written by ``human_to_GPT-4`` (index 0 when
the file has no ``solution_reference``). PRM step lists are kept; the stored score of a PRM
is the minimum step score (the file holds no aggregate; the RewardMATH evaluation code
offers min, max, prod, mean, ... and min is the usual choice; every other reduction can be
chosen in the analysis because the steps are stored). There are no answers: each response
is its own cluster, so the data supports best-of-N and weight-function (score
distribution) studies only; voting is not meaningful.
"""

from __future__ import annotations

from pathlib import Path

from core.importers.common import (
    Columns,
    bad_record,
    base_name,
    finite_number,
    json_records,
)
from core.importers.errors import Issue, IssueList
from core.importers.generic import RawRead, ReadOptions, display_name

FMT = "rewardmath"
LLM = "rewardmath"
CORRECT_SOURCE = "human_to_GPT-4"
NO_ANSWERS_NOTE = (
    "RewardMATH: no answers: best-of-N and weight-function studies only, voting is not "
    "meaningful (each response is its own cluster)"
)
HELP = (
    "RewardMATH <RM>_reward.json: 10 fixed solutions per problem (index 0 correct) scored "
    "by one reward model (verifier from the file name); no answers: best-of-N and "
    "weight-function studies only"
)

_COLS = (
    "problem_id",
    "sample_idx",
    "llm",
    "verifier",
    "is_correct",
    "score",
    "step_scores",
    "problem_text",
    "_loc",
)


def is_rewardmath(rec: object) -> bool:
    return (
        isinstance(rec, dict)
        and isinstance(rec.get("score"), list)
        and isinstance(rec.get("solution_reference"), list)
    )


def verifier_of(path: Path) -> str:
    stem = base_name(path, (".json", ".jsonl"))
    for suffix in ("_reward", "-reward"):
        if stem.endswith(suffix) and len(stem) > len(suffix):
            return stem[: -len(suffix)]
    return stem


def read_rewardmath(path: Path, opts: ReadOptions | None = None) -> RawRead:
    opts = opts or ReadOptions()
    file = display_name(path)
    verifier = verifier_of(path)
    recs = json_records(path, opts)
    kind = recs.loc_kind
    issues = IssueList()
    cols = Columns(*_COLS)
    n_prm = n_orm = 0
    for pos, (loc, rec) in enumerate(recs.items):
        if not isinstance(rec, dict) or not isinstance(rec.get("score"), list):
            issues.add(bad_record(file, loc, kind, "expected an object with a 'score' list"))
            continue
        scores = rec["score"]
        refs = rec.get("solution_reference")
        if refs is not None and (not isinstance(refs, list) or len(refs) != len(scores)):
            msg = f"solution_reference must list {len(scores)} sources like score"
            issues.add(bad_record(file, loc, kind, msg, "solution_reference"))
            continue
        correct = (
            [r == CORRECT_SOURCE for r in refs]
            if refs is not None
            else [i == 0 for i in range(len(scores))]
        )
        if sum(correct) != 1:
            msg = f"expected exactly one solution by {CORRECT_SOURCE!r}, found {sum(correct)}"
            issues.add(bad_record(file, loc, kind, msg, "solution_reference"))
            continue
        for i, s in enumerate(scores):
            steps = None
            score: object = s
            if isinstance(s, list):
                n_prm += 1
                steps = s
                vals = [finite_number(x) for x in s]
                score = min(v for v in vals if v is not None) if s and None not in vals else None
            else:
                n_orm += 1
            cols.add(
                problem_id=f"{pos:04d}",
                sample_idx=i,
                llm=LLM,
                verifier=verifier,
                is_correct=correct[i],
                score=score,
                step_scores=steps,
                problem_text=rec.get("problem"),
                _loc=loc,
            )
    issues.raise_if_any()
    notes = [*recs.notes, NO_ANSWERS_NOTE]
    if n_prm:
        notes.append(
            "RewardMATH: for PRMs (step-score lists) the stored score is the minimum step "
            "score; the steps are kept for other reductions"
        )
    return RawRead(cols.frame(), FMT, kind, recs.sha256, notes)


def check_same_problems(reads: list[tuple[str, RawRead]]) -> list[Issue]:
    """Problems are numbered by position: several files must list the same problems in the
    same order. Returns one issue per file (and first differing problem) that does not."""
    issues: list[Issue] = []
    ref_name, ref = reads[0]
    if any("problem_text" not in r.frame.columns for _, r in reads):
        return issues
    ref_text = dict(zip(ref.frame["problem_id"], ref.frame["problem_text"], strict=True))
    for name, r in reads[1:]:
        texts = dict(zip(r.frame["problem_id"], r.frame["problem_text"], strict=True))
        locs = dict(zip(r.frame["problem_id"], r.frame["_loc"], strict=True))
        for pid, text in texts.items():
            if ref_text.get(pid, text) != text:
                msg = (
                    f"problem {int(pid) + 1} differs from problem {int(pid) + 1} of {ref_name}: "
                    "RewardMATH files of one folder must list the same problems in the same order"
                )
                issues.append(bad_record(name, int(locs[pid]), r.loc_kind, msg, "problem"))
                break
    return issues
