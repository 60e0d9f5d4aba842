"""Dashboard pages driven by Streamlit's AppTest (no browser), on a small demo store."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from streamlit.testing.v1 import AppTest

from core.cli import DEMO_NAME, build_demo
from core.importers import import_path
from core.importers.uploads import discard_upload, save_upload_folder, uploads_dir
from core.methods import default_strategies
from core.store import Store
from core.synth.examples import EXAMPLE_FILES, EXAMPLES_DIR
from dashboard.state import parquet_bytes, save_upload

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "dashboard" / "app.py")
TIMEOUT = 120


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "dash.duckdb"
    with Store(path) as s:
        build_demo(s, n_problems=30, n_samples=8)
        import_path(s, EXAMPLES_DIR / EXAMPLE_FILES["long-csv"], name="example csv")
    monkeypatch.setenv("TTSLAB_DB", str(path))
    return path


def _app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _page(at: AppTest, name: str) -> AppTest:
    at.switch_page(f"views/{name}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def _chart(at: AppTest, i: int = 0) -> dict[str, Any]:
    """The page's i-th main chart (small side charts, such as the offset search beside
    the b slider, are skipped)."""
    charts = [c for c in at.get("plotly_chart") if "offset_chart" not in c.proto.id]
    assert charts, "no Plotly chart on the page"
    spec: dict[str, Any] = json.loads(charts[i].proto.spec)
    return spec


def _trace(spec: dict[str, Any], prefix: str) -> dict[str, Any]:
    return next(t for t in spec["data"] if str(t.get("name", "")).startswith(prefix))


def _values(x: Any) -> np.ndarray:
    """Plotly's JSON keeps numeric arrays as base64 ({"dtype", "bdata"}) or as lists."""
    if isinstance(x, dict) and "bdata" in x:
        arr = np.frombuffer(base64.b64decode(x["bdata"]), dtype=np.dtype(x["dtype"]))
        if "shape" in x:
            shape = x["shape"]
            dims = [int(d) for d in shape.split(",")] if isinstance(shape, str) else shape
            return arr.reshape(dims)
        return arr
    return np.asarray(x, dtype=float)


def _share(name: str) -> int:
    m = re.search(r"\((\d+)% of responses\)", name)
    assert m, name
    return int(m.group(1))


# ---- datasets ------------------------------------------------------------------------


def test_datasets_page_lists_and_labels(db: Path) -> None:
    at = _app()
    table = at.dataframe[0].value
    assert set(table["name"]) == {DEMO_NAME, "example csv"}
    kinds = dict(zip(table["name"], table["simulated or real"], strict=True))
    assert kinds[DEMO_NAME] == "simulated" and kinds["example csv"] == "real"
    assert {"source", "problems", "responses", "LLMs", "verifiers"} <= set(table.columns)
    # the first dataset (the demo) is selected: it is flagged as simulated
    assert any("Simulated benchmark" in w.value for w in at.warning)
    assert any("Simulated data" in c.value for c in at.sidebar.caption)
    at.sidebar.selectbox(key="w_dataset").select("example csv").run()
    assert not at.warning
    pairs = at.dataframe[1].value
    assert len(pairs) == 4  # 2 LLMs x 2 verifiers in the example file
    assert at.get("download_button"), "a Parquet download is offered"


def test_empty_store_explains_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTSLAB_DB", str(tmp_path / "empty.duckdb"))
    at = _app()
    assert "ttslab demo" in at.info[0].value
    assert at.get("file_uploader"), "an empty store can still be filled by upload"
    at.switch_page("views/weights.py").run()
    assert not at.exception
    assert "store is empty" in at.info[0].value


def _upload(at: AppTest, name: str, data: bytes) -> AppTest:
    up = at.get("file_uploader")[0]
    up.set_value((name, data, "application/octet-stream"))  # type: ignore[attr-defined]
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_upload_a_good_file_imports_it_and_selects_it(db: Path) -> None:
    at = _app()
    data = (EXAMPLES_DIR / EXAMPLE_FILES["wide-jsonl"]).read_bytes()
    _upload(at, "my_wide.jsonl", data)
    # the file is kept next to the database at once, under its own name
    kept = list((db.parent / "uploads").rglob("*.jsonl"))
    assert len(kept) == 1 and kept[0].name == "my_wide.jsonl"
    assert kept[0].read_bytes() == data
    assert at.text_input[0].value == "my_wide"
    at.text_input[0].set_value("uploaded wide")
    at.button(key="upload_import").click().run()
    assert not at.exception and not at.error
    assert any("imported 'uploaded wide'" in s.value for s in at.success)
    names = set(at.dataframe[0].value["name"])
    assert "uploaded wide" in names
    assert at.sidebar.selectbox(key="w_dataset").value == "uploaded wide"
    # the uploader was reset: no name field left over, and the kept copy is gone
    assert not at.text_input
    assert not list((db.parent / "uploads").rglob("*.jsonl"))


