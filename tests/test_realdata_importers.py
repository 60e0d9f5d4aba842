"""Every file of ../shared/data through the public import entry points, checked against
facts this test counts itself from the raw JSON (plain json and loops, no project code).

What is compared with what:
- counts of problems, responses and scores; scores, step scores and token counts value by
  value;
- correctness: where a file carries labels (Qwen `score`, PRM800K `is_correct`, OpenR
  `result.majority_vote`, RewardMATH's correct `human_to_GPT-4` solution) the stored
  correctness equals them exactly; where it does not (BoInf, search-and-learn), the grader's
  verdicts are compared with this test's own normalised string match: a string match must
  always be graded correct, and the two must agree on almost every answer (the rest are
  equivalent forms such as `243/625` for `\\frac{243}{625}`; the counts are printed);
- BoInf: each problem's most common answer cluster in the store contains the file's own
  `majority_answer`, except where the file's majority ties with another answer or where
  merging equivalent forms made another cluster larger (then that cluster must hold
  several distinct strings); both exceptions are counted and printed;
- Qwen2.5-Math: rm@8 and maj@8 of the imported data through the budget engine (sampling
  order, first-tie rule) equal the repository's figures, 94.0 and 93.0, and this test's
  own count of them;
- RewardMATH: best-of-10 accuracy per reward model (argmax of the score; ties share the
  credit equally, i.e. fractional) from the store equals the count from the raw file, with
  PRM step lists reduced by their minimum as the importer documents.

The two slow imports (the BoInf folder, 338,800 answers graded, and the complete records
of the truncated search-and-learn file, whose second problem has 158 distinct answers)
run once, at module scope.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from core.cli import main
from core.evaluation.engine import accuracy_curves
from core.importers import (
    READERS,
    ImportValidationError,
    boinf,
    detect_format,
    import_path,
    rewardmath,
)
from core.store import Store
from core.types import VoteInputs
from tests.conftest import SHARED_DATA
from tests.test_realdata_qwen import script_numbers

pytestmark = pytest.mark.realdata

SAL_N4 = SHARED_DATA / "sal_best_of_n" / "llama32_1b_math500_n4.jsonl"
SAL_TRUNC = SHARED_DATA / "sal_best_of_n" / "llama32_1b_math500_n256_truncated.jsonl"
PRM800K = SHARED_DATA / "prm800k_format" / "RM-scored-example.json"
QWEN = SHARED_DATA / "qwen25math_rm_maj" / "math_cot_100.jsonl"
OPENR = SHARED_DATA / "openr_math500_bon"
OPENR_RUN = OPENR / "MATH_best_of_n" / "Qwen2.5-1.5B-Instruct" / "math-shepherd-mistral-7b-prm"
BOINF = SHARED_DATA / "boinf"
REWARDMATH = SHARED_DATA / "rewardmath"
PROBLEMS = SHARED_DATA / "problems"
BOINF_FILES = sorted(BOINF.glob("analysis_*.jsonl"))
RM_FILES = sorted(REWARDMATH.glob("*_reward.json"))

# the shared data sits beside every checkout and CI's: missing data must fail, not skip
assert SHARED_DATA.is_dir(), f"no shared data at {SHARED_DATA}"


# -- independent helpers (no project code) ---------------------------------------------------


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def last_box(text: str) -> str | None:
    """Content of the last \\boxed{...}, brace-matched; None without a closed box."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    i, depth = start + len("\\boxed{"), 1
    begin = i
    while i < len(text) and depth:
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        i += 1
    return text[begin : i - 1] if depth == 0 else None


def norm(s: str | None) -> str:
    """The normalisation BoInf's SOURCES entry describes (plus spaces, \\left, \\right)."""
    if s is None:
        return ""
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = re.sub(r"\^\{?\\circ\}?", "", s)
    s = s.replace("\\left", "").replace("\\right", "")
    return re.sub(r"\s+", "", s)


def string_match(answer: str | None, gold: str | None) -> bool:
    return norm(answer) != "" and norm(answer) == norm(gold)


def opt(v: Any) -> Any:
    """None for SQL NULL (pandas may show it as NaN)."""
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else v


def best_of(scores: list[float], correct: list[bool]) -> float:
    """Credit of picking the highest score; ties share it equally."""
    top = max(scores)
    tied = [c for s, c in zip(scores, correct, strict=True) if s == top]
    return sum(tied) / len(tied)


def note_count(notes: tuple[str, ...] | str | None, pattern: str) -> tuple[int, int]:
    text = "; ".join(notes) if isinstance(notes, tuple) else notes or ""
    m = re.search(pattern, text)
    assert m is not None, f"no note matching {pattern!r} in {text[:300]!r}"
    return int(m.group(1)), int(m.group(2))


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def slow_imports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, Store]]:
    """The two slow imports, once and side by side (the truncated file's grading keeps one
    worker busy on one problem, the BoInf folder's keeps two): the complete records of the
    truncated search-and-learn file through the CLI, from a second thread (as the dashboard
    imports from a script thread), and the whole BoInf folder (one dataset, one LLM per
    file) through import_path. Yields (BoInf store, search-and-learn store)."""
    folder = tmp_path_factory.mktemp("realdata")
    trunc_db = folder / "trunc.duckdb"
    codes: list[object] = []

    def cli_import() -> None:
        try:
            codes.append(
                main(
                    [
                        "--db",
                        str(trunc_db),
                        "import",
                        str(SAL_TRUNC),
                        "--name",
                        "sal-trunc",
                        "--complete-records-only",
                        "--llm",
                        "Llama-3.2-1B-Instruct",
                        "--quiet",
                    ]
                )
            )
        except BaseException as exc:  # reported by the assertion below
            codes.append(exc)

    worker = threading.Thread(target=cli_import)
    worker.start()
    boinf_store = Store(folder / "boinf.duckdb")
    try:
        import_path(boinf_store, BOINF, name="boinf")
        worker.join(timeout=600)
        assert codes == [0], codes
        with Store(trunc_db, read_only=True) as trunc_store:
            yield boinf_store, trunc_store
    finally:
        worker.join(timeout=600)
        boinf_store.close()


