"""Step-score reductions against plain Python."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.methods.reduce import ReductionError, reduce_steps
from core.types import STEP_REDUCTIONS

finite = st.floats(min_value=-3.0, max_value=3.0, allow_nan=False, allow_infinity=False)
step_lists = st.lists(st.lists(finite, min_size=1, max_size=12), min_size=0, max_size=20)


def plain(steps: list[float], how: str) -> float:
    if how == "min":
        return min(steps)
    if how == "max":
        return max(steps)
    if how == "last":
        return steps[-1]
    if how == "prod":
        out = 1.0
        for x in steps:
            out *= x
        return out
    if how == "mean":
        return sum(steps) / len(steps)
    raise AssertionError(how)


@settings(max_examples=60, deadline=None)
@given(step_lists, st.sampled_from(STEP_REDUCTIONS))
def test_matches_plain_python(lists: list[list[float]], how: str) -> None:
    got = reduce_steps(lists, how)
    assert got.dtype == np.float64
    assert got.shape == (len(lists),)
    for value, steps in zip(got, lists, strict=True):
        assert math.isclose(value, plain(steps, how), rel_tol=1e-12, abs_tol=1e-12)


@settings(max_examples=30, deadline=None)
@given(step_lists, st.sampled_from(STEP_REDUCTIONS))
def test_flat_form_equals_nested_form(lists: list[list[float]], how: str) -> None:
    values = [x for s in lists for x in s]
    offsets = [0]
    for s in lists:
        offsets.append(offsets[-1] + len(s))
    np.testing.assert_allclose(
        reduce_steps(np.array(values), how, offsets=np.array(offsets)),
        reduce_steps(lists, how),
        rtol=1e-12,
        atol=1e-12,
    )


def test_known_values() -> None:
    lists = [[0.9, 0.5, 0.7], [0.2], [1.0, 0.5]]
    assert reduce_steps(lists, "min").tolist() == [0.5, 0.2, 0.5]
    assert reduce_steps(lists, "max").tolist() == [0.9, 0.2, 1.0]
    assert reduce_steps(lists, "last").tolist() == [0.7, 0.2, 0.5]
    np.testing.assert_allclose(reduce_steps(lists, "prod"), [0.315, 0.2, 0.5])
    np.testing.assert_allclose(reduce_steps(lists, "mean"), [0.7, 0.2, 0.75])


def test_unknown_reduction_lists_valid_ones() -> None:
    with pytest.raises(ValueError) as info:
        reduce_steps([[0.1]], "median")
    for name in STEP_REDUCTIONS:
        assert name in str(info.value)
    # the step reductions are the five above; "stored" (keep the imported score) is not one
    assert STEP_REDUCTIONS == ("min", "last", "prod", "mean", "max")
    with pytest.raises(ReductionError, match="unknown step reduction"):
        reduce_steps([[0.1]], "stored")


@pytest.mark.parametrize("how", STEP_REDUCTIONS)
def test_empty_step_list_is_an_error(how: str) -> None:
    with pytest.raises(ReductionError, match="no step scores"):
        reduce_steps([[0.1, 0.2], [], [0.3]], how)
    with pytest.raises(ValueError, match="position 1"):
        reduce_steps(np.array([0.1, 0.2, 0.3]), how, offsets=[0, 2, 2, 3])


def test_malformed_input() -> None:
    with pytest.raises(ReductionError, match="finite"):
        reduce_steps([[0.1, float("nan")]], "min")
    with pytest.raises(ReductionError, match="offsets"):
        reduce_steps(np.array([0.1, 0.2]), "min", offsets=[0, 3])


def test_no_responses_gives_empty_array() -> None:
    assert reduce_steps([], "min").shape == (0,)