def test_upload_form_options_reach_the_stored_dataset(db: Path) -> None:
    rows = ["problem_id,sample_idx,answer,gold_answer,is_correct,score"]
    rows += [
        f"p{p},{i},{i % 2},0,{str(i % 2 == 0).lower()},0.{i + 1}"
        for p in range(6)
        for i in range(4)
    ]
    at = _app()
    _upload(at, "one_pair.csv", ("\n".join(rows) + "\n").encode())
    at.text_input(key=next(k for k in _keys(at) if k.startswith("upload_name_"))).set_value(
        "with options"
    )
    at.text_input(key="upload_llm").set_value("my-llm")
    at.text_input(key="upload_verifier").set_value("my-prm")
    at.text_input(key="upload_lower").set_value("my-prm")
    at.checkbox(key="upload_not_iid").check()
    at.button(key="upload_import").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    with Store(db) as s:  # the app holds the file read-write in this process
        info = s.get_dataset("with options")
    assert info.llms == ("my-llm",) and info.verifiers == ("my-prm",)
    assert info.iid is False
    assert info.lower_is_better == ("my-prm",)
    # a file with several LLMs cannot take one name: the error names the user's file
    _upload(at, "runs.jsonl", (EXAMPLES_DIR / EXAMPLE_FILES["wide-jsonl"]).read_bytes())
    at.text_input(key="upload_llm").set_value("my-llm")
    at.button(key="upload_import").click().run()
    table = at.dataframe[-1].value
    assert list(table["file"]) == ["runs.jsonl"] and "several" in table["problem"][0]


def _keys(at: AppTest) -> list[str]:
    return [w.key for w in at.text_input if w.key]


def test_upload_a_bad_file_shows_rows_and_columns(db: Path) -> None:
    lines = (EXAMPLES_DIR / EXAMPLE_FILES["long-csv"]).read_text().splitlines()[:9]
    header = lines[0].split(",")
    row = lines[3].split(",")
    row[header.index("is_correct")] = "maybe"
    lines[3] = ",".join(row)
    at = _app()
    _upload(at, "bad.csv", ("\n".join(lines) + "\n").encode())
    at.button(key="upload_import").click().run()
    assert not at.exception
    assert at.error and "nothing was imported" in at.error[0].value
    issues = at.dataframe[-1].value
    assert list(issues.columns) == ["file", "where", "column", "problem"]
    first = issues.iloc[0]
    assert first["where"] == "line 4" and first["column"] == "is_correct"
    assert "maybe" in first["problem"]
    # the error names the user's file, not an internal copy
    assert first["file"] == "bad.csv"
    assert set(at.dataframe[0].value["name"]) == {DEMO_NAME, "example csv"}
    # nothing refused is kept on disk
    assert not list((db.parent / "uploads").rglob("*.csv"))


def test_delete_needs_confirmation(db: Path) -> None:
    at = _app()
    at.sidebar.selectbox(key="w_dataset").select("example csv").run()
    at.button(key="delete_ask").click().run()
    assert any("cannot be undone" in e.value for e in at.error)
    at.button(key="delete_no").click().run()
    assert "example csv" in set(at.dataframe[0].value["name"])
    assert not at.error
    at.button(key="delete_ask").click().run()
    at.button(key="delete_yes").click().run()
    assert not at.exception
    assert set(at.dataframe[0].value["name"]) == {DEMO_NAME}
    assert any("Deleted 'example csv'" in s.value for s in at.success)
    assert at.sidebar.selectbox(key="w_dataset").value == DEMO_NAME