@pytest.fixture
def boinf_db(slow_imports: tuple[Store, Store]) -> Store:
    return slow_imports[0]


@pytest.fixture
def trunc_db(slow_imports: tuple[Store, Store]) -> Store:
    return slow_imports[1]


# -- detection ---------------------------------------------------------------------------------

EXPECTED_FORMAT: dict[Path, str] = {
    SAL_N4: "sal",
    SAL_TRUNC: "sal",
    PRM800K: "prm800k",
    QWEN: "qwen-rm",
    OPENR: "openr",
    OPENR_RUN: "openr",
    OPENR_RUN / "1_1_1" / "question_0" / "record_1.jsonl": "openr",
    **dict.fromkeys(BOINF_FILES, "boinf"),
    **dict.fromkeys(RM_FILES, "rewardmath"),
}
NOT_SCORED = sorted(PROBLEMS.glob("*.jsonl"))  # problem sets, not scored responses


@pytest.mark.parametrize(
    ("path", "fmt"),
    list(EXPECTED_FORMAT.items()),
    ids=[str(p.relative_to(SHARED_DATA)) for p in EXPECTED_FORMAT],
)
def test_format_is_detected(path: Path, fmt: str) -> None:
    assert detect_format(path) == fmt


def test_every_shared_file_is_covered() -> None:
    """Each data file is in the expectations above (or is a problem set / run setting), so
    a file added to ../shared/data shows up here."""
    covered = set(EXPECTED_FORMAT) | set(NOT_SCORED)
    openr_files = set(OPENR.rglob("*.json*"))
    for f in SHARED_DATA.rglob("*"):
        if f.is_file() and f.suffix in (".json", ".jsonl") and f not in openr_files:
            assert f in covered, f"{f} is not checked by this test"
    assert len(BOINF_FILES) == 29 and len(RM_FILES) == 10
    assert len([f for f in openr_files if f.name.startswith("record_")]) == 1000


