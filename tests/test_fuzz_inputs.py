"""Fuzzing the importers: mutated copies of the real files in ../shared/data and of the
examples, plus Hypothesis-generated records, each imported into a store that already
holds a dataset.

Every input must end in a stored dataset or a clean `TTSLabError`: no traceback, no hang
(a watchdog interrupts a case after `CASE_LIMIT_S`), no change to the database after a
failed import, and no silent partial import (a file cut inside a line is refused).
The counts are printed (run with -s) and written to artifacts/fuzz_counts.json.
"""

from __future__ import annotations

import _thread
import json
import random
import shutil
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.importers import import_path
from core.store import Store
from core.types import TTSLabError
from tests.conftest import SHARED_DATA

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "data" / "examples"
ARTIFACTS = ROOT / "artifacts"
#: a case running longer than this is a hang
CASE_LIMIT_S = 30.0
#: mutated inputs per seed file (14 seeds: 448 cases) and Hypothesis examples
PER_SEED = 32
HYPOTHESIS_EXAMPLES = 60

HOSTILE_JSON = [
    "NaN",
    "-Infinity",
    "1e400",
    "1" * 5000,
    "-1",
    str(2**64),
    '""',
    "[]",
    "{}",
    "null",
    "true",
    "[" * 1100 + "]" * 1100,
    '"\\ud800"',
    '"' + "x" * 200_000 + '"',
    '"Level 99999999999999999999"',
    '"\\\\boxed{' * 2000 + '"',
    "[1, [2, {}]]",
]
HOSTILE_CSV = ['"', '""', "nan", "-1", "1e400", str(2**64), "x" * 100_000, "[", "\\ud800", ""]


@dataclass(frozen=True)
class Seed:
    name: str  # file name (its suffix picks the reader)
    data: bytes


def _head_lines(path: Path, n: int) -> bytes:
    with path.open("rb") as fh:
        return b"".join(fh.readline() for _ in range(n))


def _seeds() -> list[Seed]:
    out = [
        Seed("long.csv", _head_lines(EXAMPLES / "example_long.csv", 40)),
        Seed("long.jsonl", _head_lines(EXAMPLES / "example_long.jsonl", 40)),
        Seed("wide.jsonl", _head_lines(EXAMPLES / "example_wide.jsonl", 6)),
        Seed("long.parquet", (EXAMPLES / "example_long.parquet").read_bytes()),
        Seed(
            "analysis_aime2024_Qwen3-4B.jsonl",
            _head_lines(SHARED_DATA / "boinf" / "analysis_aime2024_Qwen3-4B.jsonl", 3),
        ),
        Seed(
            "math_cot_100.jsonl",
            _head_lines(SHARED_DATA / "qwen25math_rm_maj" / "math_cot_100.jsonl", 3),
        ),
        Seed(
            "RM-scored-example.json",
            (SHARED_DATA / "prm800k_format" / "RM-scored-example.json").read_bytes(),
        ),
    ]
    # the 4-sample file: the 256-sample one grades 768 answers per 3 lines (40 s)
    sal = SHARED_DATA / "sal_best_of_n" / "llama32_1b_math500_n4.jsonl"
    out.append(Seed(sal.name, _head_lines(sal, 3)))
    rm = SHARED_DATA / "rewardmath" / "Math_Shepherd_reward.json"
    doc = json.loads(rm.read_text())
    if isinstance(doc, list):
        out.append(Seed(rm.name, json.dumps(doc[:3]).encode()))
    # a few more of the examples, cut shorter, so that every mutation hits a small file
    out.append(Seed("short.csv", _head_lines(EXAMPLES / "example_long.csv", 8)))
    out.append(Seed("short.jsonl", _head_lines(EXAMPLES / "example_long.jsonl", 8)))
    out.append(Seed("short_wide.jsonl", _head_lines(EXAMPLES / "example_wide.jsonl", 2)))
    out.append(
        Seed(
            "analysis_aime2025_LIMO-v2.jsonl",
            _head_lines(SHARED_DATA / "boinf" / "analysis_aime2025_LIMO-v2.jsonl", 2),
        )
    )
    out.append(
        Seed(
            "math_cot_tail.jsonl",
            _head_lines(SHARED_DATA / "qwen25math_rm_maj" / "math_cot_100.jsonl", 1),
        )
    )
    return out


# --------------------------------------------------------------------------------------
# mutations: (kind, bytes, cut) where cut is the truncation offset (or None)
# --------------------------------------------------------------------------------------


def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")


