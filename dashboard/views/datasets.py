"""Datasets: what is in the store."""

from __future__ import annotations

import streamlit as st

from dashboard.state import get_store

st.title("Datasets")
store = get_store()
frame = store.datasets_frame()
if frame.empty:
    st.info("The store is empty. Run `ttslab demo` or `ttslab import FILE`.")
    st.stop()
st.dataframe(frame, hide_index=True, width="stretch")
names = frame["name"].tolist()
choice = st.selectbox("Dataset", names, index=0)
info = store.get_dataset(choice)
if info.simulated:
    st.warning(
        "Simulated benchmark: synthetic data with known likelihood ratios, "
        "parameters fitted to real outputs (data/sim_params.json)."
    )
st.caption(
    f"{info.n_problems} problems · {info.n_responses} responses · "
    f"{len(info.llms)} LLMs × {len(info.verifiers)} verifiers · correctness: {info.grader}"
)
st.dataframe(store.pair_summary(choice), hide_index=True, width="stretch")