def test_parquet_download_and_upload_persistence(db: Path) -> None:
    with Store(db) as s:
        raw = parquet_bytes(s, "example csv")
        table = pq.read_table(io.BytesIO(raw))
        assert table.num_rows == s.get_dataset("example csv").n_scores
        assert {"problem_id", "sample_idx", "llm", "verifier", "score"} <= set(table.column_names)
        p1 = save_upload(s, "../../evil name.csv", b"a,b\n")
        p2 = save_upload(s, "../../evil name.csv", b"a,b\n")
        # the user's own (sanitised) file name, in a folder named by the content hash
        assert p1 == p2 and p1.parent.parent == uploads_dir(s) and p1.name == "evil_name.csv"
        # a 300-character name is shortened, keeping its suffix
        long = save_upload(s, "x" * 300 + ".jsonl", b"{}\n")
        assert long.suffix == ".jsonl" and len(long.name) <= 120 and long.exists()
        discard_upload(s, long)
        assert not long.exists() and not long.parent.exists()
        # names that sanitise alike in one folder upload: both files are kept
        root = save_upload_folder(s, [("d/a b.csv", b"1\n"), ("d/a_b.csv", b"2\n")])
        assert sorted(p.read_bytes() for p in root.rglob("*.csv")) == [b"1\n", b"2\n"]
        discard_upload(s, root)
        assert not root.exists()


# ---- analysis pages ------------------------------------------------------------------


def test_weights_page_offset_slider_changes_the_figure(db: Path) -> None:
    at = _page(_app(), "weights")
    spec = _chart(at)
    assert "(simulated)" in spec["layout"]["title"]["text"]
    assert _trace(spec, "w < 0")  # KDE weights of the demo are negative somewhere
    # no empty column takes width from the controls (the calibrator's name was cut)
    assert at.columns and all(len(c.children) > 0 for c in at.columns)
    at.selectbox(key="w_weights_kind").select("logit_wv").run()
    at.toggle(key="w_weights_manual_b").set_value(True).run()
    before = _trace(_chart(at), "w(s)")
    slider = at.slider(key="w_weights_b_logit_wv")
    slider.set_value(0.2).run()
    after = _trace(_chart(at), "w(s)")
    assert "b = 0.20" in after["name"]
    assert not np.allclose(_values(before["y"]), _values(after["y"]))
    assert _trace(_chart(at), "fitted (b =")  # the fitted curve stays, dashed
    low_share = _share(_trace(_chart(at), "w < 0")["name"])
    slider.set_value(0.9).run()
    assert _share(_trace(_chart(at), "w < 0")["name"]) > low_share
    # beside the slider: the offset search, with the fitted b and the b shown
    (side,) = [c for c in at.get("plotly_chart") if "offset_chart" in c.proto.id]
    spec = json.loads(side.proto.spec)
    assert "calibration accuracy vs. b" in spec["layout"]["title"]["text"]
    assert [sh["x0"] for sh in spec["layout"]["shapes"]][-1] == pytest.approx(0.9)


def test_weights_page_switch_pair_and_modes(db: Path) -> None:
    at = _page(_app(), "weights")
    title = _chart(at)["layout"]["title"]["text"]
    at.sidebar.selectbox(key="w_verifier").select("sim-grm-orm").run()
    assert not at.exception
    new_title = _chart(at)["layout"]["title"]["text"]
    assert new_title != title and "sim-grm-orm" in new_title
    at.radio(key="w_weights_axis").set_value("logit").run()
    assert "logit" in _chart(at)["layout"]["xaxis2"]["title"]["text"]
    # the transform and the signal's direction are controls of the page itself
    at.radio(key="w_weights_axis").set_value("score").run()
    at.selectbox(key="w_transform").select("rank").run()
    assert not at.exception
    t_axis = _chart(at)
    assert "rank transform" in t_axis["layout"]["xaxis2"]["title"]["text"]
    at.radio(key="w_weights_axis").set_value("raw").run()
    raw = _chart(at)
    assert "raw sim-grm-orm score" in raw["layout"]["xaxis2"]["title"]["text"]
    x = _values(_trace(raw, "w(s)")["x"])
    t = _values(_trace(t_axis, "w(s)")["x"])
    # the same curve, placed at the imported scores the ranks stand for
    assert np.all(np.diff(x) >= 0) and not np.allclose(x, t)
    np.testing.assert_allclose(
        _values(_trace(raw, "w(s)")["y"]), _values(_trace(t_axis, "w(s)")["y"])
    )
    at.selectbox(key="w_orientation").select("lower").run()
    assert "lower is better" in _chart(at)["layout"]["xaxis2"]["title"]["text"]
    assert np.all(np.diff(_values(_trace(_chart(at), "w(s)")["x"])) <= 0)  # reversed
    at.selectbox(key="w_orientation").select("auto").run()
    at.selectbox(key="w_transform").select("auto").run()
    at.radio(key="w_weights_mode").set_value("all pairs").run()
    assert not at.exception
    grid = _chart(at)
    assert len([t for t in grid["data"] if t.get("name") == "w(s)"]) == 5 * 7
    # the choice survives a page switch
    _page(at, "budget")
    _page(at, "weights")
    assert at.radio(key="w_weights_mode").value == "all pairs"
    assert at.sidebar.selectbox(key="w_verifier").value == "sim-grm-orm"