@pytest.mark.parametrize("path", NOT_SCORED, ids=[p.name for p in NOT_SCORED])
def test_problem_sets_are_refused_clearly(store: Store, path: Path) -> None:
    with pytest.raises(ImportValidationError) as ei:
        import_path(store, path)
    msg = ei.value.issues[0].message
    assert "matches no known format" in msg and "BoInf" in msg and "search-and-learn" in msg
    assert store.list_datasets() == []


def test_random_json_is_refused_clearly(store: Store, tmp_path: Path) -> None:
    odd = tmp_path / "odd.json"
    odd.write_text(json.dumps({"model": "x", "results": [1, 2, 3]}, indent=2))
    arr = tmp_path / "arr.json"
    arr.write_text(json.dumps([{"id": 1, "values": [0.5]}]))
    for p in (odd, arr):
        with pytest.raises(ImportValidationError) as ei:
            import_path(store, p)
        assert "matches no known format" in ei.value.issues[0].message
    assert store.list_datasets() == []


def test_names_survive_the_dashboard_upload_prefix() -> None:
    """Uploads are saved as ``<12 hex digits>-<original name>``; names come from the rest."""
    assert boinf.names_of(Path("0123456789ab-analysis_math500_Qwen3-14B.jsonl")) == (
        "math500",
        "Qwen3-14B",
    )
    assert boinf.names_of(Path("analysis_gpqa_diamond_gpt-oss-20b.jsonl")) == (
        "gpqa_diamond",
        "gpt-oss-20b",
    )
    assert rewardmath.verifier_of(Path("0123456789ab-Eurus-RM_reward.json")) == "Eurus-RM"


def test_formats_command_lists_every_format(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["formats"]) == 0
    out = capsys.readouterr().out
    for fmt in READERS:
        assert f"  {fmt} " in out


# -- search-and-learn --------------------------------------------------------------------------


def test_sal_n4(store: Store) -> None:
    rows = jsonl(SAL_N4)
    res = import_path(store, SAL_N4, name="sal")
    info = res.info
    assert (info.n_problems, info.n_responses, info.n_scores) == (10, 40, 40)
    assert info.llms == ("model",) and info.verifiers == ("prm",)
    assert info.grader is not None and info.grader.startswith("math-verify")
    probs = store.problems("sal").set_index("problem_id")
    resp = store.responses("sal").set_index(["problem_id", "sample_idx"])
    sc = store.scores("sal").set_index(["problem_id", "sample_idx"])
    agree = ours_only = 0
    for r in rows:
        pid = r["unique_id"]
        assert probs.loc[pid, "gold_answer"] == r["answer"]
        assert probs.loc[pid, "level"] == r["level"]
        for i, text in enumerate(r["completions"]):
            got = resp.loc[(pid, i)]
            assert opt(got["answer_raw"]) == last_box(text)
            assert got["n_tokens"] == r["completion_tokens"][i]
            assert sc.loc[(pid, i), "score"] == r["agg_scores"][i]
            assert list(sc.loc[(pid, i), "step_scores"]) == r["scores"][i]
            s = string_match(last_box(text), r["answer"])
            if s:
                assert got["is_correct"], (pid, i, last_box(text))
            agree += s == got["is_correct"]
            ours_only += bool(got["is_correct"]) and not s
    print(f"\nsal n4: grader vs string match agree on {agree}/40; grader-only correct {ours_only}")
    assert agree >= 36


def test_sal_truncated_names_line_4(store: Store) -> None:
    with pytest.raises(ImportValidationError) as ei:
        import_path(store, SAL_TRUNC)
    issues = ei.value.issues
    assert [(i.file, i.line) for i in issues] == [(SAL_TRUNC.name, 4)]
    assert "truncated record" in issues[0].message
    assert "line 4" in ei.value.report()
    assert store.list_datasets() == []


