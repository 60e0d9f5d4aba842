"""Benchmark: import 10 million and 100 million score rows from Parquet (#12).

The files are written by a streaming writer (row group by row group, never the whole table
in memory): 10 LLMs x 5 verifiers x P problems x 200 samples, P = 1,000 / 10,000, with the
columns llm, verifier, problem_id, sample_idx, answer, is_correct, score and n_tokens;
rows ordered by LLM, verifier, problem, sample, so a response's five verifier scores lie
far apart in the file (the cross-batch checks see every response five times).

Each import runs in a fresh subprocess so that its peak memory (VmHWM) is its own. The
reference in the same run: DuckDB loading the same file into a table with its native
reader (`CREATE TABLE t AS SELECT * FROM read_parquet(...)`), no validation. The file's
columns are typed, so the import takes the query path (`core.importers.typed`);
``--batch`` also times the batch path (the in-memory validator, 500,000 rows at a time).

Registration in place: the same rows laid out as ``llm=/verifier=`` folders (by DuckDB,
outside the timing), registered with `register_in_place` (validated as queries, nothing
copied); its reference is DuckDB loading that folder into a table.

Text files (``--text``): the same rows as CSV and as JSON Lines (written by DuckDB,
outside the timing), imported by the streamed readers (chunks of whole lines, one batch
each), by the whole-file reading of the previous engine (every batch kept, then
validated at once), and loaded by DuckDB's own CSV / JSON reader into a bare table; at
two sizes, to show whether peak memory grows with the file.

Prints the figures and appends them to bench/RESULTS.md; medians over --rounds runs
(alternating).

    python bench/bench_import.py [--rows 10000000 100000000] [--rounds 1] [--batch]
    python bench/bench_import.py --text [--text-rows 2000000 10000000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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
    storage = "table"
    if kind in ("ttslab", "batch", "text", "whole"):
        import core.importers as importers
        from core.store import Store

        importers.TYPED_PATH = kind == "ttslab"
        if kind == "whole":  # the previous engine: the whole file read, then validated
            importers.STREAMERS = {"long-parquet": importers.STREAMERS["long-parquet"]}
        with Store(db) as s:
            res = importers.import_path(s, path, name="bench")
            n = res.info.n_scores
            storage = res.info.storage
    elif kind == "inplace":
        from core.importers.inplace import register_in_place
        from core.store import Store

        with Store(db) as s:
            info, _, _ = register_in_place(s, path, name="bench")
            n = info.n_scores
    elif kind == "duckdb-folder":
        import duckdb

        con = duckdb.connect(db)
        con.execute(
            "CREATE TABLE t AS SELECT * FROM read_parquet(?, hive_partitioning = true)",
            [f"{path}/**/*.parquet"],
        )
        row = con.execute("SELECT count(*) FROM t").fetchone()
        n = int(row[0]) if row else 0
        con.close()
    else:
        import duckdb

        con = duckdb.connect(db)
        reader = {".csv": "read_csv", ".jsonl": "read_json"}.get(Path(path).suffix, "read_parquet")
        con.execute(f"CREATE TABLE t AS SELECT * FROM {reader}(?)", [path])
        row = con.execute("SELECT count(*) FROM t").fetchone()
        n = int(row[0]) if row else 0
        con.close()
    secs, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak_kib = _vm_hwm_kib()
    print(
        json.dumps(
            {
                "rows": n,
                "seconds": secs,
                "cpu": cpu,
                "peak_mib": peak_kib / 1024,
                "storage": storage,
            }
        )
    )


def run_child(kind: str, path: Path) -> dict[str, Any]:
    db = WORK / f"import_{kind}.duckdb"
    for p in (db, Path(str(db) + ".wal")):
        p.unlink(missing_ok=True)
    shutil.rmtree(Path(str(db) + ".parts"), ignore_errors=True)
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(path), str(db)],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    res: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    db.unlink(missing_ok=True)
    shutil.rmtree(Path(str(db) + ".parts"), ignore_errors=True)
    print(f"  {kind}: {res}", flush=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, nargs="+", default=[10_000_000, 100_000_000])
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--child", nargs=3, metavar=("KIND", "PATH", "DB"))
    ap.add_argument("--no-record", action="store_true")
    ap.add_argument("--batch", action="store_true", help="also time the batch path")
    ap.add_argument("--text", action="store_true", help="CSV and JSON Lines instead")
    ap.add_argument("--text-rows", type=int, nargs="+", default=[2_000_000, 10_000_000])
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    WORK.mkdir(parents=True, exist_ok=True)
    if args.text:
        text_main(args.text_rows, args.rounds, not args.no_record)
        return
    lines, place = [], []

    def med(runs: list[dict[str, Any]], k: str) -> float:
        return float(statistics.median(r[k] for r in runs))

    def row(label: str, size: float, ours: list[dict[str, Any]], ref: list[dict[str, Any]]) -> str:
        return (
            f"| {int(ours[0]['rows']):,} | {label} | {size:,.0f} MiB | "
            f"{med(ours, 'seconds'):.1f} s ({med(ours, 'cpu'):.1f} s CPU) | "
            f"{med(ours, 'peak_mib'):,.0f} MiB | "
            f"{med(ref, 'seconds'):.1f} s ({med(ref, 'cpu'):.1f} s CPU) | "
            f"{med(ref, 'peak_mib'):,.0f} MiB | "
            f"{med(ours, 'seconds') / med(ref, 'seconds'):.1f}x |"
        )

    for rows in args.rows:
        t0 = time.perf_counter()
        path = write_study(WORK / f"import_{rows}.parquet", rows)
        folder = partitioned(path)
        print(f"{rows:,} rows written in {time.perf_counter() - t0:.0f} s", flush=True)
        ours, batch, ref, inplace, ref_folder = [], [], [], [], []
        for _ in range(args.rounds):
            ours.append(run_child("ttslab", path))
            ref.append(run_child("duckdb", path))
            if args.batch:
                batch.append(run_child("batch", path))
            inplace.append(run_child("inplace", folder))
            ref_folder.append(run_child("duckdb-folder", folder))
        size = path.stat().st_size / 2**20
        lines.append(row(f"query path, into {ours[0]['storage']}", size, ours, ref))
        if batch:
            lines.append(row("batch path", size, batch, ref))
        fsize = sum(f.stat().st_size for f in folder.rglob("*.parquet")) / 2**20
        place.append(row("in place", fsize, inplace, ref_folder))
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    cols = [
        "| score rows | how | data | ttslab time | ttslab peak | reference time | "
        "reference peak | ttslab / reference |",
        "|---|---|---|---|---|---|---|---|",
    ]
    header = [
        "",
        f"## Import and in-place registration of Parquet (bench/bench_import.py), "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"Machine: {machine}. `python bench/bench_import.py --rounds {args.rounds}"
        f"{' --batch' if args.batch else ''}`. Files: 10 LLMs x 5 verifiers x 1,000 / "
        "10,000 problems x 200 samples, written row group by row group; no step scores; "
        "typed columns. ttslab = the full import, storage chosen by size (table: the DuckDB "
        "file; parquet: partitioned files beside it, from 20M rows) (query path: every "
        "row checked in one scan, answer keys per distinct answer, duplicates, responses "
        "across verifiers and gold answers as queries, copy into the store in one "
        "transaction; batch path: the in-memory validator 500,000 rows at a time); "
        "reference = DuckDB's native reader into a bare table, no validation, same run, "
        "alternating. Peak = VmHWM of the importing process. Targets (#12): peak < 1.5 GiB, "
        "time within 3x of the reference.",
        "",
        *cols,
    ]
    place_header = [
        "",
        "Registration in place (`ttslab import --in-place FOLDER`): the same rows as "
        "llm=/verifier= folders, validated as queries, nothing copied; reference = DuckDB "
        "loading the folder (hive partitioning) into a bare table.",
        "",
        *cols,
    ]
    text = "\n".join(header + lines + place_header + place) + "\n"
    print(text)
    if not args.no_record:
        res_path = ROOT / "bench" / "RESULTS.md"
        with res_path.open("a") as fh:
            fh.write(text)


def as_text(path: Path, suffix: str) -> Path:
    """The Parquet file's rows as CSV (header) or JSON Lines (written once, by DuckDB)."""
    import duckdb

    out = path.with_suffix(suffix)
    if out.exists():
        return out
    tmp = path.with_suffix(suffix + ".tmp")
    fmt = "csv, header true" if suffix == ".csv" else "json"
    con = duckdb.connect()
    con.execute(f"COPY (SELECT * FROM read_parquet(?)) TO ? (FORMAT {fmt})", [str(path), str(tmp)])
    con.close()
    tmp.rename(out)
    return out