def _mutate(seed: Seed, rng: random.Random) -> tuple[str, bytes, int | None]:
    data = seed.data
    text_like = not seed.name.endswith(".parquet")
    kinds = ["truncate", "flip", "garbage", "empty", "bom"]
    if text_like:
        kinds += ["drop_line", "dup_line", "swap_lines", "cr_only", "crlf", "hostile"]
    kind = rng.choice(kinds)
    if kind == "truncate":
        cut = rng.randrange(1, max(len(data), 2))
        return kind, data[:cut], cut
    if kind == "flip":
        b = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        return kind, bytes(b), None
    if kind == "garbage":
        return kind, bytes(rng.randrange(256) for _ in range(rng.randint(1, 4000))), None
    if kind == "empty":
        return kind, rng.choice([b"", b"\n", b"   \n\n"]), None
    if kind == "bom":
        return kind, b"\xef\xbb\xbf" + data, None
    lines = _lines(data)
    content = [i for i, ln in enumerate(lines) if ln.strip()]
    if kind == "drop_line" and len(content) > 1:
        del lines[rng.choice(content)]
    elif kind == "dup_line":
        i = rng.choice(content)
        lines.insert(i, lines[i])
    elif kind == "swap_lines" and len(content) > 1:
        i, j = rng.sample(content, 2)
        lines[i], lines[j] = lines[j], lines[i]
    elif kind == "cr_only":
        return kind, data.replace(b"\r\n", b"\n").replace(b"\n", b"\r"), None
    elif kind == "crlf":
        return kind, data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"), None
    elif kind == "hostile":
        return kind, _hostile(seed, data, rng), None
    return kind, b"\n".join(lines), None


def _hostile(seed: Seed, data: bytes, rng: random.Random) -> bytes:
    """Replace one value of one record by a hostile one."""
    if seed.name.endswith(".csv"):
        lines = _lines(data)
        i = rng.randrange(1, max(len(lines) - 1, 2))
        if i >= len(lines):
            return data
        fields = lines[i].split(b",")
        k = rng.randrange(len(fields))
        fields[k] = rng.choice(HOSTILE_CSV).encode()
        lines[i] = b",".join(fields)
        return b"\n".join(lines)
    value = rng.choice(HOSTILE_JSON)
    text = data.decode("utf-8", errors="replace")
    keys = [m for m in _json_keys(text)]
    if not keys:
        return data
    start, end = rng.choice(keys)
    return (text[:start] + value + text[end:]).encode("utf-8", errors="surrogatepass")