def test_sal_truncated_complete_records(trunc_db: Store) -> None:
    lines = SAL_TRUNC.read_text().split("\n")
    complete = []
    for ln in lines:
        with contextlib.suppress(json.JSONDecodeError):
            complete.append(json.loads(ln))
    assert len(complete) == 3
    info = trunc_db.get_dataset("sal-trunc")
    n = sum(len(r["completions"]) for r in complete)
    assert (info.n_problems, info.n_responses) == (3, n) == (3, 768)
    assert info.llms == ("Llama-3.2-1B-Instruct",)
    assert info.notes is not None
    assert "skipped 1 incomplete record" in info.notes and "line 4: truncated" in info.notes
    resp = trunc_db.responses("sal-trunc")
    assert sorted(set(resp["problem_id"])) == sorted(r["unique_id"] for r in complete)
    rate = resp["is_correct"].mean()
    own = np.mean(
        [string_match(last_box(c), r["answer"]) for r in complete for c in r["completions"]]
    )
    print(f"\nsal truncated: grader correct {rate:.4f}, own string match {own:.4f}")
    assert rate >= own


# -- PRM800K -----------------------------------------------------------------------------------


def test_prm800k_example(store: Store) -> None:
    rec = json.loads(PRM800K.read_text())
    res = import_path(store, PRM800K, name="prm")
    assert (res.info.n_problems, res.info.n_responses, res.info.n_scores) == (1, 1, 2)
    assert res.info.verifiers == ("orm", "prm")
    sc = store.scores("prm").set_index("verifier")
    assert sc.loc["prm", "score"] == rec["prm_score"]
    assert sc.loc["orm", "score"] == rec["orm_score"]
    steps = [d["1"] + d["0"] for d in rec["rating_probs"]]
    assert list(sc.loc["prm", "step_scores"]) == pytest.approx(steps, abs=1e-15)
    assert math.prod(steps) == pytest.approx(rec["prm_score"], rel=1e-12)
    assert sc.loc["orm", "step_scores"] is None or pd.isna(sc.loc["orm", "step_scores"])
    r = store.responses("prm").iloc[0]
    assert (r["problem_id"], r["answer_raw"], bool(r["is_correct"])) == (
        rec["unique_id"],
        rec["answer"],
        rec["is_correct"],
    )
    assert store.problems("prm").iloc[0]["gold_answer"] == rec["ground_truth_answer"]
    k, n = note_count(res.notes, r"disagrees with them on (\d+) of (\d+)")
    assert (k, n) == (0, 1)  # "7i - 2" and "-2+7i" are the same number


def test_grading_import_from_a_non_main_thread(store: Store) -> None:
    """The dashboard imports from a Streamlit script thread, where math-verify's signal-based
    time limits cannot work: grading must happen in worker processes (here a file with a
    single problem, the case a process pool would otherwise skip)."""
    got: list[object] = []

    def run() -> None:
        try:
            got.append(import_path(store, PRM800K, name="threaded"))
        except BaseException as exc:  # reported below
            got.append(exc)

    t = threading.Thread(target=run)
    t.start()
    t.join(timeout=120)
    assert len(got) == 1 and not isinstance(got[0], BaseException), got
    assert store.get_dataset("threaded").n_responses == 1


# -- Qwen2.5-Math rm_maj_eval ------------------------------------------------------------------


