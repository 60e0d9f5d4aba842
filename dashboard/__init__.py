"""Streamlit dashboard of TTS Aggregation Lab (a thin shell over `core`)."""
