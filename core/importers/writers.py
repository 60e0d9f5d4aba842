"""Writers of the generic formats (the inverse of the generic readers).

Used for exports, for the example files in data/examples/ and for round-trip tests.
Input: a long frame with the columns of `LONG_COLUMNS` (as from `Store.export_long`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


def _clean(v: Any) -> Any:
    """JSON-friendly Python value (numpy scalars/arrays, NaN/NA -> None)."""
    if v is None or v is pd.NA:
        return None
    if isinstance(v, np.ndarray | list | tuple):
        return [_clean(x) for x in v]
    if isinstance(v, np.bool_ | bool):
        return bool(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating | float):
        f = float(v)
        return None if math.isnan(f) else f
    return v


def write_long_csv(df: pd.DataFrame, path: str | Path) -> Path:
    out = df.copy()
    if "step_scores" in out.columns:
        out["step_scores"] = [
            json.dumps(_clean(s)) if s is not None and not _is_na(s) else ""
            for s in out["step_scores"]
        ]
    out.to_csv(path, index=False)
    return Path(path)


def _is_na(v: Any) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))


def write_long_jsonl(df: pd.DataFrame, path: str | Path) -> Path:
    cols = list(df.columns)
    with open(path, "w", encoding="utf-8") as fh:
        for row in df.itertuples(index=False, name=None):
            rec = {c: _clean(v) for c, v in zip(cols, row, strict=True)}
            rec = {k: v for k, v in rec.items() if v is not None}
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
    return Path(path)


def write_long_parquet(df: pd.DataFrame, path: str | Path) -> Path:
    out = df.copy()
    if "step_scores" in out.columns:
        out["step_scores"] = [_clean(s) if not _is_na(s) else None for s in out["step_scores"]]
    pq.write_table(pa.Table.from_pandas(out, preserve_index=False), path)
    return Path(path)


def write_wide_jsonl(df: pd.DataFrame, path: str | Path) -> Path:
    """One line per (llm, problem): lists over samples, scores keyed by verifier."""
    has_llm = "llm" in df.columns
    keys = ["llm", "problem_id"] if has_llm else ["problem_id"]
    with open(path, "w", encoding="utf-8") as fh:
        for key, grp in df.groupby(keys, sort=True):
            key_t = key if isinstance(key, tuple) else (key,)
            first_ver = grp["verifier"].iloc[0] if "verifier" in grp.columns else None
            base = (
                grp[grp["verifier"] == first_ver] if first_ver is not None else grp
            ).sort_values("sample_idx")
            if not np.array_equal(base["sample_idx"].to_numpy(), np.arange(len(base))):
                raise ValueError(
                    f"wide format needs sample_idx 0..n-1 for each problem; {key_t} has "
                    f"{base['sample_idx'].tolist()[:10]}"
                )
            rec: dict[str, Any] = {}
            if has_llm:
                rec["llm"] = key_t[0]
            rec["problem_id"] = key_t[-1]
            for col in ("gold_answer", "level", "subject", "problem_text"):
                if col in base.columns:
                    v = _clean(base[col].iloc[0])
                    if v is not None:
                        rec[col] = v
            for src, dst in (
                ("answer", "answers"),
                ("is_correct", "is_correct"),
                ("n_tokens", "n_tokens"),
            ):
                if src in base.columns:
                    rec[dst] = [_clean(v) for v in base[src]]
            scores: dict[str, Any] = {}
            steps: dict[str, Any] = {}
            for ver, vg in grp.groupby("verifier", sort=True):
                vg = vg.sort_values("sample_idx")
                scores[str(ver)] = [_clean(v) for v in vg["score"]]
                if "step_scores" in vg.columns and vg["step_scores"].notna().any():
                    steps[str(ver)] = [_clean(v) for v in vg["step_scores"]]
            rec["scores"] = scores
            if steps:
                rec["step_scores"] = steps
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
    return Path(path)


WRITERS = {
    "long-csv": (write_long_csv, ".csv"),
    "long-jsonl": (write_long_jsonl, ".jsonl"),
    "long-parquet": (write_long_parquet, ".parquet"),
    "wide-jsonl": (write_wide_jsonl, ".jsonl"),
}
