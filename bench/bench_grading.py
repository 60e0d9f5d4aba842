"""Benchmark: grade 100,000 real answers with the process pool on 2 cores.

Data: the BoInf files in ../shared/data/boinf (AIME 2024/2025 and MATH500, 7-11 LLMs each),
problems taken round-robin over the files until 100,000 answers (the last problem is cut).
Every answer is graded against the problem's gold and clustered within its problem.

Runs, in one process, one after the other:
  pool       grade_problems(workers=2): a fresh process pool, worker start-up included
  single     grade_problems(workers=1) in this process, caches cleared first (the reference)
             (pool and single alternate, --repeat times each; medians are reported)
  naive      math-verify parse + verify of every answer against the gold, no normalisation,
             no caching, no clustering -- on a random sample, extrapolated to all answers

    python bench/bench_grading.py [--answers 100000] [--repeat 3] [--naive-sample 1000]
                                  [--no-append]

Appends a section to bench/RESULTS.md unless --no-append.
"""

from __future__ import annotations

import argparse
import datetime as dt
import glob
import json
import os
import platform
import random
import statistics
import sys
import time
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core import grading as G  # noqa: E402

DATA = Path(os.environ.get("TTSLAB_SHARED_DATA", ROOT.parent / "shared" / "data"))


def load(n_answers: int) -> tuple[list[tuple[str, list[str | None]]], list[str]]:
    """Problems round-robin over all BoInf files (11 + 11 AIME, 7 MATH500 LLMs): problem 0 of
    every file, then problem 1, ..., until ``n_answers`` answers (the last problem is cut)."""
    files = sorted(glob.glob(str(DATA / "boinf" / "analysis_*.jsonl")))
    per_file = []
    for f in files:
        with open(f, encoding="utf-8") as fh:
            per_file.append([json.loads(line) for line in fh])
    problems: list[tuple[str, list[str | None]]] = []
    total = 0
    for idx in range(max(len(recs) for recs in per_file)):
        for recs in per_file:
            if idx >= len(recs):
                continue
            rec = recs[idx]
            answers = [a for a, _ in rec["all_answers"]][: n_answers - total]
            problems.append((rec["gold_answer"], answers))
            total += len(answers)
            if total >= n_answers:
                return problems, [Path(f).name for f in files]
    return problems, [Path(f).name for f in files]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def naive(sample: list[tuple[str, str | None]]) -> float:
    """Seconds for math-verify on each (gold, answer) pair, in this process, no caching."""
    from math_verify import parse, verify

    t0 = time.perf_counter()
    for gold, ans in sample:
        g = parse("$" + gold + "$")
        p = parse("$" + (ans or "") + "$")
        verify(g, p)
    return time.perf_counter() - t0


def _timed_chunk(
    chunk: list[tuple[str, list[str | None]]], timeout_s: float
) -> tuple[float, float, int]:
    """Grade one chunk in a worker; return (CPU seconds, wall seconds, worker pid)."""
    c0, w0 = time.process_time(), time.perf_counter()
    G._grade_chunk(chunk, timeout_s)
    return time.process_time() - c0, time.perf_counter() - w0, os.getpid()