def text_main(sizes: list[int], rounds: int, record: bool) -> None:
    """Streamed CSV / JSON Lines imports against the whole-file reading and DuckDB."""
    lines = []
    for rows in sizes:
        parquet = write_study(WORK / f"import_{rows}.parquet", rows)
        for suffix in (".csv", ".jsonl"):
            path = as_text(parquet, suffix)
            ours, whole, ref = [], [], []
            for _ in range(rounds):
                ours.append(run_child("text", path))
                whole.append(run_child("whole", path))
                ref.append(run_child("duckdb", path))

            def cell(runs: list[dict[str, Any]]) -> str:
                return (
                    f"{statistics.median(r['seconds'] for r in runs):.1f} s "
                    f"({statistics.median(r['cpu'] for r in runs):.1f} s CPU), "
                    f"{statistics.median(r['peak_mib'] for r in runs):,.0f} MiB"
                )

            secs = [statistics.median(r["seconds"] for r in runs) for runs in (ours, ref)]
            size = path.stat().st_size / 2**20
            lines.append(
                f"| {rows:,} | {suffix[1:].upper()} | {size:,.0f} MiB | {cell(ours)} | "
                f"{cell(whole)} | {cell(ref)} | {secs[0] / secs[1]:.1f}x |"
            )
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    text = (
        "\n".join(
            [
                "",
                f"## Streamed import of CSV and JSON Lines (bench/bench_import.py --text), "
                f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
                "",
                f"Machine: {machine}. `python bench/bench_import.py --text --text-rows "
                f"{' '.join(map(str, sizes))} --rounds {rounds}`. The Parquet study's rows "
                "(10 LLMs x 5 verifiers x 200 samples) as CSV with a header and as JSON Lines, "
                "written by DuckDB. streamed = the import (chunks of 8 MiB of whole lines, "
                "each parsed, validated and staged; checks across chunks as queries; copy into "
                "the store in one transaction); whole = the previous engine's way (every chunk "
                "kept, then validated at once); DuckDB = its own reader into a bare table, no "
                "validation. Time (CPU), peak = VmHWM of the importing process.",
                "",
                "| score rows | format | file | streamed | whole file | DuckDB "
                "| streamed / DuckDB |",
                "|---|---|---|---|---|---|---|",
                *lines,
            ]
        )
        + "\n"
    )
    print(text)
    if record:
        with (ROOT / "bench" / "RESULTS.md").open("a") as fh:
            fh.write(text)


def partitioned(path: Path) -> Path:
    """The file's rows as llm=/verifier= folders (written once, by DuckDB)."""
    import duckdb

    folder = path.with_suffix(".parts")
    if folder.is_dir():
        return folder
    tmp = path.with_suffix(".parts-tmp")
    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = false")
    con.execute(
        "COPY (SELECT * FROM read_parquet(?)) TO ? (FORMAT parquet, PARTITION_BY (llm, verifier))",
        [str(path), str(tmp)],
    )
    con.close()
    tmp.rename(folder)
    return folder


if __name__ == "__main__":
    main()
