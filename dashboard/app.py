"""Entry point: `streamlit run dashboard/app.py` (or `ttslab serve`)."""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

# `streamlit run` puts this file's folder on sys.path, not the project root.
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from dashboard.state import dataset_picker, get_store  # noqa: E402

st.set_page_config(
    page_title="TTS Aggregation Lab", page_icon=":material/functions:", layout="wide"
)

VIEWS = ROOT / "dashboard" / "views"
pages = [
    st.Page(str(VIEWS / "datasets.py"), title="Datasets", icon=":material/database:", default=True),
    st.Page(
        str(VIEWS / "weights.py"),
        title="Weight functions",
        icon=":material/show_chart:",
        url_path="weights",
    ),
    st.Page(
        str(VIEWS / "budget.py"),
        title="Budget curves",
        icon=":material/trending_up:",
        url_path="budget",
    ),
    st.Page(
        str(VIEWS / "compare.py"), title="Compare", icon=":material/grid_on:", url_path="compare"
    ),
    st.Page(
        str(VIEWS / "transfer.py"),
        title="Transfer",
        icon=":material/swap_horiz:",
        url_path="transfer",
    ),
    st.Page(
        str(VIEWS / "allocation.py"),
        title="Allocation by difficulty",
        icon=":material/stacked_bar_chart:",
        url_path="allocation",
    ),
    st.Page(
        str(VIEWS / "combine.py"),
        title="Combine signals",
        icon=":material/call_merge:",
        url_path="combine",
    ),
    st.Page(
        str(VIEWS / "problems.py"),
        title="Problem explorer",
        icon=":material/search:",
        url_path="problems",
    ),
]
page = st.navigation(pages)
st.sidebar.title("TTS Aggregation Lab")
st.session_state["_dataset_info"] = dataset_picker(get_store())
page.run()