def test_budget_page(db: Path) -> None:
    at = _page(_app(), "budget")
    spec = _chart(at)
    assert spec["layout"]["xaxis"]["type"] == "log"
    notes = [a["text"] for a in spec["layout"]["annotations"]]
    # each panel's title: the pair, then the efficiency sentence
    assert any("<span style='font-size:11px'>logit WV " in t for t in notes)
    dashed = [t for t in spec["data"] if t.get("line", {}).get("dash") == "dash"]
    # oracles are dashed: on the simulated demo the Bayes-optimal ceiling and pass@N
    assert {t["legendgroup"] for t in dashed} == {"bayes_optimal", "pass_at_n"}
    pairs = at.multiselect(key="w_b_pairs")
    pairs.select(pairs.options[-1]).run()
    assert not at.exception
    assert len(_chart(at)["layout"]["annotations"]) > len(spec["layout"]["annotations"])
    asym = _trace(spec, "majority over all samples")
    assert len(set(_values(asym["y"]))) == 1  # a horizontal reference line
    at.selectbox(key="w_b_axis").select("tokens").run()
    assert not at.exception
    tok = _chart(at)
    assert "tokens" in tok["layout"]["xaxis"]["title"]["text"]
    maj = _trace(tok, "Majority vote")
    assert _values(maj["x"]).min() > max(_values(_trace(spec, "Majority vote")["x"]))
    at.selectbox(key="w_b_axis").select("flops").run()
    assert "parameter count" in at.info[-1].value  # none given yet: panels stay in samples
    at.text_input(key="w_llm_params").input(", ".join(f"sim-llm-{m}=7" for m in "ABCDE")).run()
    assert not at.exception
    fl = _chart(at)
    assert "FLOPs" in fl["layout"]["xaxis"]["title"]["text"]
    x_flops = _values(_trace(fl, "Majority vote")["x"])
    np.testing.assert_allclose(x_flops, 2 * 7e9 * _values(maj["x"]), rtol=1e-9)
    at.text_input(key="w_llm_params").input("sim-llm-E=seven").run()
    assert "BILLIONS" in at.warning[0].value and "seven" in at.warning[0].value
    at.selectbox(key="w_b_axis").select("samples").run()
    # rm_maj_eval-style numbers: the first N samples in sampling order, first tied answer
    before = _values(_chart(at)["data"][0]["y"])
    at.selectbox(key="w_order").select("sample").run()
    at.selectbox(key="w_tie_break").select("first").run()
    assert not at.exception
    assert not np.allclose(_values(_chart(at)["data"][0]["y"]), before)
    # the paired gain over a baseline against N
    at.radio(key="w_b_mode").set_value("gain").run()
    assert not at.exception
    gain = _chart(at)
    assert "Gain over Majority vote" in gain["layout"]["title"]["text"]
    assert not any(t.get("name") == "Majority vote" for t in gain["data"])
    assert any(t.get("name") == "zero" for t in gain["data"])


def test_adaptive_sampling_page(db: Path) -> None:
    at = _page(_app(), "adaptive")
    spec = _chart(at)
    assert spec["layout"]["xaxis"]["type"] == "log"
    names = {t.get("name") for t in spec["data"]}
    assert {"Adaptive-Consistency", "ESC", "confidence stop", "calibrated posterior stop"} <= names
    assert "Majority vote, fixed N" in names
    samples_x = _values(_trace(spec, "ESC")["x"])
    tables = at.dataframe
    assert len(tables) == 2  # samples and tokens
    assert set(tables[0].value["rule"]) == {
        "Adaptive-Consistency",
        "ESC",
        "confidence stop",
        "calibrated posterior stop",
    }
    # what fixed N spends is one number per unit, given in the header, not a column
    ref = at.selectbox(key="w_a_ref").value
    assert list(tables[0].value.columns) == [
        "rule",
        "reference",
        f"needs (fixed N: {ref})",
        "saves",
    ]
    tokens_needs = list(tables[1].value.columns)[2]
    assert re.fullmatch(r"needs \(fixed N: [\d,]+\)", tokens_needs), tokens_needs
    at.selectbox(key="w_a_axis").select("tokens").run()
    assert not at.exception
    spec = _chart(at)
    assert "tokens" in spec["layout"]["xaxis"]["title"]["text"]
    assert _values(_trace(spec, "ESC")["x"]).min() > samples_x.max()  # tokens, not samples
    box = at.multiselect(key="w_a_rules")
    for r in list(box.value):
        box.unselect(r)
    at.run()
    assert "at least one" in at.info[0].value and not at.get("plotly_chart")


