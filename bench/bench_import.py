"""Benchmark: import 10 million and 100 million score rows from Parquet (#12).

The files are written by a streaming writer (row group by row group, never the whole table
in memory): 10 LLMs x 5 verifiers x P problems x 200 samples, P = 1,000 / 10,000, with the
columns llm, verifier, problem_id, sample_idx, answer, is_correct, score and n_tokens;
rows ordered by LLM, verifier, problem, sample, so a response's five verifier scores lie
far apart in the file (the cross-batch checks see every response five times).

Each import runs in a fresh subprocess so that its peak memory (VmHWM) is its own. The
reference in the same run: DuckDB loading the same file into a table with its native
reader (`CREATE TABLE t AS SELECT * FROM read_parquet(...)`), no validation. Prints the
figures and appends them to bench/RESULTS.md; medians over --rounds runs (alternating).

    python bench/bench_import.py [--rows 10000000 100000000] [--rounds 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench" / "_work"
sys.path.insert(0, str(ROOT))

LLMS, VERIFIERS, SAMPLES = 10, 5, 200


def write_study(path: Path, rows: int, seed: int = 0, problems_per_group: int = 500) -> Path:
    """Stream a study of `rows` score rows to a Parquet file, one row group per
    (LLM, verifier, block of problems)."""
    problems = rows // (LLMS * VERIFIERS * SAMPLES)
    if path.exists() and pq.ParquetFile(path).metadata.num_rows == rows:
        return path
    tmp = path.with_suffix(".tmp")
    schema = pa.schema(
        [
            ("llm", pa.string()),
            ("verifier", pa.string()),
            ("problem_id", pa.string()),
            ("sample_idx", pa.int32()),
            ("answer", pa.string()),
            ("is_correct", pa.bool_()),
            ("score", pa.float64()),
            ("n_tokens", pa.int64()),
        ]
    )
    with pq.ParquetWriter(tmp, schema) as writer:
        for m in range(LLMS):
            # answers and token counts belong to the response: the same for every verifier
            rng_m = np.random.default_rng([seed, m])
            q = rng_m.beta(1.2, 1.2, size=problems)
            for v in range(VERIFIERS):
                rng_v = np.random.default_rng([seed, m, v])
                for lo in range(0, problems, problems_per_group):
                    hi = min(problems, lo + problems_per_group)
                    rng_r = np.random.default_rng([seed, m, lo])
                    n = (hi - lo) * SAMPLES
                    ok = rng_r.random(n) < np.repeat(q[lo:hi], SAMPLES)
                    wrong = rng_r.integers(1, 7, size=n)
                    answer = np.where(ok, "0", wrong.astype(str))
                    tokens = rng_r.integers(50, 4000, size=n)
                    logit = rng_v.normal(0.0, 1.0, size=n) + (0.4 + 0.3 * v) * ok
                    pid = np.repeat(np.array([f"p{k:06d}" for k in range(lo, hi)]), SAMPLES)
                    table = pa.table(
                        {
                            "llm": pa.array(np.full(n, f"llm{m:02d}")),
                            "verifier": pa.array(np.full(n, f"ver{v}")),
                            "problem_id": pa.array(pid),
                            "sample_idx": pa.array(
                                np.tile(np.arange(SAMPLES, dtype=np.int32), hi - lo)
                            ),
                            "answer": pa.array(answer),
                            "is_correct": pa.array(ok),
                            "score": pa.array(np.round(1.0 / (1.0 + np.exp(-logit)), 6)),
                            "n_tokens": pa.array(tokens),
                        },
                        schema=schema,
                    )
                    writer.write_table(table)
    tmp.rename(path)
    return path


def _vm_hwm_kib() -> float:
    """Peak RSS of this process image (VmHWM is not inherited across fork+exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return float(line.split()[1])
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def child(kind: str, path: str, db: str) -> None:
    """Run one import in this process and print a JSON line with its figures."""
    t0, c0 = time.perf_counter(), time.process_time()
    if kind == "ttslab":
        from core.importers import import_path
        from core.store import Store

        with Store(db) as s:
            res = import_path(s, path, name="bench")
            n = res.info.n_scores
    else:
        import duckdb

        con = duckdb.connect(db)
        con.execute("CREATE TABLE t AS SELECT * FROM read_parquet(?)", [path])
        row = con.execute("SELECT count(*) FROM t").fetchone()
        n = int(row[0]) if row else 0
        con.close()
    secs, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak_kib = _vm_hwm_kib()
    print(json.dumps({"rows": n, "seconds": secs, "cpu": cpu, "peak_mib": peak_kib / 1024}))


def run_child(kind: str, path: Path) -> dict[str, float]:
    db = WORK / f"import_{kind}.duckdb"
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
    print(f"  {kind}: {res}", flush=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, nargs="+", default=[10_000_000, 100_000_000])
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--child", nargs=3, metavar=("KIND", "PATH", "DB"))
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    WORK.mkdir(parents=True, exist_ok=True)
    lines = []
    for rows in args.rows:
        t0 = time.perf_counter()
        path = write_study(WORK / f"import_{rows}.parquet", rows)
        print(f"{rows:,} rows written in {time.perf_counter() - t0:.0f} s", flush=True)
        ours, ref = [], []
        for _ in range(args.rounds):
            ours.append(run_child("ttslab", path))
            ref.append(run_child("duckdb", path))

        def med(runs: list[dict[str, float]], k: str) -> float:
            return statistics.median(r[k] for r in runs)

        size = path.stat().st_size / 2**20
        lines.append(
            f"| {int(ours[0]['rows']):,} | {size:,.0f} MiB | {med(ours, 'seconds'):.1f} s "
            f"({med(ours, 'cpu'):.1f} s CPU) | {med(ours, 'peak_mib'):,.0f} MiB | "
            f"{med(ref, 'seconds'):.1f} s ({med(ref, 'cpu'):.1f} s CPU) | "
            f"{med(ref, 'peak_mib'):,.0f} MiB | "
            f"{med(ours, 'seconds') / med(ref, 'seconds'):.1f}x |"
        )
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    header = [
        "",
        f"## Streamed import of Parquet (bench/bench_import.py), "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"Machine: {machine}. `python bench/bench_import.py --rounds {args.rounds}`. "
        "Files: 10 LLMs x 5 verifiers x 1,000 / 10,000 problems x 200 samples, written row "
        "group by row group; no step scores. ttslab = the full import (read by batches of "
        "500,000 rows, validate every row, stage, check across batches, copy into the store "
        "in one transaction); reference = DuckDB's native reader into a bare table, no "
        "validation, same run, alternating. Peak = VmHWM of the importing process. "
        "Targets (#12): peak < 1.5 GiB, time within 3x of the reference.",
        "",
        "| score rows | file | ttslab time | ttslab peak | reference time | reference peak | "
        "ttslab / reference |",
        "|---|---|---|---|---|---|---|",
    ]
    text = "\n".join(header + lines) + "\n"
    print(text)
    if not args.no_record:
        res_path = ROOT / "bench" / "RESULTS.md"
        with res_path.open("a") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
