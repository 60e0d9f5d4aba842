"""Cold paths against the previous engine, in one run, with the same database and data.

The previous engine is a checkout of the commit before the evaluation-core rewrite
(`BASE_COMMIT`, made with `git worktree` under bench/_work/, not committed). On a
200-problem x 64-sample demo (5 LLMs x 7 verifiers) each run starts from a fresh copy of
the database (empty result cache) in a fresh process, and measures:

1. `ttslab curves DATASET` for every pair (35 pairs, the default strategy set), the CLI
   as a user runs it; and the same curves computed by the library (`pair_curves`);
2. the cold Transfer matrix 5 x 5 (every LLM with one verifier, as the dashboard's
   default: logit WV calibrated on each row, evaluated on each column at N = 16, gain over
   majority vote);
3. the cold Compare view (one LLM x all 7 verifiers, the default strategies, N = 32,
   baseline majority vote), as the dashboard's default.

The library jobs run twice in their process, on two fresh copies of the database: the
first run is timed with the process start (imports, loading compiled kernels), the second
as in a running process such as the dashboard's server. Runs alternate old / new; medians
of wall and CPU time (user + system of the process and its threads) over the rounds, and
their ratios. Accuracies are compared cell by cell.

Both engines are asked for the same strategies (`COMMON`: the previous default set without
its KDE oracle). The new engine's Compare view computes its whole default set (it also holds
the posterior vote and, on simulated data, the Bayes-optimal ceiling): that is the work a
user waits for. Since the trust changes (exact N = 1, KDE tails held beyond the data) the
accuracies are no longer identical: the comparison reports how far they moved. The demo
database is built by the previous engine (schema v1), which cannot read the new schema; the
new engine migrates its copies when it opens them.

    .venv/bin/python bench/bench_cold.py [--rounds 3] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import math
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

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench" / "_work"
RESULTS = ROOT / "bench" / "RESULTS.md"
BASE_COMMIT = "93f22ea"  # the last commit before the evaluation-core rewrite
PREV = WORK / f"prev-{BASE_COMMIT}"
DEMO = WORK / "cold_demo_200x64.duckdb"
NAME = "demo (simulated)"
PY = sys.executable
#: Strategies both engines know by the same name (the previous default set without its
#: KDE oracle, which was renamed).
COMMON = (
    "majority",
    "best_of_n",
    "vanilla_wv",
    "linear_wv",
    "logit_wv",
    "kde_wv",
    "pass_at_n",
)

# Each job prints one JSON line: {"numbers": {...}} computed in a fresh process.
#: The job's work, run in a fresh process on database copy argv[1], then again (same
#: process, imports and numba kernels loaded, as in a running dashboard) on argv[2]; both
#: copies start with an empty result cache. Prints {"warm_s": .., "numbers": ..}.
JOB = """
import json, sys, time
%(imports)s
def job(path):
    with Store(path) as s:
%(body)s
job(sys.argv[1])
t0 = time.perf_counter(); c0 = time.process_time()
numbers = job(sys.argv[2])
print(json.dumps({"warm_s": time.perf_counter() - t0, "warm_cpu": time.process_time() - c0,
                  "numbers": numbers}))