def test_qwen_rm_at_8_and_maj_at_8(store: Store) -> None:
    rows = jsonl(QWEN)
    res = import_path(store, QWEN, name="qwen")
    assert (res.info.n_problems, res.info.n_responses) == (100, 800)
    assert res.info.grader is not None and res.info.grader.startswith("labels from the file")
    resp = store.responses("qwen").set_index(["problem_id", "sample_idx"])
    sc = store.scores("qwen", verifier="orm").set_index(["problem_id", "sample_idx"])
    for r in rows:
        for i, p in enumerate(r["pred"]):
            got = resp.loc[(str(r["idx"]), i)]
            assert bool(got["is_correct"]) == r["score"][i]
            assert got["answer_raw"] == p
            assert sc.loc[(str(r["idx"]), i), "score"] == r["pred_score"][i][0]
    labels = [c for r in rows for c in r["score"]]
    assert resp["is_correct"].mean() == pytest.approx(np.mean(labels), abs=0)
    maj8, rm8, _, _ = script_numbers(rows)
    pair = store.load_pair("qwen", "model", "orm")
    inputs = {
        "majority": VoteInputs(weight=np.ones(pair.n_responses)),
        "rm": VoteInputs(weight=pair.score, best_of=True),
    }
    curves = accuracy_curves(pair, inputs, budgets=[8], order="sample", tie_break="first")
    acc = 100 * curves.mean()[:, 0]
    assert acc[1] == pytest.approx(rm8, abs=1e-9) and round(acc[1], 1) == 94.0
    assert acc[0] == pytest.approx(maj8, abs=1e-9) and round(acc[0], 1) == 93.0
    k, n = note_count(res.notes, r"disagrees with them on (\d+) of (\d+)")
    print(f"\nqwen: our grading disagrees with the file's labels on {k} of {n}")
    assert n == 800 and k <= 8


# -- OpenR -------------------------------------------------------------------------------------


def test_openr_run_folder(store: Store) -> None:
    records = {}
    for f in OPENR.rglob("record_*.jsonl"):
        records[(f.parent.name.split("_")[1], int(f.stem.split("_")[1]))] = json.loads(
            f.read_text()
        )
    assert len(records) == 1000
    res = import_path(store, OPENR, name="openr")
    info = res.info
    assert (info.n_problems, info.n_responses, info.n_scores) == (500, 1000, 1000)
    assert info.llms == ("Qwen2.5-1.5B-Instruct",)
    assert info.verifiers == ("math-shepherd-mistral-7b-prm",)
    assert len(res.files) == 1000 and any("config.json" in n for n in res.notes)
    resp = store.responses("openr").set_index(["problem_id", "sample_idx"])
    sc = store.scores("openr").set_index(["problem_id", "sample_idx"])
    gold = store.problems("openr").set_index("problem_id")["gold_answer"]
    for (k, j), rec in records.items():
        out = rec["output"][0]
        got = resp.loc[(k, j)]
        assert bool(got["is_correct"]) == bool(rec["result"]["majority_vote"])
        assert got["n_tokens"] == out["completion_tokens"]
        assert (opt(got["answer_raw"]) or "") == out["extracted_answer"]
        assert list(sc.loc[(k, j), "step_scores"]) == out["value"]
        assert sc.loc[(k, j), "score"] == out["value"][-1]
        assert gold[k] == last_box(rec["groundtruth"])
    labels = [rec["result"]["majority_vote"] for rec in records.values()]
    assert resp["is_correct"].mean() == np.mean(labels) == 0.495
    k, n = note_count(res.notes, r"disagrees with them on (\d+) of (\d+)")
    print(f"\nopenr: our grading disagrees with majority_vote on {k} of {n}")
    assert n == 1000 and k <= 50


# -- BoInf -------------------------------------------------------------------------------------


def test_boinf_folder_is_one_dataset(boinf_db: Store) -> None:
    info = boinf_db.get_dataset("boinf")
    names = [re.fullmatch(r"analysis_(.+)_([^_]+)\.jsonl", f.name) for f in BOINF_FILES]
    assert all(m is not None for m in names)
    llms = sorted({m.group(2) for m in names if m is not None})
    benches = {m.group(1) for m in names if m is not None}
    n_problems = sum(len(jsonl(next(f for f in BOINF_FILES if b in f.name))) for b in benches)
    n_resp = sum(len(r["all_answers"]) for f in BOINF_FILES for r in jsonl(f))
    assert info.llms == tuple(llms) and info.verifiers == ("length",)
    assert (info.n_problems, info.n_responses, info.n_scores) == (560, n_resp, n_resp)
    assert n_problems == 560 and n_resp == 338_800
    assert info.grader is not None and info.grader.startswith("math-verify")