def test_compute_frontier_page(db: Path) -> None:
    at = _page(_app(), "frontier")
    spec = _chart(at)
    assert spec["layout"]["xaxis"]["type"] == "log"
    front = _trace(spec, "Pareto frontier")
    assert len(_values(front["x"])) >= 2
    assert "accuracy" in at.success[0].value
    assert re.search(r"for [\d,]+ tokens per problem\.$", at.success[0].value)  # not 1.1e+04
    at.number_input(key="w_f_budget_tokens").set_value(0.0).run()
    assert "Nothing fits" in at.info[0].value
    at.selectbox(key="w_f_unit").select("flops").run()
    assert "parameter count for every chosen LLM" in at.info[-1].value
    at.text_input(key="w_llm_params").input(", ".join(f"sim-llm-{m}=7" for m in "ABCDE")).run()
    at.number_input(key="w_f_budget_flops").set_value(1e30).run()
    assert not at.exception
    assert "FLOPs per problem" in at.success[0].value
    at.selectbox(key="w_f_unit").select("tokens").run()
    box = at.multiselect(key="w_f_llms")
    for m in list(box.value)[1:]:
        box.unselect(m)
    at.run()
    assert "at least two LLMs" in at.info[0].value


def test_compare_page_recomputes_on_controls(db: Path) -> None:
    at = _page(_app(), "compare")
    heat = _chart(at)["data"][0]
    assert heat["type"] == "heatmap" and len(heat["y"]) == 7
    table = at.dataframe[0].value
    assert len(table) == 7 * len(default_strategies())
    # every cell says how many samples the strategy needs to match the baseline, with CI
    # (the baseline's own rows: that it is the baseline)
    col = next(c for c in table.columns if c.startswith("samples to match"))
    own = table["strategy"] == "Majority vote"
    assert own.sum() == 7 and (table.loc[own, col] == "(the baseline)").all()
    cells = table.loc[~own, col]
    assert cells.str.fullmatch(r"(\d+%|never) \[(\d+%|never), (\d+%|never)\]").all()
    at.select_slider(key="w_c_budget").set_value(4).run()
    assert not at.exception
    heat4 = _chart(at)["data"][0]
    assert not np.allclose(_values(heat4["z"]), _values(heat["z"]))
    assert "N = 4" in _chart(at)["layout"]["title"]["text"]
    at.selectbox(key="w_c_baseline").select("vanilla_wv").run()
    heat_v = _chart(at)["data"][0]
    col = heat_v["x"].index(next(x for x in heat_v["x"] if x.startswith("Vanilla WV")))
    assert np.all(_values(heat_v["z"])[:, col] == 0)
    labels = [d.label for d in at.get("download_button")]
    # the chart's own downloads, then the table's (with its intervals) as CSV and LaTeX
    assert labels == ["SVG", "PDF", "PNG", "CSV (numbers)", "Table CSV", "Table LaTeX"]
    # one pair: the table leaves out the pair (the title names it), so the gain's
    # interval fits beside the names on a laptop screen
    assert "pair" in at.dataframe[0].value.columns
    box = at.multiselect(key="w_c_verifiers")
    for v in list(box.value)[1:]:
        box.unselect(v)
    at.run()
    assert not at.exception
    one = at.dataframe[0].value
    assert list(one.columns[:2]) == ["strategy", "accuracy (%)"]
    assert one.columns[2].startswith("gain over") and "interval" in one.columns[3]
    own = one["strategy"] == "Vanilla WV"  # the baseline: no interval against itself
    assert list(one.loc[own, one.columns[3]]) == ["(the baseline)"]
    assert one.loc[~own, one.columns[3]].str.fullmatch(r"\[[+-]\d+\.\d, [+-]\d+\.\d\]").all()


