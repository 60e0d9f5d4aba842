"""Entry point: `streamlit run dashboard/app.py` (or `ttslab serve`)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import streamlit as st

# `streamlit run` puts this file's folder on sys.path, not the project root.
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core.methods import load_plugins  # noqa: E402
from dashboard.state import (  # noqa: E402
    StoreError,
    dataset_picker,
    get_store,
    opening,
    plain,
    warm_up_in_background,
)

# Strategies registered by the user ($TTSLAB_PLUGINS, entry points): each is imported
# once per process by `load_plugins` (which scans entry points once), so this costs set
# lookups on a warm run; a failed plugin raises each run, with its name, until fixed.
load_plugins()

st.set_page_config(
    page_title="TTS Aggregation Lab", page_icon=":material/functions:", layout="wide"
)
warm_up_in_background()

PAGES_DIR = ROOT / "dashboard" / "views"  # not "pages/": Streamlit would run them alone
# (file stem = url path, title, icon); the first page opens at the bare address
PAGES = [
    ("datasets", "Datasets", "database"),
    ("weights", "Weight functions", "show_chart"),
    ("budget", "Budget curves", "trending_up"),
    ("adaptive", "Adaptive sampling", "speed"),
    ("frontier", "Compute frontier", "scatter_plot"),
    ("compare", "Compare", "grid_on"),
    ("transfer", "Transfer", "swap_horiz"),
    ("allocation", "Allocation by difficulty", "stacked_bar_chart"),
    ("combine", "Combine signals", "call_merge"),
    ("problems", "Problem explorer", "search"),
]
pages = {
    stem: st.Page(
        str(PAGES_DIR / f"{stem}.py"), title=title, icon=f":material/{icon}:", url_path=stem
    )
    for stem, title, icon in PAGES
}


def _home() -> None:
    """The bare address opens the first page under its own path (Streamlit serves its
    default page only at "/", so "/datasets" would otherwise be "Page not found"),
    keeping the query string."""
    query = {k: st.query_params.get_all(k) for k in st.query_params}
    st.switch_page(pages[PAGES[0][0]], query_params=query)


page = st.navigation(
    [st.Page(_home, title=PAGES[0][1], default=True, visibility="hidden"), *pages.values()]
)
st.sidebar.title("TTS Aggregation Lab")
try:
    store = get_store()
except StoreError as exc:
    # another process holds the database (a long `ttslab import`): say so and try again,
    # rather than greeting the visitor with a traceback
    st.title("TTS Aggregation Lab")
    st.info(
        f"The database cannot be opened right now: {plain(exc)}  \nThis usually means "
        "another program (such as a running `ttslab import`) is writing it. This page tries "
        "again every 5 seconds.",
        icon=":material/hourglass_top:",
    )
    time.sleep(5)
    st.rerun()
with opening(page.title, page.url_path):  # a slow opening shows a bar within a second
    st.session_state["_dataset_info"] = dataset_picker(store)
    page.run()
