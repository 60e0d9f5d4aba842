"""Entry point: `streamlit run dashboard/app.py` (or `ttslab serve`)."""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

# `streamlit run` puts this file's folder on sys.path, not the project root.
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

st.set_page_config(page_title="TTS Aggregation Lab", layout="wide")

pages = [
    st.Page(
        str(ROOT / "dashboard" / "views" / "datasets.py"), title="Datasets", icon="🗂️", default=True
    ),
]
st.navigation(pages).run()