def instrumented_pool(
    problems: list[tuple[str, list[str | None]]], workers: int
) -> tuple[float, float, float]:
    """Run the pool's own chunk function in a pool set up like grade_problems' and time the
    workers. Returns (wall, CPU share, estimated wall on free cores): CPU share = the
    workers' CPU seconds / (workers x wall), well below 1 when other processes on the machine
    took the cores; the estimate is the busiest worker's CPU seconds plus the start-up time
    (wall minus that worker's time inside chunks)."""
    from concurrent.futures import ProcessPoolExecutor

    chunks: list[list[tuple[str, list[str | None]]]] = []
    cur: list[tuple[str, list[str | None]]] = []
    size = 0
    for gold, answers in problems:
        cur.append((gold, answers))
        size += len(answers)
        if size >= 2000:
            chunks.append(cur)
            cur, size = [], 0
    if cur:
        chunks.append(cur)
    chunks.sort(key=lambda c: -G._chunk_cost(c))  # the submission order grade_problems uses
    t0 = time.perf_counter()
    with ProcessPoolExecutor(
        workers, mp_context=G._pool_context(), initializer=G._worker_init
    ) as ex:
        out = list(ex.map(_timed_chunk, chunks, [5.0] * len(chunks)))
    wall = time.perf_counter() - t0
    cpu: dict[int, float] = {}
    inside: dict[int, float] = {}
    for c, w, pid in out:
        cpu[pid] = cpu.get(pid, 0.0) + c
        inside[pid] = inside.get(pid, 0.0) + w
    busiest = max(cpu, key=lambda k: cpu[k])
    startup = max(0.0, wall - max(inside.values()))
    return wall, sum(cpu.values()) / (workers * wall), cpu[busiest] + startup


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--answers", type=int, default=100_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--naive-sample", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-append", action="store_true")
    args = ap.parse_args()

    problems, files = load(args.answers)
    n = sum(len(a) for _, a in problems)
    distinct = sum(len(set(a)) for _, a in problems)
    load_start = os.getloadavg()
    print(f"{n} answers, {len(problems)} problems, {distinct} distinct (problem, answer) strings")

    # Alternate the runs so that load from other users of the machine hits all of them alike.
    t_pools: list[float] = []
    t_singles: list[float] = []
    shares: list[float] = []
    single_shares: list[float] = []
    est_pools: list[float] = []
    single_cpus: list[float] = []
    same = True
    pooled: list[G.ProblemGrading] = []
    for rep in range(args.repeat):
        t0 = time.perf_counter()
        pooled = G.grade_problems(problems, workers=args.workers)
        t_pools.append(time.perf_counter() - t0)

        G._clear_caches()
        G._mv()  # import math-verify before timing, as the pool's initializer does
        t0, c0 = time.perf_counter(), time.process_time()
        single = G.grade_problems(problems, workers=1)
        t_singles.append(time.perf_counter() - t0)
        single_cpus.append(time.process_time() - c0)
        single_shares.append(single_cpus[-1] / t_singles[-1])
        G._clear_caches()
        same = same and pooled == single

        _, share, est = instrumented_pool(problems, args.workers)
        shares.append(share)
        est_pools.append(est)
        print(
            f"run {rep + 1}: pool {t_pools[-1]:.1f} s, single process {t_singles[-1]:.1f} s "
            f"(CPU share {single_shares[-1]:.2f}); instrumented pool: CPU share {share:.2f}, "
            f"estimate on free cores {est:.1f} s"
        )
    t_pool = statistics.median(t_pools)
    t_single = statistics.median(t_singles)

    rng = random.Random(0)
    flat = [(gold, a) for gold, answers in problems for a in answers]
    sample = rng.sample(flat, min(args.naive_sample, len(flat)))
    t_naive_sample = naive(sample)
    t_naive = t_naive_sample * len(flat) / len(sample)
    print(
        f"naive per-answer math-verify: {t_naive_sample:.1f} s for {len(sample)} -> {t_naive:.0f} s"
    )

    keys = sum(len(set(g.answer_keys)) for g in pooled)
    n_correct = sum(1 for g in pooled for c in g.is_correct if c)
    n_unparsed = sum(len(g.unparsed) for g in pooled)
    n_empty = sum(len(g.empty) for g in pooled)
    load_end = os.getloadavg()

    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "",
        f"## Grading 100k answers (bench/bench_grading.py), {now}",
        "",
        f"Machine: {cpu_model()}, {os.cpu_count()} CPUs, {platform.platform()}, "
        f"Python {platform.python_version()}, math-verify {version('math-verify')}, "
        f"sympy {version('sympy')}; grader `{G.grader_version()}`. "
        f"Load average (1/5/15 min) at the start {tuple(round(x, 2) for x in load_start)}, "
        f"at the end {tuple(round(x, 2) for x in load_end)} (shared machine). "
        "CPU share = CPU seconds / (processes x wall), 1.0 = the cores were free: "
        f"single process {', '.join(f'{x:.2f}' for x in single_shares)}; pool workers "
        f"(an instrumented pool run after each pair) {', '.join(f'{x:.2f}' for x in shares)}.",
        "",
        f"Data: {n:,} real answers of {len(problems):,} problems, taken round-robin from the "
        f"{len(files)} BoInf files (AIME 2024/2025, MATH500; last problem cut); "
        f"{distinct:,} distinct (problem, answer) strings, {keys:,} clusters; "
        f"{n_correct:,} correct, {n_unparsed} unparsed, {n_empty:,} empty. "
        "Timeout 5 s per parse / comparison. Every run starts with empty caches; pool and "
        f"single-process runs alternate, {args.repeat} of each; median (all runs).",
        "",
        "| run | wall time | answers / s |",
        "|---|---|---|",
        f"| pool, {args.workers} worker processes (forkserver, start-up included) "
        f"| {t_pool:.1f} s ({', '.join(f'{t:.1f}' for t in t_pools)}) | {n / t_pool:,.0f} |",
        f"| single process, same code (reference) "
        f"| {t_single:.1f} s ({', '.join(f'{t:.1f}' for t in t_singles)}) "
        f"| {n / t_single:,.0f} |",
        f"| naive: math-verify parse + verify per answer, no normalisation / cache / clustering "
        f"(sample of {len(sample):,}, extrapolated) | ~{t_naive:,.0f} s "
        f"| {len(sample) / t_naive_sample:,.0f} |",
        "",
        f"Ratios: single / pool = {t_single / t_pool:.2f}x on medians, "
        f"{min(t_singles) / min(t_pools):.2f}x on the fastest runs. "
        "Corrected for other users' load (single: its CPU seconds; pool: the busiest "
        "worker's CPU seconds + pool start-up): single "
        f"{statistics.median(single_cpus):.1f} s / pool {statistics.median(est_pools):.1f} s "
        f"= {statistics.median(single_cpus) / statistics.median(est_pools):.2f}x. "
        f"Naive / pool = {t_naive / t_pool:.0f}x. "
        f"Pool result identical to single-process result: {same}.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_append:
        results = ROOT / "bench" / "RESULTS.md"
        if not results.exists():
            results.write_text("# Benchmark results\n", encoding="utf-8")
        with results.open("a", encoding="utf-8") as fh:
            fh.write(text)
    if not same:
        raise SystemExit("pool and single-process results differ")


if __name__ == "__main__":
    main()
