"""Benchmark: import 1 million score rows from Parquet and from CSV.

Each import runs in a fresh subprocess so that its peak memory (ru_maxrss) is its own.
Reference in the same run: DuckDB loading the same file straight into a table with its
native reader (`read_parquet` / `read_csv`), no validation: the floor any importer could
reach. Prints the figures and appends them to bench/RESULTS.md.

    python bench/bench_import.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench" / "_work"
sys.path.insert(0, str(ROOT))


def make_frame(rows: int, seed: int = 0) -> pd.DataFrame:
    """rows = llms x verifiers x problems x samples, with 1-8 step scores per row."""
    rng = np.random.default_rng(seed)
    llms, verifiers, samples = 5, 2, 200
    problems = rows // (llms * verifiers * samples)
    n_resp = llms * problems * samples
    llm = np.repeat([f"llm{k}" for k in range(llms)], problems * samples)
    pid = np.tile(np.repeat([f"p{k:05d}" for k in range(problems)], samples), llms)
    sidx = np.tile(np.arange(samples), llms * problems)
    gold = rng.integers(0, 50, size=problems)
    ans = np.where(
        rng.random(n_resp) < 0.5,
        np.tile(np.repeat(gold, samples), llms),
        rng.integers(0, 50, size=n_resp),
    )
    correct = ans == np.tile(np.repeat(gold, samples), llms)
    resp = pd.DataFrame(
        {
            "llm": llm,
            "problem_id": pid,
            "sample_idx": sidx,
            "answer": ans.astype(str),
            "is_correct": correct,
            "n_tokens": rng.integers(50, 4000, size=n_resp),
        }
    )
    frames = []
    for v in range(verifiers):
        f = resp.copy()
        f["verifier"] = f"ver{v}"
        n_steps = rng.integers(1, 9, size=n_resp)
        flat = np.round(rng.random(int(n_steps.sum())), 6)
        offs = np.r_[0, np.cumsum(n_steps)]
        f["step_scores"] = [flat[offs[i] : offs[i + 1]] for i in range(n_resp)]
        f["score"] = flat[offs[1:] - 1]
        frames.append(f)
    return pd.concat(frames, ignore_index=True)


def _vm_hwm_kib() -> float:
    """Peak RSS of this process image. Unlike ru_maxrss, VmHWM is not inherited from the
    parent across fork+exec, so the parent's large frame does not leak into the figure."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return float(line.split()[1])
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def child(kind: str, path: str, db: str) -> None:
    """Run one import in this process and print a JSON line with its figures."""
    t0 = time.perf_counter()
    if kind.startswith("ttslab"):
        from core.importers import import_path
        from core.store import Store

        with Store(db) as s:
            res = import_path(s, path, name="bench")
            n = res.info.n_scores
    else:
        import duckdb

        con = duckdb.connect(db)
        reader = "read_parquet" if path.endswith(".parquet") else "read_csv"
        con.execute(f"CREATE TABLE t AS SELECT * FROM {reader}(?)", [path])
        row = con.execute("SELECT count(*) FROM t").fetchone()
        n = int(row[0]) if row else 0
        con.close()
    secs = time.perf_counter() - t0
    peak_kib = _vm_hwm_kib()
    print(json.dumps({"kind": kind, "rows": n, "seconds": secs, "peak_mib": peak_kib / 1024}))


def run_child(kind: str, path: Path) -> dict[str, float]:
    db = WORK / f"{kind}.duckdb"
    for p in (db, Path(str(db) + ".wal")):
        p.unlink(missing_ok=True)
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(path), str(db)],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    res: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    db.unlink(missing_ok=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--child", nargs=3, metavar=("KIND", "PATH", "DB"))
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    WORK.mkdir(parents=True, exist_ok=True)
    from core.importers.writers import write_long_csv, write_long_parquet

    df = make_frame(args.rows)
    pq_path = write_long_parquet(df, WORK / "bench.parquet")
    csv_path = write_long_csv(df, WORK / "bench.csv")
    del df
    results = []
    for fmt, path in (("parquet", pq_path), ("csv", csv_path)):
        ours = run_child(f"ttslab-{fmt}", path)
        ref = run_child(f"duckdb-native-{fmt}", path)
        size = path.stat().st_size / 2**20
        results.append((fmt, size, ours, ref))
    lines = []
    for fmt, size, ours, ref in results:
        lines.append(
            f"| {fmt} | {int(ours['rows']):,} | {size:.0f} MiB | {ours['seconds']:.2f} s | "
            f"{ours['peak_mib']:.0f} MiB | {ref['seconds']:.2f} s | {ref['peak_mib']:.0f} MiB | "
            f"{ours['seconds'] / ref['seconds']:.1f}x |"
        )
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    header = [
        "",
        f"## Import of {args.rows:,} score rows ({datetime.now(UTC):%Y-%m-%d}, {machine})",
        "",
        "`python bench/bench_import.py`. ttslab = full import (read, validate every row, "
        "one transaction); reference = DuckDB's native reader into a bare table, no "
        "validation, same run. Peak memory = max RSS of the importing process. Target "
        "for Parquet: < 15 s and < 2 GiB.",
        "",
        "| format | rows | file | ttslab time | ttslab peak | reference time | "
        "reference peak | ttslab / reference |",
        "|---|---|---|---|---|---|---|---|",
    ]
    text = "\n".join(header + lines) + "\n"
    print(text)
    if not args.no_record:
        res_path = ROOT / "bench" / "RESULTS.md"
        if not res_path.exists():
            res_path.write_text("# Benchmark results\n")
        with res_path.open("a") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