def test_problem_explorer(db: Path) -> None:
    at = _page(_app(), "problems")
    spec = _chart(at)
    assert "gold answer" in spec["layout"]["title"]["text"]
    picks = at.dataframe[0].value
    assert list(picks["strategy"])[:2] == ["Majority vote", "Best-of-N"]
    box = at.selectbox(key="w_p_problem")
    n_dis = len(box.options)
    at.selectbox(key="w_p_filter").select("all").run()
    box = at.selectbox(key="w_p_problem")
    assert len(box.options) == 30 >= n_dis
    box.select(box.options[5]).run()
    assert not at.exception
    assert box.options[5] in _chart(at)["layout"]["title"]["text"]
    # the problems behind a gain: A right, B wrong at N
    at.selectbox(key="w_p_filter").select("a_right_b_wrong").run()
    at.selectbox(key="w_p_a").select("best_of_n").run()
    at.selectbox(key="w_p_b").select("majority").run()
    assert not at.exception
    notes = " ".join(c.value for c in at.caption)
    assert "is right and Majority vote wrong at N = " in notes.replace("\\", "")
    assert "the gain Compare shows" in notes
    # a search that matches nothing says so and draws no chart
    at.text_input(key="w_p_search").input("no problem says this 1234").run()
    assert not at.exception
    assert "No problem matches" in at.info[-1].value and not at.get("plotly_chart")


def test_transfer_page(db: Path) -> None:
    at = _page(_app(), "transfer")
    assert any("simulated" in w.value for w in at.warning)
    heat = next(t for t in _chart(at)["data"] if t["type"] == "heatmap")
    layout = _chart(at)["layout"]
    # default: every LLM of the demo with the sidebar's verifier, rows and columns
    assert list(layout["yaxis"]["ticktext"]) == [f"sim-llm-{c}" for c in "ABCDE"]
    assert layout["yaxis"]["title"]["text"] == "calibrated on"
    assert layout["xaxis"]["title"]["text"] == "evaluated on"
    assert heat["zmid"] == 0
    assert len(at.dataframe[0].value) == 25
    before = _values(heat["z"])
    # fewer rows
    sources = at.multiselect(key="w_t_sources")
    for opt in list(sources.value)[2:]:
        sources.unselect(opt)
    at.run()
    assert not at.exception and not at.error
    layout = _chart(at)["layout"]
    assert list(layout["yaxis"]["ticktext"]) == ["sim-llm-A", "sim-llm-B"]
    assert len(at.dataframe[0].value) == 10
    np.testing.assert_allclose(
        _values(next(t for t in _chart(at)["data"] if t["type"] == "heatmap")["z"]),
        before.reshape(5, 5)[:2],
    )
    # another strategy: another matrix
    at.selectbox(key="w_t_strategy").select("kde_wv").run()
    assert not at.exception and not at.error
    assert "KDE WV" in _chart(at)["layout"]["title"]["text"]
    assert [d.label for d in at.get("download_button")] == [
        "SVG",
        "PDF",
        "PNG",
        "CSV (numbers)",
        "Table CSV",
    ]


def test_allocation_page(db: Path) -> None:
    at = _page(_app(), "allocation")
    spec = _chart(at)
    assert _trace(spec, "per-bin choice (4 bins")
    heat = next(t for t in spec["data"] if t["type"] == "heatmap")
    assert len(heat["y"]) == 2 * 4
    assert spec["layout"]["xaxis"]["type"] == "log"
    assert list(at.dataframe[0].value["bin"]) == [1, 2, 3, 4]
    at.select_slider(key="w_a_bins").set_value(2).run()
    assert not at.exception and not at.error
    spec = _chart(at)
    assert _trace(spec, "per-bin choice (2 bins")
    assert len(next(t for t in spec["data"] if t["type"] == "heatmap")["y"]) == 4
    table = at.dataframe[0].value
    assert list(table["bin"]) == [1, 2] and table["problems"].sum() == 30
    # the table follows its budget control
    at.select_slider(key="w_a_table_budget").set_value(1).run()
    assert not at.exception
    one = at.dataframe[0].value
    assert any(c.value.startswith("At N = 1:") for c in at.caption)
    assert not one.equals(table)


