"""TTS Aggregation Lab core library: aggregation, calibration and storage (no Streamlit)."""
