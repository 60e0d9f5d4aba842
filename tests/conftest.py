from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import settings

from core.store import Store

# CI runs the same examples every time (a failure there reproduces locally with
# HYPOTHESIS_PROFILE=ci); local runs keep exploring new ones.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("dev", print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

# The dashboard's background curve warm-up is off in tests (it would compete for the 2
# CPUs with every test); tests/test_warm.py turns it on where it is the subject.
os.environ.setdefault("TTSLAB_WARM", "0")

ROOT = Path(__file__).resolve().parents[1]

#: Test files that run in the serial phase (`make unit`: first everything else on two
#: workers, then these alone): they start servers and browsers, time things, or start
#: process pools and clusters of their own, and would slow or disturb each other.
SERIAL_FILES = frozenset(
    {
        "test_access.py",
        "test_browser.py",
        "test_browser_share.py",
        "test_executors.py",
        "test_export.py",
        "test_grading.py",
        "test_identity.py",
        "test_warm.py",
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in SERIAL_FILES or item.get_closest_marker("browser"):
            item.add_marker(pytest.mark.serial)


SHARED_DATA = Path(os.environ.get("TTSLAB_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "t.duckdb")
    try:
        yield s
    finally:
        s.close()


def make_long_frame(
    n_problems: int = 6,
    n_samples: int = 4,
    llms: tuple[str, ...] = ("m1", "m2"),
    verifiers: tuple[str, ...] = ("prm", "orm"),
    seed: int = 0,
    steps: bool = True,
) -> pd.DataFrame:
    """A small, fully specified long-format frame built by hand (not by the simulator)."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_problems):
        gold = str(p * 3)
        for m in llms:
            answers = [
                gold if rng.random() < 0.5 else str(p * 3 + rng.integers(1, 3))
                for _ in range(n_samples)
            ]
            toks = rng.integers(10, 500, size=n_samples)
            for v in verifiers:
                for i in range(n_samples):
                    st = [round(float(x), 6) for x in rng.random(int(rng.integers(1, 4)))]
                    rows.append(
                        {
                            "problem_id": f"q{p:02d}",
                            "sample_idx": i,
                            "llm": m,
                            "verifier": v,
                            "answer": answers[i],
                            "is_correct": answers[i] == gold,
                            "gold_answer": gold,
                            "score": st[-1],
                            "step_scores": st if steps else None,
                            "n_tokens": int(toks[i]),
                            "level": 1 + p % 5,
                            "subject": "Algebra" if p % 2 else "Geometry",
                            "problem_text": f"What is {p} times 3?",
                        }
                    )
    return pd.DataFrame(rows)
