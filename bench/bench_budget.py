"""Benchmark of the accuracy-vs-budget engine (core.evaluation.engine).

One synthetic pair of 500 problems x 256 samples (a few answer clusters per problem,
scores that separate correct from wrong answers imperfectly), 200 subsets per budget,
budgets 1, 2, 4, ..., 256. Reports:

* cold JIT compile (fresh numba cache, in a subprocess) and first call with a warm cache;
* time per strategy and for all six strategies in one call (majority, best-of-N exact and
  sampled, vanilla WV, linear WV, logit WV, KDE-style WV with the q-term);
* re-scoring one pair after the offset b changes (one strategy, subsets reused);
* speed ratio versus the plain-Python reference (tests/reference.py) on the same subsets.

Run: ``.venv/bin/python bench/bench_budget.py`` (``--no-append`` to skip writing
bench/RESULTS.md).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.evaluation import accuracy_curves, make_subsets  # noqa: E402
from core.types import FloatArray, PairData, VoteInputs  # noqa: E402
from tests import reference  # noqa: E402

RESULTS = ROOT / "bench" / "RESULTS.md"


def synth_pair(n_problems: int = 500, n_samples: int = 256, seed: int = 0) -> PairData:
    """A few clusters per problem (Dirichlet shares, largest first); the most common
    answer is correct in 55 % of the problems, a rarer one in 20 %, none in 25 %; scores
    ~ Beta with a higher mean for correct responses."""
    rng = np.random.default_rng(seed)
    clusters, correct, scores = [], [], []
    for _ in range(n_problems):
        k = int(rng.integers(1, 9))
        shares = np.sort(rng.dirichlet(np.full(k, 0.6)))[::-1]
        raw = rng.choice(k, size=n_samples, p=shares)
        u = rng.uniform()
        good = 0 if u < 0.55 else (int(rng.integers(1, k)) if u < 0.75 and k > 1 else -1)
        c = raw == good
        s = np.where(c, rng.beta(4.0, 2.0, n_samples), rng.beta(2.5, 3.0, n_samples))
        _, dense = np.unique(raw, return_inverse=True)
        clusters.append(dense)
        correct.append(c)
        scores.append(np.clip(s, 1e-4, 1 - 1e-4))
    offsets = np.arange(n_problems + 1, dtype=np.int64) * n_samples
    n = n_problems * n_samples
    return PairData(
        dataset_id="bench",
        llm="synthetic-llm",
        verifier="synthetic-prm",
        problem_ids=tuple(f"p{i:04d}" for i in range(n_problems)),
        offsets=offsets,
        cluster=np.concatenate(clusters).astype(np.int64),
        score=np.concatenate(scores),
        correct=np.concatenate(correct),
        sample_idx=np.tile(np.arange(n_samples, dtype=np.int64), n_problems),
        n_tokens=np.full(n, np.nan),
    )


def _logit(x: FloatArray) -> FloatArray:
    return np.asarray(np.log(x) - np.log1p(-x), dtype=np.float64)


def strategy_inputs(pair: PairData) -> dict[str, VoteInputs]:
    s = pair.score
    # KDE-style weights: log f1/f0 of the two Beta score densities, g = calibrated P(c|s)
    llr = 1.5 * np.log(s) - 0.5 * np.log1p(-s)  # log Beta(4,2)/Beta(2.5,3) up to a constant
    g = 1.0 / (1.0 + np.exp(-(llr - 0.3)))
    return {
        "majority": VoteInputs(weight=np.ones_like(s)),
        "best_of_n": VoteInputs(weight=s.copy(), best_of=True),
        "vanilla_wv": VoteInputs(weight=s.copy()),
        "linear_wv": VoteInputs(weight=s - 0.55),
        "logit_wv": VoteInputs(weight=_logit(s) - _logit(np.array(0.6))),
        "kde_wv": VoteInputs(weight=llr, g=g),
    }


def best_time(fn: Callable[[], object], repeat: int = 5) -> tuple[float, float, float]:
    """(median wall, min wall, median CPU) seconds over ``repeat`` runs. CPU time
    (process_time) is reported too because other jobs may share the machine."""
    wall, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall), min(wall), statistics.median(cpu)


def load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def fmt(t: tuple[float, float, float]) -> str:
    return f"{t[0]:.3f} s wall (min {t[1]:.3f}; CPU {t[2]:.3f} s)"


def cold_compile_seconds() -> float:
    """First engine call in a fresh interpreter with an empty numba cache."""
    code = (
        "import time, numpy as np\n"
        "t0 = time.perf_counter()\n"
        "from core.evaluation import accuracy_curves\n"
        "from core.types import PairData, VoteInputs\n"
        "o = np.array([0, 3, 5]); n = 5\n"
        "p = PairData('d','l','v',('a','b'),o,np.array([0,1,0,0,0]),np.linspace(.1,.9,n),"
        "np.array([1,0,1,0,1],bool),np.array([0,1,2,0,1]),np.zeros(n))\n"
        "t1 = time.perf_counter()\n"
        "accuracy_curves(p, {'w': VoteInputs(p.score, g=p.score), 'b': "
        "VoteInputs(p.score, best_of=True)}, n_subsets=2, exact_best_of=False)\n"
        "accuracy_curves(p, {'b': VoteInputs(p.score, best_of=True)}, n_subsets=2)\n"
        "print(time.perf_counter() - t1)\n"
    )
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache, PYTHONPATH=str(ROOT))
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-append", action="store_true", help="do not write bench/RESULTS.md")
    ap.add_argument("--ref-problems", type=int, default=200)
    ap.add_argument("--ref-subsets", type=int, default=100)
    args = ap.parse_args()

    lines: list[str] = []

    def say(msg: str) -> None:
        print(msg, flush=True)
        lines.append(msg)

    cold = cold_compile_seconds()
    pair = synth_pair()
    inputs = strategy_inputs(pair)
    budgets = tuple(2**i for i in range(9))
    t0 = time.perf_counter()
    subsets = make_subsets(pair, budgets, n_subsets=200, seed=0)
    t_subsets = time.perf_counter() - t0
    t0 = time.perf_counter()
    tiny = synth_pair(3, 8)
    accuracy_curves(tiny, strategy_inputs(tiny), n_subsets=2, exact_best_of=False)
    accuracy_curves(tiny, strategy_inputs(tiny), n_subsets=2)
    warm_first = time.perf_counter() - t0

    say(f"pair: {pair.n_problems} problems x 256 samples, 200 subsets, budgets {budgets}")
    say(f"- load average at the start (1/5/15 min): {load()}")
    say(f"- JIT compile, empty cache (fresh process): {cold:.2f} s")
    say(f"- first call with the on-disk numba cache: {warm_first:.2f} s")
    say(f"- make_subsets (no permutations stored; drawn in the kernel): {t_subsets * 1e3:.1f} ms")

    say("- time per strategy (median of 5, subsets shared):")
    for name, vi in inputs.items():
        t = best_time(lambda vi=vi, name=name: accuracy_curves(pair, {name: vi}, subsets=subsets))
        tag = " (exact order statistics)" if vi.best_of else ""
        say(f"  - {name}{tag}: {fmt(t)}")
    t = best_time(
        lambda: accuracy_curves(
            pair, {"bon": inputs["best_of_n"]}, subsets=subsets, exact_best_of=False
        )
    )
    say(f"  - best_of_n sampled instead (prefix kernel): {fmt(t)}")
    t_all = best_time(lambda: accuracy_curves(pair, inputs, subsets=subsets))
    say(f"- ALL 6 strategies in one call: {fmt(t_all)}; target < 1.5 s")
    t = best_time(lambda: accuracy_curves(pair, inputs, subsets=subsets, exact_best_of=False))
    say(f"- all 6 strategies, best-of-N sampled as well: {fmt(t)}")

    curves = accuracy_curves(pair, inputs, subsets=subsets)
    acc = curves.mean()
    say(
        "- mean accuracy at N = 1 / 16 / 256: "
        + ", ".join(
            f"{s} {acc[i, 0]:.3f}/{acc[i, 4]:.3f}/{acc[i, 8]:.3f}"
            for i, s in enumerate(curves.strategies)
        )
    )

    def rescore() -> None:
        new = VoteInputs(weight=pair.score - 0.6)
        accuracy_curves(pair, {"linear_wv": new}, subsets=subsets)

    t = best_time(rescore, repeat=7)
    say(
        "- RE-SCORE one pair after b changes (1 strategy, subsets reused): "
        f"{fmt(t)}; target < 0.3 s"
    )

    # speed ratio against the plain-Python reference on the same subsets
    ref_pair = synth_pair(args.ref_problems, 256, seed=1)
    ref_all = strategy_inputs(ref_pair)
    ref_inputs = {k: ref_all[k] for k in ("logit_wv", "kde_wv")}
    ref_subsets = make_subsets(ref_pair, budgets, n_subsets=args.ref_subsets, seed=0)
    t0, c0 = time.perf_counter(), time.process_time()
    ref = np.array(reference.budget_curves(ref_pair, ref_inputs, ref_subsets))
    t_ref, c_ref = time.perf_counter() - t0, time.process_time() - c0
    t = best_time(lambda: accuracy_curves(ref_pair, ref_inputs, subsets=ref_subsets), repeat=7)
    fast = accuracy_curves(ref_pair, ref_inputs, subsets=ref_subsets)
    max_diff = float(np.abs(fast.per_problem - ref).max())
    say(
        f"- vs plain-Python reference ({args.ref_problems} problems x 256 samples, "
        f"{args.ref_subsets} subsets, logit WV + KDE WV, same subsets): reference "
        f"{t_ref:.1f} s wall / {c_ref:.1f} s CPU, engine {t[0] * 1e3:.1f} ms wall / "
        f"{t[2] * 1e3:.1f} ms CPU -> SPEED RATIO {t_ref / t[0]:.0f}x wall, "
        f"{c_ref / t[2]:.0f}x CPU (target >= 50x); max |difference| {max_diff:.1e}"
    )
    say(f"- load average at the end (1/5/15 min): {load()}")

    if not args.no_append:
        header = (
            f"\n## bench_budget.py: accuracy-vs-budget engine "
            f"({dt.datetime.now().strftime('%Y-%m-%d %H:%M')})\n\n"
            f"Machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
            f"{os.cpu_count()} CPUs, Python {platform.python_version()}, "
            f"numpy {np.__version__}, numba {__import__('numba').__version__}, "
            f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}\n\n"
        )
        new_file = not RESULTS.exists()
        with RESULTS.open("a", encoding="utf-8") as fh:
            if new_file:
                fh.write("# Benchmark results\n")
            fh.write(header + "\n".join(lines) + "\n")
        print(f"appended to {RESULTS}")


if __name__ == "__main__":
    main()
