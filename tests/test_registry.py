"""The strategy registry as the source of truth: a strategy registered from user code (the
README's example, run exactly as written) is evaluated, listed by the CLI and the
dashboard, and its parameters and version reach the cache keys."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core.cli import DEMO_NAME, build_demo, main
from core.evaluation import EvalConfig, fit_strategy, pair_curves
from core.methods import (
    REGISTRY,
    CalibrationError,
    FittedWeights,
    OffsetSpace,
    ScoreWeighted,
    Strategy,
    StrategyError,
    StrategyParams,
    calibrated_strategies,
    default_strategies,
    get_strategy,
    register,
    strategy_names,
    unregister,
    weight_strategies,
)
from core.methods import registry as registry_module
from core.store import Store
from core.types import FloatArray

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def readme_strategy_block() -> str:
    """The Python block of the README's "Your own strategy" section, verbatim."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### Your own strategy") :]
    m = re.search(r"```python\n(.*?)```", section, re.S)
    assert m, "the README has no Python block in 'Your own strategy'"
    return m.group(1)


@pytest.fixture
def clean_registry() -> Iterator[None]:
    """Restore the registry (and the record of loaded plugins) after the test."""
    saved = dict(REGISTRY)
    loaded = set(registry_module._LOADED)
    try:
        yield
    finally:
        REGISTRY.clear()
        REGISTRY.update(saved)
        registry_module._LOADED.clear()
        registry_module._LOADED.update(loaded)


