"""What pages keep in memory between script runs: views per dataset content
(`core.info.common.kept_per_content` over `Store.per_content`) and figures per input
(`dashboard.state.figure`). A value kept must be the value computed, never another
input's, and a replaced dataset must be computed again."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import core.info.compare as compare_module
from core import info as V
from core.evaluation import EvalConfig
from core.importers import import_path
from core.importers.writers import WRITERS
from core.info.common import _key_part, kept_per_content
from core.store import DatasetInfo, Store
from dashboard import state
from tests.conftest import make_long_frame

CFG = EvalConfig(n_subsets=20, n_boot=100)
PAIRS = [("m1", "prm"), ("m2", "orm")]
STRATS = ["majority", "vanilla_wv"]


def _import(store: Store, tmp_path: Path, n_problems: int, name: str = "d") -> DatasetInfo:
    df = make_long_frame(n_problems=n_problems, n_samples=4)
    path = WRITERS["long-csv"][0](df, tmp_path / f"{name}-{n_problems}.csv")
    replace = store.has_dataset(name)
    import_path(store, path, name=name, replace=replace)
    return store.resolve(name)


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many times Compare's curves were asked for."""
    calls: list[int] = []
    real = compare_module.many_curves

    def spy(*a: object, **k: object) -> object:
        calls.append(1)
        return real(*a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(compare_module, "many_curves", spy)
    return calls


def test_a_view_asked_again_is_the_kept_one_and_says_it_was_read_back(
    store: Store, tmp_path: Path, runs: list[int]
) -> None:
    info = _import(store, tmp_path, 12)
    first = V.compare_view(store, info, PAIRS, STRATS, 4, "majority", CFG)
    assert len(runs) == 1 and first.from_cache == (False, False)
    again = V.compare_view(store, info, list(PAIRS), tuple(STRATS), 4, "majority", CFG)
    assert len(runs) == 1  # a list or a tuple of the same pairs: the same view
    assert again.from_cache == (True, True)
    np.testing.assert_array_equal(again.accuracy, first.accuracy)
    np.testing.assert_array_equal(again.gain_low, first.gain_low)
    # a kept view's arrays cannot be changed by one caller under the others
    with pytest.raises(ValueError, match="read-only"):
        again.accuracy[0, 0] = 2.0


def test_every_other_argument_is_part_of_the_key(
    store: Store, tmp_path: Path, runs: list[int]
) -> None:
    info = _import(store, tmp_path, 12)
    base = V.compare_view(store, info, PAIRS, STRATS, 4, "majority", CFG)
    V.compare_view(store, info, PAIRS, STRATS, 2, "majority", CFG)
    V.compare_view(store, info, PAIRS[:1], STRATS, 4, "majority", CFG)
    V.compare_view(store, info, PAIRS, STRATS, 4, "vanilla_wv", CFG)
    other = V.compare_view(store, info, PAIRS, STRATS, 4, "majority", CFG.with_(boot_seed=7))
    assert len(runs) == 5
    # a different bootstrap seed gives other interval ends, not the kept ones
    assert not np.array_equal(other.gain_low, base.gain_low, equal_nan=True) or not (
        np.array_equal(other.gain_high, base.gain_high, equal_nan=True)
    )


def test_a_replaced_dataset_is_computed_again(
    store: Store, tmp_path: Path, runs: list[int]
) -> None:
    info = _import(store, tmp_path, 12)
    before = V.compare_view(store, info, PAIRS, STRATS, 4, "majority", CFG)
    assert before.n_problems == 12
    info = _import(store, tmp_path, 20)
    after = V.compare_view(store, info, PAIRS, STRATS, 4, "majority", CFG)
    assert len(runs) == 2 and after.n_problems == 20


def test_keys_tell_apart_values_a_printout_would_not() -> None:
    big = np.zeros(10_000)
    changed = big.copy()
    changed[5_000] = 1e-9  # repr() of both arrays is the same "[0. 0. 0. ... 0. 0. 0.]"
    assert repr(big) == repr(changed)
    assert _key_part(big) != _key_part(changed)
    assert _key_part(big) == _key_part(big.copy())
    assert _key_part([1, "a"]) == _key_part((1, "a"))
    assert _key_part({"b": 1, "a": 2}) == _key_part({"a": 2, "b": 1})
    assert _key_part(0.1) != _key_part(0.1 + 1e-17 + 2**-56)
    assert _key_part(CFG) != _key_part(CFG.with_(n_boot=101))


@dataclass
class _Opaque:
    value: pd.DataFrame


def test_an_argument_without_an_exact_key_is_computed_every_time(
    store: Store, tmp_path: Path
) -> None:
    info = _import(store, tmp_path, 6)
    calls: list[int] = []

    @kept_per_content
    def view(store: Store, info: DatasetInfo, frame: object) -> int:
        calls.append(1)
        return len(calls)

    frame = pd.DataFrame({"a": [1]})
    assert view(store, info, frame) == 1 and view(store, info, frame) == 2
    assert view(store, info, 3) == 3 and view(store, info, 3) == 3  # an int is a key
    assert view(store, info, object()) == 4


def test_memory_is_bounded_by_bytes_and_a_huge_value_is_not_kept(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = _import(store, tmp_path, 6)
    store._facts.max_bytes = 4_000_000
    made: list[str] = []

    def array(name: str, n_bytes: int) -> np.ndarray:
        made.append(name)
        return np.zeros(n_bytes // 8)

    a = store.per_content("a", info, lambda: array("a", 950_000))
    for name in "bcd":  # 4 x 0.95 MB: all kept
        store.per_content(name, info, lambda n=name: array(n, 950_000))  # type: ignore[misc]
    assert store.per_content("a", info, lambda: array("a", 950_000)) is a  # kept, used now
    assert made == ["a", "b", "c", "d"]
    store.per_content("e", info, lambda: array("e", 950_000))  # over 4 MB: the oldest goes
    store.per_content("a", info, lambda: array("a", 950_000))
    assert made == ["a", "b", "c", "d", "e"]  # "a" was used last, so kept
    store.per_content("b", info, lambda: array("b", 950_000))
    assert made == ["a", "b", "c", "d", "e", "b"]  # "b" was dropped
    huge = store.per_content("h", info, lambda: array("h", 1_100_000))  # > a quarter
    assert huge.flags.writeable  # not kept, so not frozen
    store.per_content("h", info, lambda: array("h", 1_100_000))
    assert made[-2:] == ["h", "h"]


def test_responses_of_one_problem(store: Store, tmp_path: Path) -> None:
    info = _import(store, tmp_path, 6)
    every = store.responses(info, "m1")
    one = store.responses(info, "m1", "q03")
    expect = every[every["problem_id"] == "q03"].reset_index(drop=True)
    assert len(expect) == 4
    pd.testing.assert_frame_equal(one.reset_index(drop=True), expect, check_dtype=False)
    assert list(one["sample_idx"]) == [0, 1, 2, 3]
    assert store.responses(info, "m1", "no such problem").empty


def test_a_figure_is_built_once_per_input() -> None:
    built: list[tuple[object, ...]] = []

    def builder(values: np.ndarray, title: str = "") -> dict[str, object]:
        built.append((values.sum(), title))
        return {"data": [{"y": values.tolist()}], "title": title}

    x = np.arange(5.0)
    first = state.figure(builder, x, title="t")
    assert state.figure(builder, x.copy(), title="t") is first
    assert len(built) == 1
    y = x.copy()
    y[2] = 2.5
    assert state.figure(builder, y, title="t")["data"] == [{"y": [0.0, 1.0, 2.5, 3.0, 4.0]}]
    state.figure(builder, x, title="u")
    assert len(built) == 3
    # an input that cannot be pickled is built every time
    state.figure(lambda f: {"f": f(1)}, lambda v: v)
    n = len(built)
    state.figure(builder, x, title=lambda: None)  # type: ignore[arg-type]
    state.figure(builder, x, title=lambda: None)  # type: ignore[arg-type]
    assert len(built) == n + 2