"""
JOBS: dict[str, dict[str, tuple[str, str]]] = {
    "curves": {
        "old": (
            "from core.analysis import CurveSpec, pair_curves\nfrom core.store import Store\n"
            f"OLD = {COMMON!r}",
            """        info = s.get_dataset("%(name)s")
        return [pair_curves(s, CurveSpec(info.name, m, v, strategies=OLD))
                .curves.per_problem.mean(-1).tolist()
                for m in info.llms for v in info.verifiers]""",
        ),
        "new": (
            "from core.evaluation import EvalConfig, pair_curves\n"
            f"from core.store import Store\nOLD = {COMMON!r}",
            """        info = s.get_dataset("%(name)s")
        return [pair_curves(s, info, m, v, OLD, EvalConfig())
                .curves.per_problem.mean(-1).tolist()
                for m in info.llms for v in info.verifiers]""",
        ),
    },
    "transfer": {
        "old": (
            "from core.store import Store\nfrom core.transfer import PairRef\n"
            "from core.views import AnalysisSettings\nfrom core.views_beyond import transfer_view",
            """        info = s.get_dataset("%(name)s")
        refs = [PairRef(info.name, m, info.verifiers[0]) for m in info.llms]
        v = transfer_view(s, refs, refs, "logit_wv", "majority", 16, AnalysisSettings())
        return {"acc": v.accuracy.tolist(), "gain": v.gain.tolist(),
                "base": v.baseline_accuracy.tolist()}""",
        ),
        "new": (
            "from core.evaluation import EvalConfig\nfrom core.info import PairRef, transfer_view\n"
            "from core.store import Store",
            """        info = s.get_dataset("%(name)s")
        refs = [PairRef(info.name, m, info.verifiers[0]) for m in info.llms]
        v = transfer_view(s, refs, refs, "logit_wv", "majority", 16, EvalConfig())
        return {"acc": v.accuracy.tolist(), "gain": v.gain.tolist(),
                "base": v.baseline_accuracy.tolist()}""",
        ),
    },
    "compare": {
        "old": (
            "from core.store import Store\n"
            f"from core.views import AnalysisSettings, compare_view\nOLD = {COMMON!r}",
            """        info = s.get_dataset("%(name)s")
        pairs = [(info.llms[2], v) for v in info.verifiers]
        v = compare_view(s, info.name, pairs, list(OLD), 32, "majority",
                         AnalysisSettings())
        return {"acc": v.accuracy.tolist()}""",
        ),
        "new": (
            "from core.evaluation import EvalConfig\nfrom core.info import compare_view\n"
            f"from core.store import Store\nOLD = {COMMON!r}",
            """        info = s.get_dataset("%(name)s")
        pairs = [(info.llms[2], v) for v in info.verifiers]
        v = compare_view(s, info, pairs, list(OLD), 32, "majority",
                         EvalConfig())
        return {"acc": v.accuracy.tolist()}""",
        ),
    },
}


def ensure_prev() -> None:
    if not (PREV / "core").is_dir():
        WORK.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["git", "worktree", "add", "--force", "--detach", str(PREV), BASE_COMMIT],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )


def ensure_demo() -> None:
    if not DEMO.exists():
        DEMO.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                PY,
                "-m",
                "core.cli",
                "--db",
                str(DEMO),
                "demo",
                "--problems",
                "200",
                "--samples",
                "64",
                "--quiet",
            ],
            cwd=PREV,  # schema v1: the previous engine cannot read what the new one writes
            check=True,
            env={**os.environ, "PYTHONPATH": str(PREV)},
        )


def timed(cmd: list[str], code_root: Path) -> tuple[float, float, str]:
    """(wall s, CPU s of the child, stdout) of one fresh process."""
    env = {**os.environ, "PYTHONPATH": str(code_root)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run(cmd, cwd=code_root, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} failed:\n{out.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, out.stdout


def run(what: str, engine: str, tag: str) -> tuple[float, float, Any, float, float]:
    """(process wall, process CPU, numbers, warm wall, warm CPU) of one job."""
    code_root = PREV if engine == "old" else ROOT
    dbs = [WORK / f"cold_{what}_{engine}_{tag}_{i}.duckdb" for i in (1, 2)]
    for db in dbs:
        shutil.copy(DEMO, db)
    try:
        if what == "cli":
            csv = WORK / f"cold_curves_{engine}.csv"
            wall, cpu, _ = timed(
                [
                    PY,
                    "-m",
                    "core.cli",
                    "--db",
                    str(dbs[0]),
                    "curves",
                    NAME,
                    "--quiet",
                    "--csv",
                    str(csv),
                    *[x for name in COMMON for x in ("--strategy", name)],
                ],
                code_root,
            )
            return wall, cpu, csv, math.nan, math.nan
        imports, body = JOBS[what][engine]
        script = JOB % {"imports": imports, "body": body % {"name": NAME}}
        wall, cpu, out = timed([PY, "-c", script, str(dbs[0]), str(dbs[1])], code_root)
        got = json.loads(out.strip().splitlines()[-1])
        warm, warm_cpu = float(got["warm_s"]), float(got["warm_cpu"])
        # the fresh process's own work: everything but the second (warm) computation
        return wall - warm, cpu - warm_cpu, got["numbers"], warm, warm_cpu
    finally:
        for db in dbs:
            db.unlink(missing_ok=True)
            Path(str(db) + ".wal").unlink(missing_ok=True)


def compare_numbers(what: str, old: Any, new: Any) -> str:
    if what == "cli":
        import pandas as pd

        a = pd.read_csv(old).set_index(["llm", "verifier", "strategy", "budget"])["accuracy"]
        b = pd.read_csv(new).set_index(["llm", "verifier", "strategy", "budget"])["accuracy"]
        a, b = a.sort_index(), b.sort_index()
        assert list(a.index) == list(b.index), "different cells"
        diff = (a - b).abs()
        exact = int((diff == 0).sum())
        worst = diff.groupby(level="strategy").max()
        nz = {k: float(v) for k, v in worst.items() if v > 0}
        return (
            f"{exact} of {len(diff)} accuracies identical (CSV, 6 significant digits); "
            f"largest difference {float(diff.max()):.1e}"
            + (f" ({', '.join(f'{k} {v:.1e}' for k, v in nz.items())})" if nz else "")
        )
    if what == "curves":
        old, new = {"acc": old}, {"acc": new}
    keys = ["acc", "gain", "base"] if what == "transfer" else ["acc"]
    parts = []
    for k in keys:
        x, y = np.asarray(old[k], dtype=float), np.asarray(new[k], dtype=float)
        same = int(np.sum(np.isclose(x, y, rtol=0, atol=0, equal_nan=True)))
        parts.append(f"{k}: {same}/{x.size} identical, max diff {np.nanmax(np.abs(x - y)):.1e}")
    return "; ".join(parts)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import numba

    return (
        f"{cpu}, {os.cpu_count()} CPUs, {platform.platform()}, Python "
        f"{platform.python_version()}, numpy {np.__version__}, numba {numba.__version__}"
    )


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", choices=["cli", "curves", "transfer", "compare"], action="append")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    ensure_prev()
    ensure_demo()
    load0 = os.getloadavg()
    results: dict[str, dict[str, list[tuple[float, float, float, float]]]] = {}
    agreement: dict[str, str] = {}
    for what in args.only or ["cli", "curves", "transfer", "compare"]:
        # warm-up: numba's on-disk caches of each engine (not timed)
        for engine in ("old", "new"):
            run(what, engine, "warm")
        results[what] = {"old": [], "new": []}
        last: dict[str, Any] = {}
        for r in range(args.rounds):
            for engine in ("old", "new") if r % 2 == 0 else ("new", "old"):
                wall, cpu, nums, warm, warm_cpu = run(what, engine, str(r))
                results[what][engine].append((wall, cpu, warm, warm_cpu))
                last[engine] = nums
                print(
                    f"{what:9s} {engine}: process wall {wall:6.2f} s cpu {cpu:6.2f} s; in a "
                    f"running process {warm:6.2f} s (cpu {warm_cpu:6.2f} s)",
                    flush=True,
                )
        agreement[what] = compare_numbers(what, last["old"], last["new"])
        print(f"{what:9s} numbers: {agreement[what]}", flush=True)
    load1 = os.getloadavg()
    lines = [
        f"\n## Cold paths against the previous engine (bench/bench_cold.py), "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n",
        f"Machine: {machine()}. Load average (1/5/15 min) {load0[0]:.2f}/{load0[1]:.2f}/"
        f"{load0[2]:.2f} at the start, {load1[0]:.2f}/{load1[1]:.2f}/{load1[2]:.2f} at the "
        "end (shared machine).",
        f"Data: simulated demo, 200 problems x 64 samples, 5 LLMs x 7 verifiers (64,000 "
        f"responses, 448,000 scores). Previous engine: commit {BASE_COMMIT} (a git worktree, "
        "same venv). Every run: a fresh process on a fresh copy of the database (empty "
        f"result cache), numba caches warm; {args.rounds} rounds alternating old/new; "
        "medians. CPU = user + system time of the process (BLAS threads included). The "
        "views (Transfer, Compare) are also timed in a running process (imports and compiled "
        "kernels loaded, as in the dashboard's server) on a second fresh copy of the "
        "database: the cold-cache time a dashboard user waits.\n",
        "| cold path | previous wall | new wall | wall ratio | previous CPU | new CPU | "
        "CPU ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    names = {
        "cli": "`ttslab curves` for all 35 pairs (7 strategies)",
        "curves": "cross-fitted curves of all 35 pairs (7 strategies, `pair_curves`)",
        "transfer": "Transfer matrix 5 x 5 (logit WV, N = 16)",
        "compare": "Compare view, 1 LLM x 7 verifiers (7 strategies asked, N = 32)",
    }
    for what, res in results.items():
        for col, label in ((0, "fresh process"), (2, "in a running process")):
            if what == "cli" and col == 2:
                continue
            ow = statistics.median(x[col] for x in res["old"])
            nw = statistics.median(x[col] for x in res["new"])
            oc = statistics.median(x[col + 1] for x in res["old"])
            nc = statistics.median(x[col + 1] for x in res["new"])
            label = "a fresh process" if what == "cli" else label
            lines.append(
                f"| {names[what]}, {label} | {ow:.2f} s | {nw:.2f} s | **{ow / nw:.1f}x** | "
                f"{oc:.2f} s | {nc:.2f} s | **{oc / nc:.1f}x** |"
            )
    lines.append("")
    for what, text in agreement.items():
        lines.append(f"- {names[what]}: {text}.")
    report = "\n".join(lines) + "\n"
    print(report)
    if not args.no_write:
        with RESULTS.open("a") as fh:
            fh.write(report)
        print(f"appended to {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
