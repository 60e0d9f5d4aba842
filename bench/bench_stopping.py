"""Benchmark of the early-stopping replay (core.evaluation.stopping).

One synthetic pair of 500 problems x 256 samples (bench_budget's generator, with token
counts), 200 random orders per problem, the 4 rules with 20 thresholds each. Reports the
replay's wall and CPU time (median of 3 after a warm-up) and the plain-Python replay of
tests/reference.py on the same orders: timed on a few problems and orders, extrapolated
per (problem, order) to the whole pair, with the two checked equal where both ran.

Run: ``.venv/bin/python bench/bench_stopping.py`` (``--no-append`` to skip writing
bench/RESULTS.md).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_budget import synth_pair  # noqa: E402

from core.evaluation.engine import make_subsets  # noqa: E402
from core.evaluation.stopping import RULES, _confidence, replay  # noqa: E402
from core.methods.posterior import AnswerPrior, size_inputs  # noqa: E402
from core.types import PairData  # noqa: E402
from tests import reference  # noqa: E402

RESULTS = ROOT / "bench" / "RESULTS.md"
N_THRESHOLDS = 20
GRIDS = {
    "adaptive-consistency": np.linspace(0.5, 0.999, N_THRESHOLDS),
    "esc": np.arange(1, N_THRESHOLDS + 1, dtype=float),
    "confidence": np.linspace(0.5, 0.99, N_THRESHOLDS),
    "posterior": np.linspace(0.5, 0.999, N_THRESHOLDS),
}


def with_tokens(pair: PairData, seed: int = 1) -> PairData:
    rng = np.random.default_rng(seed)
    from dataclasses import replace

    return replace(pair, n_tokens=rng.integers(200, 4000, pair.n_responses).astype(np.float64))


def run_all(pair: PairData, subsets, cal):  # type: ignore[no-untyped-def]
    return [replay(pair, r, subsets, thresholds=GRIDS[r], calibrated=cal) for r in RULES]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-append", action="store_true")
    ap.add_argument("--problems", type=int, default=500)
    args = ap.parse_args()
    pair = with_tokens(synth_pair(n_problems=args.problems, n_samples=256))
    subsets = make_subsets(pair, n_subsets=200, seed=0)
    x = np.log(pair.score) - np.log1p(-pair.score)
    cal = size_inputs(1.2 * x, AnswerPrior(1.5, 1.0, 0.3, 1.0), pair)
    load0 = os.getloadavg()

    # warm-up (compile, or load the on-disk numba cache) on a small slice
    small = pair.select(range(3))
    run_all(
        small,
        make_subsets(small, n_subsets=5, seed=0),
        size_inputs(
            np.asarray(cal.weight)[small.rows(range(3))], AnswerPrior(1.5, 1.0, 0.3, 1.0), small
        ),
    )

    walls, cpus = [], []
    for _ in range(3):
        t0, c0 = time.perf_counter(), time.process_time()
        run_all(pair, subsets, cal)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    per_rule = {}
    for r in RULES:
        t0 = time.perf_counter()
        replay(pair, r, subsets, thresholds=GRIDS[r], calibrated=cal)
        per_rule[r] = time.perf_counter() - t0

    # plain Python on a few problems and orders, same orders
    n_ref_problems, n_ref_orders = 2, 10
    ref_sub = pair.select(range(n_ref_problems))
    ref_subsets = make_subsets(ref_sub, n_subsets=n_ref_orders, seed=0)
    ref_cal = size_inputs(
        np.asarray(cal.weight)[pair.rows(range(n_ref_problems))],
        AnswerPrior(1.5, 1.0, 0.3, 1.0),
        ref_sub,
    )
    h = np.asarray(ref_cal.size_tables)[0].tolist()
    z = np.asarray(ref_cal.none_tables)[0].tolist()
    conf = list(_confidence(ref_sub))
    t0, c0 = time.perf_counter(), time.process_time()
    max_diff = 0.0
    for r in RULES:
        weight = (
            list(np.asarray(ref_cal.weight))
            if r == "posterior"
            else conf
            if r == "confidence"
            else [0.0] * ref_sub.n_responses
        )
        ref = reference.stopping_replay(
            ref_sub,
            r,
            ref_subsets,
            list(GRIDS[r]),
            weight,
            256,
            h=[h] * n_ref_problems,
            z=[z] * n_ref_problems,
        )
        got = replay(ref_sub, r, ref_subsets, thresholds=GRIDS[r], calibrated=ref_cal)
        for p in range(n_ref_problems):
            for j in range(N_THRESHOLDS):
                max_diff = max(
                    max_diff,
                    abs(got.credit[j, p] - ref[p][j][0]),
                    abs(got.samples[j, p] - ref[p][j][1]),
                )
    ref_wall = time.perf_counter() - t0
    ref_cpu = time.process_time() - c0
    scale = (pair.n_problems * subsets.n_subsets) / (n_ref_problems * n_ref_orders)
    ref_full = ref_wall * scale
    ref_full_cpu = ref_cpu * scale
    wall = statistics.median(walls)
    cpu = statistics.median(cpus)
    load1 = os.getloadavg()
    lines = [
        f"## Early-stopping replay (bench/bench_stopping.py), "
        f"{dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"{platform.platform()}, Python {platform.python_version()}, numpy {np.__version__}; "
        f"load average (1/5/15 min) at the start {tuple(round(v, 2) for v in load0)}, at the "
        f"end {tuple(round(v, 2) for v in load1)} (shared machine).",
        f"Pair: {pair.n_problems} problems x 256 samples (bench_budget's generator, token "
        "counts 200-4000), 200 random orders per problem, 4 rules x "
        f"{N_THRESHOLDS} thresholds, cap = all 256 samples.",
        "",
        "| what | time |",
        "|---|---|",
        f"| all 4 rules x {N_THRESHOLDS} thresholds (median of 3) | {wall:.2f} s wall, "
        f"{cpu:.2f} s CPU (runs: {', '.join(f'{w:.2f}' for w in walls)} s) |",
        *(f"| {RULES[r].label} alone | {t:.2f} s wall |" for r, t in per_rule.items()),
        f"| plain-Python replay (tests/reference.py), {n_ref_problems} problems x "
        f"{n_ref_orders} orders, all rules | {ref_wall:.2f} s wall, {ref_cpu:.2f} s CPU |",
        f"| plain Python extrapolated to the pair ({scale:,.0f}x) | {ref_full:,.0f} s wall, "
        f"{ref_full_cpu:,.0f} s CPU |",
        "",
        f"Speed ratio: {ref_full / wall:,.0f}x wall, {ref_full_cpu / cpu:,.0f}x CPU (goal: "
        f"under 2 s and at least 50x). Largest difference between the two on the problems "
        f"both ran: {max_diff:.1e}.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_append:
        with RESULTS.open("a") as fh:
            fh.write("\n" + text)


if __name__ == "__main__":
    main()