@pytest.mark.parametrize("path", BOINF_FILES, ids=[f.name for f in BOINF_FILES])
def test_boinf_file(boinf_db: Store, path: Path) -> None:
    m = re.fullmatch(r"analysis_(.+)_([^_]+)\.jsonl", path.name)
    assert m is not None
    bench, llm = m.groups()
    rows = jsonl(path)
    resp = boinf_db.responses("boinf", llm)
    resp = resp[resp["problem_id"].str.startswith(bench + "-")]
    sc = boinf_db.scores("boinf", llm, "length")
    sc = sc[sc["problem_id"].str.startswith(bench + "-")]
    assert resp["problem_id"].nunique() == len(rows)
    assert len(resp) == len(sc) == sum(len(r["all_answers"]) for r in rows)
    pids = resp["problem_id"].to_numpy()
    by = {(p, int(i)): k for k, (p, i) in enumerate(zip(pids, resp["sample_idx"], strict=True))}
    key = resp["answer_key"].to_numpy()
    raw = resp["answer_raw"].to_numpy()
    correct = resp["is_correct"].to_numpy()
    tokens = resp["n_tokens"].to_numpy()
    score = {
        (p, int(i)): v
        for p, i, v in sc[["problem_id", "sample_idx", "score"]].itertuples(index=False)
    }
    agree = ours_only = ties = merged = 0
    for r in rows:
        pid = f"{bench}-{r['problem_num']}"
        clusters: Counter[str] = Counter()
        for i, (ans, tok) in enumerate(r["all_answers"]):
            j = by[(pid, i)]
            assert tokens[j] == tok and score[(pid, i)] == tok
            assert (opt(raw[j]) or "") == (ans or "")
            s = string_match(ans, r["gold_answer"])
            if s:
                assert correct[j], (pid, i, ans, r["gold_answer"])
            agree += s == correct[j]
            ours_only += bool(correct[j]) and not s
            clusters[key[j]] += 1
        # the file's majority answer is in our most common cluster
        maj = r["majority_answer"] or ""
        maj_keys = {
            key[by[(pid, i)]] for i, (a, _) in enumerate(r["all_answers"]) if (a or "") == maj
        }
        assert len(maj_keys) == 1, (pid, maj_keys)
        top = max(clusters.values())
        tops = [k for k, c in clusters.items() if c == top]
        if maj_keys.pop() in tops:
            ties += len(tops) > 1
        else:
            members = {
                raw[j]
                for j in range(len(key))
                if key[j] == tops[0] and resp["problem_id"].iat[j] == pid
            }
            assert len(members) >= 2, (pid, maj, tops)
            merged += 1
    n = len(resp)
    print(
        f"\n{path.name}: grader vs string match {agree}/{n} ({agree / n:.4f}), "
        f"grader-only correct {ours_only}; majority: {ties} ties, {merged} changed by merging"
    )
    assert agree / n >= 0.95
    assert ties + merged <= max(2, len(rows) // 100)


# -- RewardMATH --------------------------------------------------------------------------------


def test_rewardmath_folder_best_of_10(store: Store) -> None:
    res = import_path(store, REWARDMATH, name="rm")
    info = res.info
    verifiers = sorted(f.name.removesuffix("_reward.json") for f in RM_FILES)
    assert info.verifiers == tuple(verifiers) and info.llms == ("rewardmath",)
    raw = {f.name.removesuffix("_reward.json"): json.loads(f.read_text()) for f in RM_FILES}
    n_problems = len(raw["ArmoRM"])
    assert (info.n_problems, info.n_responses, info.n_scores) == (
        n_problems,
        10 * n_problems,
        10 * n_problems * len(RM_FILES),
    )
    assert info.notes is not None
    assert "no answers: best-of-N and weight-function studies only" in info.notes
    resp = store.responses("rm")
    assert resp.groupby("problem_id")["answer_key"].nunique().eq(10).all()
    assert resp.groupby("problem_id")["is_correct"].sum().eq(1).all()
    for v, recs in raw.items():
        expected = np.mean(
            [
                best_of(
                    [min(s) if isinstance(s, list) else s for s in rec["score"]],
                    [ref == "human_to_GPT-4" for ref in rec["solution_reference"]],
                )
                for rec in recs
            ]
        )
        sc = store.scores("rm", verifier=v).merge(resp, on=["llm", "problem_id", "sample_idx"])
        got = np.mean(
            [best_of(list(g["score"]), list(g["is_correct"])) for _, g in sc.groupby("problem_id")]
        )
        print(f"\nRewardMATH best-of-10 {v}: {100 * got:.2f} %")
        assert got == pytest.approx(expected, abs=1e-12)
        if isinstance(recs[0]["score"][0], list):
            first = sc[sc["problem_id"] == "0000"].sort_values("sample_idx")
            assert [list(s) for s in first["step_scores"]] == recs[0]["score"]


def test_rewardmath_single_file_via_cli(tmp_path: Path) -> None:
    db = str(tmp_path / "c.duckdb")
    path = REWARDMATH / "ArmoRM_reward.json"
    code = main(["--db", db, "import", str(path), "--verifier", "armo-rm", "--quiet"])
    assert code == 0
    recs = json.loads(path.read_text())
    with Store(db, read_only=True) as s:
        info = s.get_dataset("ArmoRM_reward")
        assert info.verifiers == ("armo-rm",) and info.n_responses == 10 * len(recs)
        sc = s.scores("ArmoRM_reward").set_index(["problem_id", "sample_idx"])
        assert sc.loc[("0005", 3), "score"] == recs[5]["score"][3]


def test_renaming_several_verifiers_is_refused(store: Store) -> None:
    with pytest.raises(ImportValidationError, match="holds several"):
        import_path(store, REWARDMATH, verifier="one")
    assert store.list_datasets() == []


# -- a folder that mixes a graded tool format with the generic format ----------------------


def test_mixed_folder_grades_only_tool_files(store: Store, tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    sal_line = {
        "unique_id": "p1",
        "problem": "What is 1 + 1?",
        "answer": "2",
        "completions": ["So the answer is $\\boxed{\\dfrac{4}{2}}$.", "It is \\boxed{3}", "no box"],
        "scores": [[0.5, 0.9], [0.2], []],
        "agg_scores": [0.9, 0.2, 0.1],
    }
    (folder / "run.jsonl").write_text(json.dumps(sal_line) + "\n")
    (folder / "long.csv").write_text(
        "problem_id,sample_idx,llm,verifier,answer,gold_answer,score\n"
        "q1,0,m2,v,4,4,0.3\nq1,1,m2,v,5,4,0.6\n"
    )
    res = import_path(store, folder, name="mixed")
    assert res.fmt == "long-csv+sal"
    r = store.responses("mixed").set_index(["llm", "problem_id", "sample_idx"])
    assert [bool(r.loc[("model", "p1", i), "is_correct"]) for i in range(3)] == [
        True,
        False,
        False,
    ]
    assert r.loc[("model", "p1", 2), "answer_key"] == ""  # no final answer
    assert [bool(r.loc[("m2", "q1", i), "is_correct"]) for i in range(2)] == [True, False]
    assert [r.loc[("m2", "q1", i), "answer_key"] for i in range(2)] == ["4", "5"]
    sc = store.scores("mixed", llm="model").set_index("sample_idx")
    assert list(sc["score"]) == [0.9, 0.2, 0.1]
    assert pd.isna(sc.loc[2, "step_scores"]) or sc.loc[2, "step_scores"] is None