def test_combine_page(db: Path) -> None:
    at = _page(_app(), "combine")
    lines = [t for t in _chart(at)["data"] if t.get("mode") == "lines+markers"]
    # majority, two signals alone, two labelled combiners, two label-free ones
    assert len(lines) == 7
    assert {
        "Sum of per-signal LLRs",
        "Logistic over signals",
        "Label-free posterior vote (EM, all signals)",
        "Weak supervision (Weaver-style, no labels)",
    } <= {t["name"] for t in lines}
    box = at.multiselect(key="w_m_verifiers")
    third = next(v for v in box.options if v not in box.value)
    box.select(third).run()
    assert not at.exception and not at.error
    lines = [t for t in _chart(at)["data"] if t.get("mode") == "lines+markers"]
    assert len(lines) == 8 and any(third in t["name"] for t in lines)
    assert len(at.dataframe[0].value) == 8
    box = at.multiselect(key="w_m_verifiers")
    for v in list(box.value)[1:]:
        box.unselect(v)
    at.run()
    assert not at.exception
    assert "at least two" in at.info[0].value
    assert not at.get("plotly_chart")


@pytest.mark.parametrize(
    "page",
    ["weights", "budget", "adaptive", "frontier", "compare", "transfer", "allocation", "problems"],
)
def test_every_page_works_on_a_small_real_format_import(db: Path, page: str) -> None:
    """The example file (12 problems, 4 samples, 2 x 2 pairs) goes through every page."""
    at = _app()
    at.sidebar.selectbox(key="w_dataset").select("example csv").run()
    _page(at, page)
    assert _chart(at)["data"], page
    assert "(simulated)" not in _chart(at)["layout"]["title"]["text"]
    # every chart is drawn as built, on the project's template (as its exports are):
    # Streamlit's theme, applied twice by its chart on each new figure, drew every
    # changed chart a second time (about 60-90 ms of each warm change)
    for c in at.get("plotly_chart"):
        assert c.proto.theme == "", (page, c.proto.id)
        tmpl = json.loads(c.proto.spec)["layout"]["template"]["layout"]
        assert tmpl["font"]["family"].startswith("Inter"), page
        assert tmpl["plot_bgcolor"] == "white", page


def test_combine_page_explains_a_signal_that_cannot_be_fitted(db: Path) -> None:
    """Every response of some cross-fitting fold of the example file is correct: the
    per-signal KDE cannot be fitted there, and the page says so before computing."""
    at = _app()
    at.sidebar.selectbox(key="w_dataset").select("example csv").run()
    at.switch_page("views/combine.py").run()
    assert not at.exception
    # said before computing, as information rather than an error on every visit
    assert not at.error
    assert at.info and "Cannot combine" in at.info[0].value
    assert "incorrect" in at.info[0].value and "fold" in at.info[0].value
    assert not at.get("plotly_chart")


def test_a_reduction_without_step_scores_is_explained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.conftest import make_long_frame

    frame = make_long_frame(n_problems=8, steps=False)
    src = tmp_path / "nosteps.csv"
    frame.drop(columns=["step_scores"]).to_csv(src, index=False)
    db = tmp_path / "n.duckdb"
    with Store(db) as s:
        import_path(s, src, name="no steps")
    monkeypatch.setenv("TTSLAB_DB", str(db))
    at = _app()
    at.switch_page("views/weights.py").run()
    at.sidebar.selectbox(key="w_reduction").select("min").run()
    assert not at.exception
    assert at.error and "step scores" in at.error[0].value


def test_save_upload_folder_keeps_layout_and_stays_inside(db: Path) -> None:
    from dashboard.state import save_upload_folder

    with Store(db) as s:
        root = save_upload_folder(
            s,
            [
                ("run/q_0/record_0.jsonl", b"a"),
                ("run/q_1/record_0.jsonl", b"b"),
                ("run/../../escape.jsonl", b"c"),
            ],
        )
        up = uploads_dir(s)
    assert root.name == "run" and root.parent.parent == up
    assert (root / "q_0" / "record_0.jsonl").read_bytes() == b"a"
    assert (root / "q_1" / "record_0.jsonl").read_bytes() == b"b"
    assert not (up / "escape.jsonl").exists() and not (up.parent / "escape.jsonl").exists()
    written = [p for p in up.rglob("*") if p.is_file()]
    assert all(p.resolve().is_relative_to(up.resolve()) for p in written)


