"""OpenR / compute-optimal-tts run folders (``question_K/record_J.jsonl``).

A best-of-N run of OpenR's ``reason/evaluation/evaluate.py`` writes, under
``<task>_<method>/<LLM>/<PRM>/<settings>/``, one folder per problem with one JSON record
per sample: ``question``, ``groundtruth`` (the reference solution, its answer in
``\\boxed{}``), ``result.majority_vote`` (1 = correct) and ``output[k]`` with ``value``
(per-step PRM scores), ``extracted_answer`` and ``completion_tokens``; ``config.json``
in ``<settings>`` holds the run's settings (``LM``, ``RM`` model paths, ``method``).

Mapping: one dataset per run folder (or tree of run folders); problem id = ``K``;
``sample_idx`` = position of the sample among the problem's records, ordered by ``J``
(= ``J`` for one output per record); LLM and verifier = the base names of ``LM`` and
``RM`` in ``config.json``, else the ``<LLM>`` and ``<PRM>`` path components; step scores
= ``value``, stored score = the last step (Snell et al. found the last step the best
single reduction; every other reduction stays available because the steps are kept);
answer = ``extracted_answer``; gold = the last ``\\boxed{}`` of ``groundtruth``;
correctness = ``result.majority_vote`` for records with one output (with several outputs
the label describes their majority, so those are graded instead); ``n_tokens`` =
``completion_tokens``.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

from core.grading import extract_boxed
from core.importers.common import (
    DEFAULT_LLM,
    Columns,
    bad_record,
    json_lines,
)
from core.importers.errors import ImportValidationError, Issue, IssueList
from core.importers.generic import RawRead, ReadOptions, collect_files, sha256_of
from core.importers.limits import too_many_boxes

FMT = "openr"
HELP = (
    "OpenR / compute-optimal-tts run folder: question_K/record_J.jsonl with per-step "
    "PRM values, extracted_answer, result.majority_vote (labels, kept)"
)
RECORD_RE = re.compile(r"(?:^|/)question_(\d+)/record_(\d+)\.jsonl$")

_COLS = (
    "problem_id",
    "sample_idx",
    "llm",
    "verifier",
    "answer",
    "gold_answer",
    "is_correct",
    "step_scores",
    "n_tokens",
    "problem_text",
    "_loc",
    "_file",
)


def is_openr(rec: object) -> bool:
    if not isinstance(rec, dict):
        return False
    out = rec.get("output")
    return (
        isinstance(out, list)
        and bool(out)
        and isinstance(out[0], dict)
        and ("value" in out[0] or "extracted_answer" in out[0])
        and "question" in rec
    )


def record_files(root: Path, files: list[Path]) -> list[Path]:
    """The ``question_K/record_J.jsonl`` files among ``files`` (paths under ``root``)."""
    return [f for f in files if RECORD_RE.search(f.relative_to(root).as_posix())]


def is_run_folder(root: Path) -> bool:
    files, _ = collect_files(root)
    return bool(record_files(root, files))


def gold_of(groundtruth: Any) -> str | None:
    """Final answer of a reference solution: its last box, else a GSM8K-style ``####``
    tail, else the text itself."""
    if not isinstance(groundtruth, str):
        return None if groundtruth is None else str(groundtruth)
    boxed = extract_boxed(groundtruth)
    if boxed is not None:
        return boxed
    if "####" in groundtruth:
        return groundtruth.rsplit("####", 1)[1].strip()
    return groundtruth.strip()


def _names(settings_dir: Path, cache: dict[Path, tuple[str, str]]) -> tuple[str, str]:
    """(LLM, verifier) of a run: from its config.json, else from the path."""
    got = cache.get(settings_dir)
    if got is not None:
        return got
    parts = settings_dir.absolute().parts
    llm = parts[-3] if len(parts) >= 3 else DEFAULT_LLM
    prm = parts[-2] if len(parts) >= 2 else "prm"
    cfg = settings_dir / "config.json"
    if cfg.is_file() and not cfg.is_symlink():
        try:
            conf = json.loads(cfg.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            conf = None
        if isinstance(conf, dict):
            lm = conf.get("LM")
            lm = lm[0] if isinstance(lm, list) and len(lm) == 1 else lm
            if isinstance(lm, str) and lm.strip("/"):
                llm = lm.rstrip("/").rsplit("/", 1)[-1]
            rm = conf.get("RM")
            if isinstance(rm, str) and rm.strip("/"):
                prm = rm.rstrip("/").rsplit("/", 1)[-1]
    cache[settings_dir] = (llm, prm)
    return llm, prm


def read_openr(path: Path, opts: ReadOptions | None = None) -> RawRead:
    """A run folder (every record below it) or a single record file."""
    if path.is_dir():
        files, _ = collect_files(path)
        recs = record_files(path, files)
        if not recs:
            raise ImportValidationError(
                [Issue(path.name, "no question_K/record_J.jsonl files in this folder")]
            )
        return read_openr_files(path, recs, opts)
    return read_openr_files(path.parent, [path], opts)


def read_openr_files(root: Path, files: list[Path], opts: ReadOptions | None = None) -> RawRead:
    opts = opts or ReadOptions()
    issues = IssueList()
    cols = Columns(*_COLS)
    notes: list[str] = []
    names: dict[Path, tuple[str, str]] = {}
    # (llm, verifier, problem) -> [(J, rel, loc, record)]
    groups: dict[tuple[str, str, str], list[tuple[int, str, int, dict[str, Any]]]] = defaultdict(
        list
    )
    digest_lines: list[str] = []
    for f in files:
        rel = f.relative_to(root).as_posix() if f != root else f.name
        m = RECORD_RE.search(f.as_posix())
        k, j = (m.group(1), int(m.group(2))) if m else (f.parent.name, 0)
        llm, prm = _names(f.parent.parent, names)
        try:
            recs = json_lines(f, opts)
        except ImportValidationError as exc:
            for i in exc.issues:
                issues.add(Issue(rel, i.message, i.line, i.column, i.location_kind))
            continue
        digest_lines.append(f"{rel}:{recs.sha256}")
        notes.extend(recs.notes)
        for loc, rec in recs.items:
            if not isinstance(rec, dict) or not isinstance(rec.get("output"), list):
                issues.add(bad_record(rel, loc, "line", "expected an object with an 'output' list"))
                continue
            gt = rec.get("groundtruth")
            if isinstance(gt, str) and (msg := too_many_boxes(gt)) is not None:
                issues.add(bad_record(rel, loc, "line", msg, "groundtruth"))
                continue
            groups[(llm, prm, k)].append((j, rel, loc, rec))
    issues.raise_if_any()
    multi = 0
    for (llm, prm, k), items in sorted(
        groups.items(), key=lambda kv: (kv[0][0], kv[0][1], _num(kv[0][2]))
    ):
        items.sort(key=lambda t: t[0])
        idx = 0
        for _, rel, loc, rec in items:
            outputs = rec["output"]
            result = rec.get("result")
            label = result.get("majority_vote") if isinstance(result, dict) else None
            if len(outputs) != 1:
                multi += 1
                label = None
            for out in outputs:
                if not isinstance(out, dict):
                    issues.add(
                        bad_record(rel, loc, "line", "output entries must be objects", "output")
                    )
                    break
                cols.add(
                    problem_id=k,
                    sample_idx=idx,
                    llm=llm,
                    verifier=prm,
                    answer=out.get("extracted_answer"),
                    gold_answer=gold_of(rec.get("groundtruth")),
                    is_correct=label,
                    step_scores=out.get("value"),
                    n_tokens=out.get("completion_tokens"),
                    problem_text=rec.get("question"),
                    _loc=loc,
                    _file=rel,
                )
                idx += 1
    issues.raise_if_any()
    notes.append(
        "OpenR: step scores = output.value, score = last step; correctness = result.majority_vote"
    )
    if multi:
        notes.append(
            f"OpenR: {multi} records hold several outputs: their majority_vote label does not "
            "describe each output, so those outputs are graded instead"
        )
    sha = sha256_of("".join(sorted(line + "\n" for line in digest_lines)).encode())
    frame = cols.frame()
    return RawRead(frame, FMT, "line", sha, notes, grade=True, files=list(files))


def _num(k: str) -> tuple[int, str]:
    return (int(k), k) if k.isdigit() else (1 << 62, k)
