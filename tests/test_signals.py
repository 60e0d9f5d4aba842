"""Any per-response signal (token length, ORM logits) calibrated like a PRM score."""

from __future__ import annotations

import numpy as np
import pytest

from core.evaluation import fit_strategy, response_weights
from core.methods import CalibrationError, FittedWeights, StrategyParams, get_strategy
from core.methods.transforms import apply_transform, oriented, parse_transform, resolve_transform
from core.types import PairData


def length_pair(n_problems: int = 200, n: int = 16, seed: int = 0) -> PairData:
    """Token counts: correct answers are shorter (lognormal), as in real reasoning LLMs."""
    rng = np.random.default_rng(seed)
    correct = rng.random(n_problems * n) < 0.5
    tokens = np.where(
        correct, rng.lognormal(8.0, 0.4, correct.size), rng.lognormal(8.8, 0.5, correct.size)
    ).round()
    offsets = np.arange(0, (n_problems + 1) * n, n, dtype=np.int64)
    cluster = np.where(correct, 0, 1 + np.arange(correct.size) % 3)
    dense = np.empty_like(cluster)
    for p in range(n_problems):
        seen: dict[int, int] = {}
        for i in range(offsets[p], offsets[p + 1]):
            dense[i] = seen.setdefault(int(cluster[i]), len(seen))
    return PairData(
        "d",
        "m",
        "length",
        tuple(f"p{i}" for i in range(n_problems)),
        offsets,
        dense,
        tokens,
        correct,
        np.tile(np.arange(n), n_problems),
        tokens,
    )


def test_auto_transform_by_range() -> None:
    assert resolve_transform("auto", [0.1, 0.9]) == "identity"
    # ORM scores of any range: the rank among the calibration scores (a sigmoid saturates)
    assert resolve_transform("auto", [-4.3, 6.1]).startswith("rank:")
    wide = resolve_transform("auto", [-1102.0, -3.0, 0.5, 396.0])
    t = apply_transform(np.array([-1102.0, -3.0, 0.5, 396.0]), wide)
    assert np.all(np.diff(t) > 0.1)  # distinct scores stay clearly apart
    resolved = resolve_transform("auto", [120.0, 9000.0, 15000.0])  # token counts
    name, mean, sd = parse_transform(resolved)
    assert name == "log-zscore"
    v = np.log1p([120.0, 9000.0, 15000.0])
    assert mean == pytest.approx(v.mean()) and sd == pytest.approx(v.std())
    t = apply_transform(np.array([120.0, 15000.0]), resolved)
    assert 0 < t[0] < 0.5 < t[1] < 1
    with pytest.raises(CalibrationError):
        resolve_transform("log-zscore", [-1.0, 3.0])
    with pytest.raises(CalibrationError):
        parse_transform("zscore:1.0")


def test_length_signal_gets_negative_weights_for_long_answers() -> None:
    pair = length_pair()
    kde = get_strategy("kde_wv")
    fitted = kde.fit(pair, StrategyParams())
    assert fitted.transform.startswith("log-zscore:")
    # nothing declared at import: the direction is estimated on these labels
    assert fitted.orientation == "lower"
    short, long_ = 2000.0, 15000.0  # e^8 ~ 3000 tokens (correct), e^8.8 ~ 6600 (wrong)
    t = oriented(apply_transform(np.array([short, long_]), fitted.transform), "lower")
    w = kde.weights(fitted, t)
    assert w[0] > 0 > w[1]
    # the transform's parameters come from the calibration scores and survive JSON
    back = FittedWeights.from_json(fitted.to_json())
    assert back.transform == fitted.transform
    np.testing.assert_array_equal(response_weights(back, pair), response_weights(fitted, pair))


def test_transform_parameters_use_calibration_scores_only() -> None:
    calib = length_pair(seed=1)
    other = length_pair(seed=2)
    fitted = fit_strategy(get_strategy("logit_wv"), calib, StrategyParams(offset_n_subsets=10))
    _, mean, _ = parse_transform(fitted.transform)
    assert mean == pytest.approx(np.log1p(calib.score).mean())
    assert mean != pytest.approx(np.log1p(other.score).mean())