def test_upload_a_folder_imports_it_as_one_dataset(db: Path) -> None:
    from tests.conftest import SHARED_DATA

    at = _app()
    at.radio(key="upload_mode").set_value("a folder").run()
    boinf = SHARED_DATA / "boinf"
    files = [
        (f"boinf/{n}", (boinf / n).read_bytes(), "application/octet-stream")
        for n in ("analysis_aime2024_Qwen3-4B.jsonl", "analysis_aime2024_LIMO-v2.jsonl")
    ]
    up = at.get("file_uploader")[0]
    up.set_value(files)  # type: ignore[attr-defined]
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.text_input[0].value == "boinf"
    at.button(key="upload_import").click().run()
    assert not at.exception, [e.value for e in at.exception]
    with Store(db) as s:  # the app holds the file read-write in this process
        info = s.get_dataset("boinf")
    assert set(info.llms) == {"Qwen3-4B", "LIMO-v2"} and info.verifiers == ("length",)
    assert info.n_problems == 30


def test_default_pair_is_where_aggregation_matters(db: Path) -> None:
    # default LLM: share correct nearest 1/2; default verifier: the one that best
    # separates that LLM's correct and incorrect scores (computed here from raw rows)
    at = _app()
    at.switch_page("views/weights.py").run()
    assert not at.exception
    with Store(db) as s:
        info = s.get_dataset(DEMO_NAME)
        resp = s.responses(DEMO_NAME)
        acc = resp.groupby("llm")["is_correct"].mean()
        llm = str((acc - 0.5).abs().idxmin())
        seps = {}
        for v in info.verifiers:
            sc = s.scores(DEMO_NAME, llm, v).merge(resp, on=["llm", "problem_id", "sample_idx"])
            ok = sc["is_correct"].to_numpy(dtype=bool)
            x = sc["score"].to_numpy()
            seps[v] = abs(x[ok].mean() - x[~ok].mean()) / x.std()
    boxes = {b.label: b.value for b in at.sidebar.selectbox}
    assert boxes["LLM"] == llm
    assert boxes["Verifier"] == max(seps, key=lambda v: seps[v])


def test_a_big_compare_matrix_waits_for_a_button(db: Path) -> None:
    at = _page(_app(), "compare")
    assert at.get("plotly_chart")  # the default selection is computed at once
    box = at.multiselect(key="w_c_llms")
    for m in box.options:
        if m not in box.value:
            box.select(m)
    at.run()
    assert not at.exception
    assert not at.get("plotly_chart")
    assert "more than the 150 computed without asking" in at.info[0].value
    at.button(key="big_compare").click().run()
    assert not at.exception
    heat = _chart(at)["data"][0]
    assert len(heat["y"]) == 5 * 7
    at.selectbox(key="w_c_baseline").select("best_of_n").run()  # a new selection asks again
    assert not at.get("plotly_chart") and at.button(key="big_compare")


def test_budget_page_overlays_pairs_of_two_datasets(db: Path) -> None:
    with Store(db) as s:
        build_demo(s, n_problems=20, n_samples=8, seed=4, name="other demo")
    at = _page(_app(), "budget")
    at.radio(key="w_b_layout").set_value("overlay").run()
    assert not at.exception
    box = at.multiselect(key="w_b_overlay")
    theirs = next(o for o in box.options if o.startswith("other demo"))
    box.select(theirs).run()
    assert not at.exception
    spec = _chart(at)
    assert "pairs on one chart" in spec["layout"]["title"]["text"]
    names = [t["name"] for t in spec["data"] if t.get("mode") == "lines+markers"]
    assert len(names) == 4  # 2 pairs x 2 strategies
    assert sum(n.startswith("other demo") for n in names) == 2


def test_pages_that_vote_warn_where_every_answer_differs(db: Path) -> None:
    # RewardMATH (real): one correct and nine incorrect solutions, each its own answer
    from tests.conftest import SHARED_DATA

    folder = SHARED_DATA / "rewardmath"
    with Store(db) as s:
        import_path(s, folder / "ArmoRM_reward.json", name="rewardmath")
    at = _page(_app(), "budget")
    assert not [w for w in at.warning if "answers all differ" in w.value]  # the demo votes
    box = next(b for b in at.sidebar.selectbox if b.label == "Dataset")
    box.select(next(o for o in box.options if o.startswith("rewardmath"))).run()
    assert not at.exception
    for page in ("budget", "adaptive", "allocation", "problems"):
        _page(at, page)
        notes = [w.value for w in at.warning if "answers all differ" in w.value]
        assert len(notes) == 1, (page, [w.value for w in at.warning])
        assert "In 100% of this dataset's problems" in notes[0]