def _json_keys(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of scalar values after a key ("key": value) in JSON text."""
    import re

    for m in re.finditer(
        r'"[A-Za-z_][A-Za-z0-9_]*"\s*:\s*("(?:[^"\\]|\\.)*"|[-0-9.eE+]+|true|false|null)', text
    ):
        yield m.start(1), m.end(1)
        if m.start() > 200_000:
            return


# --------------------------------------------------------------------------------------
# running one case
# --------------------------------------------------------------------------------------


def _fingerprint(store: Store) -> tuple[Any, ...]:
    cur = store._cur()
    counts = tuple(
        cur.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
        for t in ("datasets", "problems", "responses", "scores", "audit")
    )
    names = tuple(sorted((i.dataset_id, i.name, i.n_scores) for i in store.list_datasets()))
    return counts, names


class _Watchdog:
    """Interrupts the main thread when a case runs past its limit."""

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self.deadline: float | None = None
        self.fired = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            d = self.deadline
            if d is not None and time.monotonic() > d:
                self.fired = True
                self.deadline = None
                _thread.interrupt_main()

    def stop(self) -> None:
        self._stop.set()


def _run_case(store: Store, path: Path, watchdog: _Watchdog, name: str = "fuzz") -> tuple[str, str]:
    """Import `path`; ("ok" | "clean" | "traceback" | "hang", detail)."""
    before = _fingerprint(store)
    watchdog.fired = False
    watchdog.deadline = time.monotonic() + watchdog.limit
    try:
        res = import_path(store, path, name=name)
    except TTSLabError as exc:
        outcome = ("clean", str(exc)[:200])
    except KeyboardInterrupt:
        outcome = ("hang" if watchdog.fired else "traceback", "interrupted")
    except Exception as exc:  # the failure this suite exists to find
        outcome = ("traceback", f"{type(exc).__name__}: {exc}"[:300])
    else:
        outcome = ("ok", str(res.info.n_responses))
        store.delete_dataset(res.info)
        return outcome
    finally:
        watchdog.deadline = None
    if _fingerprint(store) != before:
        return ("db_changed", outcome[1])
    return outcome


def _cut_inside_a_line(data: bytes, cut: int) -> bool:
    """Whether the truncation at `cut` left a line that stops before its end."""
    kept = data[:cut]
    if not kept.strip() or kept.endswith(b"\n"):
        return False
    rest = data[cut:]
    line_rest = rest.split(b"\n", 1)[0]
    return bool(line_rest.strip(b"\r \t"))


@pytest.fixture(scope="module")
def fuzz_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    db = tmp_path_factory.mktemp("fuzz") / "f.duckdb"
    with Store(db) as s:
        import_path(s, EXAMPLES / "example_long.csv", name="baseline")
        yield s


COUNTS: Counter[str] = Counter()


def test_mutated_real_files_never_break_the_store(fuzz_store: Store, tmp_path: Path) -> None:
    rng = random.Random(20261201)
    watchdog = _Watchdog(CASE_LIMIT_S)
    failures: list[str] = []
    kinds: Counter[str] = Counter()
    try:
        for seed in _seeds():
            for k in range(PER_SEED):
                kind, data, cut = _mutate(seed, rng)
                case_dir = tmp_path / f"{len(kinds)}-{k}"
                case_dir.mkdir()
                path = case_dir / seed.name
                path.write_bytes(data)
                outcome, detail = _run_case(fuzz_store, path, watchdog)
                COUNTS[outcome] += 1
                kinds[kind] += 1
                label = f"{seed.name} {kind}"
                if outcome in ("traceback", "hang", "db_changed"):
                    failures.append(f"{label}: {outcome}: {detail}")
                if (
                    outcome == "ok"
                    and cut is not None
                    and _cut_inside_a_line(seed.data, cut)
                    and not seed.name.endswith((".json", ".parquet"))
                ):
                    failures.append(f"{label} at byte {cut}: silent partial import")
                    COUNTS["silent_partial"] += 1
                shutil.rmtree(case_dir, ignore_errors=True)
    finally:
        watchdog.stop()
    COUNTS["cases_mutated"] = sum(kinds.values())
    assert COUNTS["cases_mutated"] >= 400
    assert not failures, "\n".join(failures[:20])
    assert [i.name for i in fuzz_store.list_datasets()] == ["baseline"]


_text = st.one_of(
    st.text(max_size=30),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
_record = st.fixed_dictionaries(
    {
        "problem_id": _text,
        "sample_idx": _text,
        "answer": _text,
        "is_correct": _text,
        "score": _text,
    },
    optional={
        "llm": _text,
        "verifier": _text,
        "step_scores": st.one_of(_text, st.lists(st.floats(), max_size=4)),
        "n_tokens": _text,
        "level": _text,
        "gold_answer": _text,
    },
)


@settings(
    max_examples=HYPOTHESIS_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(records=st.lists(_record, min_size=1, max_size=6))
def test_generated_records_never_break_the_store(
    fuzz_store: Store, tmp_path: Path, records: list[dict[str, Any]]
) -> None:
    path = tmp_path / "gen.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    watchdog = _Watchdog(CASE_LIMIT_S)
    try:
        outcome, detail = _run_case(fuzz_store, path, watchdog)
    finally:
        watchdog.stop()
    COUNTS[outcome] += 1
    COUNTS["cases_generated"] += 1
    assert outcome in ("ok", "clean"), detail


def test_record_the_counts() -> None:
    """Runs after the fuzzers (file order): print and keep the counts."""
    total = COUNTS["cases_mutated"] + COUNTS["cases_generated"]
    assert total >= 400 + HYPOTHESIS_EXAMPLES // 2
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "fuzz_counts.json").write_text(json.dumps(dict(COUNTS), indent=2))
    print("fuzz counts:", dict(COUNTS))
    assert COUNTS["traceback"] == COUNTS["hang"] == COUNTS["db_changed"] == 0
    assert COUNTS["silent_partial"] == 0


def test_error_texts_show_plain_numbers(fuzz_store: Store, tmp_path: Path) -> None:
    lines = (EXAMPLES / "example_long.csv").read_text().splitlines()[:5]
    header = lines[0].split(",")
    row = lines[2].split(",")
    row[header.index("sample_idx")] = "-5"
    lines[2] = ",".join(row)
    path = tmp_path / "neg.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(TTSLabError) as err:
        import_path(fuzz_store, path, name="neg")
    assert "got -5.0" in str(err.value) and "np.float64" not in str(err.value)