@pytest.fixture
def plugin(tmp_path: Path) -> Path:
    path = tmp_path / "my_strategies.py"
    path.write_text(readme_strategy_block(), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("reg") / "demo.duckdb"
    with Store(path) as s:
        build_demo(s, n_problems=40, n_samples=8)
    return path


def test_readme_example_runs_as_written(plugin: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(plugin)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert out.returncode == 0, out.stderr
    rows = {
        m.group(1): [float(x) for x in m.group(2).split()]
        for m in re.finditer(r"^(Majority vote|Power WV|Vanilla WV)\s+(.*)$", out.stdout, re.M)
    }
    assert set(rows) == {"Majority vote", "Power WV", "Vanilla WV"}, out.stdout
    # budgets 1, 2, 4, 8, 16; at N = 1 every strategy picks the single response
    assert all(len(v) == 5 for v in rows.values())
    assert len({v[0] for v in rows.values()}) == 1
    # a power of the score is a weighted vote: on the demo it beats majority at N = 16
    assert rows["Power WV"][-1] > rows["Majority vote"][-1]


def test_readme_strategy_in_cli_curves(
    plugin: Path, demo_db: Path, capsys: pytest.CaptureFixture[str], clean_registry: None
) -> None:
    code = main(
        [
            "--db",
            str(demo_db),
            "curves",
            DEMO_NAME,
            "--llm",
            "sim-llm-C",
            "--verifier",
            "sim-shepherd-last",
            "--strategy",
            "power_wv",
            "--quiet",
            "--plugin",
            str(plugin),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "Power WV" in out
    # without the plugin the name is refused with the list of what is registered
    REGISTRY.pop("power_wv")
    registry_module._LOADED.discard(str(plugin))
    code = main(["--db", str(demo_db), "curves", DEMO_NAME, "--strategy", "power_wv", "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and "unknown strategy 'power_wv'" in err and "majority" in err


def test_readme_strategy_in_dashboard_lists(
    plugin: Path, demo_db: Path, monkeypatch: pytest.MonkeyPatch, clean_registry: None
) -> None:
    monkeypatch.setenv("TTSLAB_DB", str(demo_db))
    monkeypatch.setenv("TTSLAB_PLUGINS", str(plugin))
    at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=120).run()
    assert not at.exception, [e.value for e in at.exception]
    at.switch_page("views/budget.py").run()
    assert not at.exception, [e.value for e in at.exception]
    strategies = next(m for m in at.multiselect if m.label == "Strategies")
    assert "power_wv" in strategies.options or "Power WV" in strategies.options
    at.switch_page("views/weights.py").run()
    calibrators = next(s for s in at.selectbox if s.label == "Calibrator")
    assert "Power WV" in calibrators.options or "power_wv" in calibrators.options


def test_registered_strategy_curves_and_fit(demo_db: Path, clean_registry: None) -> None:
    register(
        ScoreWeighted(
            name="square_wv",
            label="Square WV",
            description="weight = t squared",
            weight_fn=lambda t, state: t**2,
        )
    )
    s = get_strategy("square_wv")
    assert s.color and s.color.startswith("#") and s.show_weights and not s.needs_labels
    assert "square_wv" in strategy_names() and "square_wv" in weight_strategies()
    assert "square_wv" not in default_strategies()
    with Store(demo_db) as store:
        info = store.get_dataset(DEMO_NAME)
        res = pair_curves(
            store,
            info,
            "sim-llm-C",
            "sim-shepherd-last",
            ["vanilla_wv", "square_wv"],
            EvalConfig(n_subsets=20),
        )
    assert res.curves.strategies == ("vanilla_wv", "square_wv")
    # at N = 1 both pick the single response: equal; later they may differ
    np.testing.assert_allclose(res.curves.curve("square_wv")[0], res.curves.curve("vanilla_wv")[0])


def test_registry_refuses_bad_entries(clean_registry: None) -> None:
    with pytest.raises(StrategyError, match="already registered"):
        register(get_strategy("majority"))
    with pytest.raises(StrategyError, match="names are"):
        register(ScoreWeighted(name="bad name!", label="x", description="x", weight_fn=None))  # type: ignore[arg-type]
    with pytest.raises(StrategyError, match="unknown strategy"):
        get_strategy("nope")
    with pytest.raises(StrategyError, match="offset needs a summed vote"):
        register(
            Strategy(
                name="bad_offset",
                label="x",
                description="x",
                vote="best_of",
                offset=OffsetSpace(lo=0, hi=1, neutral=0.5, formula="w"),
            )
        )
    unregister("majority")
    assert "majority" not in strategy_names()


def test_builtin_flags_come_from_the_registry() -> None:
    assert set(calibrated_strategies()) == {
        "linear_wv",
        "logit_wv",
        "kde_wv",
        "kde_wv_mlq",
        "posterior_vote",
        "platt_wv",
        "isotonic_wv",
    }
    assert [s for s in strategy_names() if get_strategy(s).oracle] == [
        "kde_wv_oracle",
        "bayes_optimal",
        "pass_at_n",
    ]
    # only the simulator's Bayes-optimal vote and pass@N are guaranteed ceilings
    assert [s for s in strategy_names() if get_strategy(s).upper_bound] == [
        "bayes_optimal",
        "pass_at_n",
    ]
    assert get_strategy("linear_wv").offset is not None
    assert get_strategy("logit_wv").offset is not None
    assert get_strategy("kde_wv").offset is None
    colours = [get_strategy(s).color for s in strategy_names()]
    assert len(set(colours)) == len(colours)


def test_cache_keys_read_only_the_parameters_a_strategy_uses() -> None:
    a, b = StrategyParams(), StrategyParams(bandwidth=0.3, offset_budget=8)
    assert get_strategy("majority").key(a) == get_strategy("majority").key(b)
    assert get_strategy("kde_wv").key(a) != get_strategy("kde_wv").key(b)  # bandwidth
    assert get_strategy("logit_wv").key(a) != get_strategy("logit_wv").key(b)  # offset budget
    assert get_strategy("vanilla_wv").key(a) == get_strategy("vanilla_wv").key(b)


def test_offset_strategy_of_user_code_is_tuned_on_calibration_problems(
    demo_db: Path, clean_registry: None
) -> None:
    """An offset strategy registered from outside core gets its b tuned by the evaluation
    layer (methods never evaluate accuracy)."""

    @dataclass(frozen=True, kw_only=True)
    class Shifted(Strategy):
        def base_weights(self, fitted: FittedWeights, t: FloatArray) -> FloatArray:
            return np.asarray(t, dtype=np.float64)

    register(
        Shifted(
            name="shifted_wv",
            label="Shifted WV",
            description="t - b",
            offset=OffsetSpace(lo=-1.0, hi=1.0, neutral=0.0, formula="w = t - b"),
        )
    )
    strat = get_strategy("shifted_wv")
    with Store(demo_db) as store:
        pair = store.load_pair(store.get_dataset(DEMO_NAME), "sim-llm-C", "sim-shepherd-last")
    raw = strat.fit(pair, StrategyParams())
    assert raw.offset is None
    with pytest.raises(CalibrationError, match="no offset b yet"):
        strat.weights(raw, np.array([0.5]))
    tuned = fit_strategy(strat, pair, StrategyParams())
    linear = fit_strategy(get_strategy("linear_wv"), pair, StrategyParams())
    assert tuned.offset is not None and linear.offset is not None
    # the same weight family and candidates as linear WV: the same b
    assert tuned.offset.b == linear.offset.b


def test_plugin_added_after_an_earlier_app_run_in_the_same_process(
    plugin: Path, demo_db: Path, monkeypatch: pytest.MonkeyPatch, clean_registry: None
) -> None:
    """The dashboard must load $TTSLAB_PLUGINS on every run, not once per process: a
    server-wide cache of the plugin list (CI failure of 2026-12-02) kept the first run's
    empty list, so a plugin named later never reached the strategy lists."""
    monkeypatch.setenv("TTSLAB_DB", str(demo_db))
    monkeypatch.delenv("TTSLAB_PLUGINS", raising=False)
    first = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=120).run()
    assert not first.exception, [e.value for e in first.exception]
    assert "power_wv" not in REGISTRY
    monkeypatch.setenv("TTSLAB_PLUGINS", str(plugin))
    at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=120).run()
    assert not at.exception, [e.value for e in at.exception]
    at.switch_page("views/budget.py").run()
    strategies = next(m for m in at.multiselect if m.label == "Strategies")
    assert "Power WV" in strategies.options or "power_wv" in strategies.options
