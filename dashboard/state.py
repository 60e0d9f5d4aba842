"""Shared, cached resources of the dashboard."""

from __future__ import annotations

import streamlit as st

from core.store import Store, default_db_path


@st.cache_resource
def _store_for(path: str) -> Store:
    return Store(path)


def get_store() -> Store:
    """One Store per database file and server process; each session thread reads through
    its own cursor (see core.store)."""
    return _store_for(str(default_db_path()))
