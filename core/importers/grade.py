"""Answer grading at import time, with `core.grading` in worker processes.

Readers of tool formats mark their frames for grading (`RawRead.grade`). `grade_frame`
then, for every (LLM, problem):

* clusters the distinct answer strings (the same string is graded once, whatever its
  number of samples: BoInf repeats answers 80 times) and writes the cluster key to
  ``answer_key``; the cluster of answers equivalent to the gold answer gets the
  normalised gold as its key, so it is the same for every LLM;
* decides correctness against ``gold_answer`` where the file carries no label
  (``is_correct`` empty); an answer the grader cannot decide (unparsable, time limit) is
  counted as incorrect and reported;
* keeps the labels a file does carry and reports how often the grader disagrees.

The work runs in a process pool (`core.grading.grade_problems`) and never in the calling
thread: math-verify's time limits rely on signals, which only work in a process's main
thread, and the dashboard imports from a Streamlit script thread.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from core.grading import (
    ProblemGrading,
    compare_with_labels,
    default_workers,
    grade_problems,
    grader_version,
    normalize_answer,
)
from core.importers.errors import Issue, IssueList
from core.importers.validate import _bool_of, basic_answer_key, map_unique

#: Time limit per answer (parsing, comparison with the gold, and the comparisons that place
#: it in a cluster share it), in seconds.
TIMEOUT_S = 2.0
#: How many examples of unparsed answers and label disagreements the notes show.
N_EXAMPLES = 5

ProgressFn = Callable[[int, int], None]


@dataclass
class GradeSummary:
    """What grading found, for notes and the dataset's ``grader`` field."""

    grader: str
    n_responses: int = 0
    n_distinct: int = 0
    n_correct: int = 0
    n_empty: int = 0
    n_unparsed: int = 0
    unparsed_examples: list[str] = field(default_factory=list)
    n_labelled: int = 0
    n_disagree: int = 0
    disagree_examples: list[str] = field(default_factory=list)
    n_choice_groups: int = 0
    n_choice_normalized: int = 0

    def notes(self) -> list[str]:
        def pct(k: int, n: int) -> str:
            if not n:
                return "-"
            share = 100.0 * k / n
            # a few in many thousands is not "0.0 %": two significant digits below 0.1 %
            return f"{share:.2g} %" if 0 < share < 0.1 else f"{share:.1f} %"

        n = self.n_responses
        out = [
            f"graded {_count(n, 'response')} ({_count(self.n_distinct, 'distinct answer')} "
            f"of an LLM to a problem) with {grader_version()}, time limit {TIMEOUT_S:g} s per "
            f"answer: {self.n_correct} equivalent to the gold answer "
            f"({pct(self.n_correct, n)}), {self.n_empty} without an answer, "
            f"{self.n_unparsed} could not be parsed ({pct(self.n_unparsed, n)}; counted as "
            "incorrect where the file has no label)"
        ]
        if self.unparsed_examples:
            out.append("unparsed answers, e.g. " + "; ".join(self.unparsed_examples))
        if self.n_choice_groups:
            out.append(
                f"multiple choice: the gold answer is an option letter for "
                f"{_count(self.n_choice_groups, 'LLM-problem group')}; "
                f"{_count(self.n_choice_normalized, 'response')} written as a decorated letter "
                "(e.g. (\\mathrm{B}), \\text{(A)} 16.9) were read as the bare letter before "
                "clustering and grading"
            )
        if self.n_labelled:
            out.append(
                f"correctness labels from the file kept; our grading disagrees with them on "
                f"{self.n_disagree} of {_count(self.n_labelled, 'response')} "
                f"({pct(self.n_disagree, self.n_labelled)})"
            )
            if self.disagree_examples:
                out.append("disagreements, e.g. " + "; ".join(self.disagree_examples))
        return out


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def grade_in_workers(
    problems: list[tuple[str | None, list[str | None]]],
    timeout_s: float = TIMEOUT_S,
    progress: ProgressFn | None = None,
    on_wait: Callable[[list[int]], None] | None = None,
) -> list[ProblemGrading]:
    """`grade_problems` made to use worker processes always (as many as `default_workers`,
    which $TTSLAB_GRADE_WORKERS caps), so that nothing is graded in the calling thread."""
    if not problems:
        return []
    items = list(problems)
    workers = default_workers()
    sizes = [max(1, len(a)) for _, a in items]
    chunk = max(1, min(2000, sum(sizes) // (8 * workers)))
    # grade_problems types gold as str; None (no gold: cluster only) is handled by it
    return grade_problems(
        items,  # type: ignore[arg-type]
        workers=workers,
        timeout_s=timeout_s,
        progress=progress,
        chunk_answers=chunk,
        processes=True,
        on_wait=on_wait,
    )


def grade_frame(
    raw: pd.DataFrame,
    mask: np.ndarray,
    files: str,
    loc_kind: str,
    progress: ProgressFn | None = None,
    timeout_s: float = TIMEOUT_S,
    on_wait: Callable[[list[int]], None] | None = None,
) -> tuple[pd.DataFrame, GradeSummary]:
    """Fill ``answer_key`` and missing ``is_correct`` of the rows in ``mask``.

    Rows outside the mask are left as they are. Raises `ImportValidationError` for graded
    rows that have neither a label nor a gold answer.
    """
    out = raw.copy()
    idx = np.flatnonzero(mask)
    sub = raw.iloc[idx]
    n = len(sub)
    if n == 0:
        return out, GradeSummary(grader=grader_version())
    llm = (
        sub["llm"].astype(object).where(sub["llm"].notna(), "").astype(str)
        if "llm" in sub.columns
        else pd.Series([""] * n, index=sub.index)
    )
    pid = sub["problem_id"].astype(str)
    group_codes, _ = pd.factorize(llm + "\x1f" + pid, sort=False)
    answers = (
        sub["answer"].astype(object).where(sub["answer"].notna(), None)
        if "answer" in sub.columns
        else pd.Series([None] * n, index=sub.index, dtype=object)
    )
    ans_codes, ans_uniques = pd.factorize(answers, use_na_sentinel=True)
    m = len(ans_uniques) + 1
    combo = group_codes.astype(np.int64) * m + (ans_codes.astype(np.int64) + 1)
    pair_codes, pair_uniques = pd.factorize(combo, sort=False)
    pair_group = (pair_uniques // m).astype(np.int64)
    pair_ans = (pair_uniques % m).astype(np.int64) - 1
    n_groups = int(group_codes.max()) + 1 if n else 0

    gold_col = (
        sub["gold_answer"].astype(object).where(sub["gold_answer"].notna(), None)
        if "gold_answer" in sub.columns
        else pd.Series([None] * n, index=sub.index, dtype=object)
    )
    golds: list[str | None] = [None] * n_groups
    first_gold = pd.Series(gold_col.to_numpy(), index=group_codes).dropna()
    first_gold = first_gold[~first_gold.index.duplicated()]
    for g, v in first_gold.items():
        golds[int(g)] = str(v)

    labels_raw = (
        sub["is_correct"].to_numpy(dtype=object)
        if "is_correct" in sub.columns
        else np.full(n, None, dtype=object)
    )
    has_label = np.array(
        [not (v is None or (isinstance(v, float) and math.isnan(v))) for v in labels_raw],
        dtype=bool,
    )
    # grading fills the missing labels; a graded row without gold cannot be decided
    no_gold = ~has_label & gold_col.isna().to_numpy()
    if no_gold.any():
        issues = IssueList()
        locs = sub["_loc"].to_numpy()
        file_col = sub["_file"].to_numpy(dtype=object) if "_file" in sub.columns else None
        for j in np.flatnonzero(no_gold)[:1000]:
            issues.add(
                Issue(
                    str(file_col[j]) if file_col is not None else files,
                    "missing gold answer: this response has no correctness label, so it is "
                    "graded against the gold answer",
                    line=int(locs[j]),
                    column="gold_answer",
                    location_kind=loc_kind,
                )
            )
        issues.raise_if_any()

    # distinct answers per group, in order of first appearance
    members: list[list[int]] = [[] for _ in range(n_groups)]
    for p, g in enumerate(pair_group):
        members[int(g)].append(p)
    inputs = [
        (
            golds[g],
            [None if pair_ans[p] < 0 else str(ans_uniques[pair_ans[p]]) for p in members[g]],
        )
        for g in range(n_groups)
    ]
    gradings = grade_in_workers(inputs, timeout_s=timeout_s, progress=progress, on_wait=on_wait)

    n_pairs = len(pair_uniques)
    key = np.empty(n_pairs, dtype=object)
    verdict = np.empty(n_pairs, dtype=object)
    status = np.full(n_pairs, "", dtype=object)
    changed = np.zeros(n_pairs, dtype=bool)
    for g, grading in enumerate(gradings):
        for i in grading.choice_normalized:
            changed[members[g][i]] = True
        gold = golds[g]
        gold_key = normalize_answer(gold) if gold is not None else None
        unparsed = dict(zip(grading.unparsed, grading.notes, strict=True))
        empty = set(grading.empty)
        for i, p in enumerate(members[g]):
            v = grading.is_correct[i]
            key[p] = gold_key if v is True and gold_key else grading.answer_keys[i]
            verdict[p] = v
            if i in empty:
                status[p] = "empty"
            elif i in unparsed:
                status[p] = unparsed[i] or "unparsable"

    row_key = key[pair_codes]
    row_verdict = verdict[pair_codes]
    row_status = status[pair_codes]
    filled = np.where(has_label, labels_raw, [bool(v) for v in row_verdict])

    keys_all = (
        out["answer_key"].to_numpy(dtype=object).copy()
        if "answer_key" in out.columns
        else np.full(len(out), None, dtype=object)
    )
    corr_all = (
        out["is_correct"].to_numpy(dtype=object).copy()
        if "is_correct" in out.columns
        else np.full(len(out), None, dtype=object)
    )
    keys_all[idx] = row_key
    corr_all[idx] = filled
    _fill_ungraded(raw, ~mask, keys_all, corr_all)
    out["answer_key"] = pd.Series(keys_all, index=out.index, dtype=object)
    out["is_correct"] = pd.Series(corr_all, index=out.index, dtype=object)

    summary = _summarise(
        sub, llm, pid, answers, gold_col, row_verdict, row_status, has_label, labels_raw
    )
    summary.n_distinct = n_pairs
    summary.n_choice_groups = sum(1 for gr in gradings if gr.choice)
    summary.n_choice_normalized = _count_responses(sub, llm, pid, changed[pair_codes])
    return out, summary


def _first_responses(sub: pd.DataFrame, llm: pd.Series, pid: pd.Series) -> np.ndarray:
    """Rows that are a response's first (a response scored by several verifiers has one
    row per verifier)."""
    sidx = (
        sub["sample_idx"].astype(str)
        if "sample_idx" in sub.columns
        else pd.Series(np.arange(len(sub)).astype(str), index=sub.index)
    )
    return np.asarray(
        ~pd.Series((llm + "\x1f" + pid + "\x1f" + sidx).to_numpy()).duplicated().to_numpy()
    )


def _count_responses(sub: pd.DataFrame, llm: pd.Series, pid: pd.Series, flag: np.ndarray) -> int:
    """Responses with `flag` (a response scored by several verifiers counts once)."""
    return int((np.asarray(flag, dtype=bool) & _first_responses(sub, llm, pid)).sum())


def _fill_ungraded(
    raw: pd.DataFrame, rest: np.ndarray, keys: np.ndarray, correct: np.ndarray
) -> None:
    """Rows of files that are not graded (in a folder that mixes formats): the validator's
    defaults, which no longer apply once the columns exist (answer key = the normalised
    answer, or one cluster per response; correctness = normalised string match)."""
    if not rest.any():
        return
    sub = raw[rest]
    missing_key = pd.isna(pd.Series(keys[rest], dtype=object)).to_numpy()
    missing_corr = pd.isna(pd.Series(correct[rest], dtype=object)).to_numpy()
    ans = (
        sub["answer"].astype(object).where(sub["answer"].notna(), None)
        if "answer" in sub.columns
        else pd.Series([None] * len(sub), index=sub.index, dtype=object)
    )
    gold = (
        sub["gold_answer"].astype(object).where(sub["gold_answer"].notna(), None)
        if "gold_answer" in sub.columns
        else pd.Series([None] * len(sub), index=sub.index, dtype=object)
    )
    a_key = map_unique(ans.map(lambda v: None if v is None else str(v)), basic_answer_key)
    g_key = map_unique(gold.map(lambda v: None if v is None else str(v)), basic_answer_key)
    own = np.array([f"#{v}" for v in sub["sample_idx"]], dtype=object)
    new_keys = np.where(pd.isna(pd.Series(a_key, dtype=object)).to_numpy(), own, a_key)
    new_corr = np.array(
        [a is not None and g is not None and a == g for a, g in zip(a_key, g_key, strict=True)],
        dtype=object,
    )
    rows = np.flatnonzero(rest)
    keys[rows[missing_key]] = new_keys[missing_key]
    correct[rows[missing_corr]] = new_corr[missing_corr]


def _summarise(
    sub: pd.DataFrame,
    llm: pd.Series,
    pid: pd.Series,
    answers: pd.Series,
    gold: pd.Series,
    verdict: np.ndarray,
    status: np.ndarray,
    has_label: np.ndarray,
    labels_raw: np.ndarray,
) -> GradeSummary:
    """Counts over responses (a response scored by several verifiers counts once)."""
    first = _first_responses(sub, llm, pid)
    labelled = has_label & first
    if first.any() and labelled[first].all():
        grader = f"labels from the file (answer clusters and a cross-check by {grader_version()})"
    elif labelled.any():
        grader = f"labels from the file where given, else {grader_version()}"
    else:
        grader = grader_version()
    s = GradeSummary(grader=grader)
    s.n_responses = int(first.sum())
    s.n_correct = int(sum(1 for v, f in zip(verdict, first, strict=True) if f and v is True))
    s.n_empty = int(((status == "empty") & first).sum())
    unparsed = (status != "") & (status != "empty") & first
    s.n_unparsed = int(unparsed.sum())
    ans = answers.to_numpy(dtype=object)
    g = gold.to_numpy(dtype=object)
    p = pid.to_numpy(dtype=object)
    seen: set[object] = set()
    for j in np.flatnonzero(unparsed):
        if ans[j] in seen:
            continue
        seen.add(ans[j])
        s.unparsed_examples.append(f"problem {p[j]}: {str(ans[j])[:60]!r} ({status[j]})")
        if len(s.unparsed_examples) >= N_EXAMPLES:
            break
    if labelled.any():
        rows = np.flatnonzero(labelled)
        theirs = [_bool_of(labels_raw[j]) for j in rows]
        ok = [j for j, t in zip(rows, theirs, strict=True) if t is not None]
        ours = [verdict[j] for j in ok]
        lab = [bool(_bool_of(labels_raw[j])) for j in ok]
        k, where = compare_with_labels(ours, lab)
        s.n_labelled = len(ok)
        s.n_disagree = k
        shown: set[tuple[object, object]] = set()
        for w in where:
            j = ok[w]
            if (p[j], ans[j]) in shown:
                continue
            shown.add((p[j], ans[j]))
            if len(shown) > N_EXAMPLES:
                break
            s.disagree_examples.append(
                f"problem {p[j]}: answer {str(ans[j])[:40]!r} vs gold {str(g[j])[:40]!r}, "
                f"ours {_word(verdict[j])}, file {_word(lab[w])}"
            )
    return s


def _word(v: object) -> str:
    return "undecided" if v is None else ("correct" if v else "incorrect")
