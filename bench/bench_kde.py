"""Benchmark of the grid/FFT KDE fit (core.calibration.fit_kde) on 1 million scores.

Synthetic scores: logit(score) ~ N(1, 1) for correct and N(-1, 1.3) for incorrect
responses (half each). Timed (best of --repeat runs, after one warm-up):

* the full KDE fit from scores: clip + logit, Scott bandwidths, linear binning onto the
  grid, FFT convolution, floored log densities (``fit_kde``);
* the whole KDE WV fit ``get_strategy("kde_wv").fit(pair)`` (adds the score transform and the binned
  calibrator g) on the same 1 million responses;
* scipy.stats.gaussian_kde with the same bandwidth on a random subsample of
  ``--subsample`` scores per class, evaluated on the same grid, in the same run; its cost
  grows linearly with the sample size, so it is also extrapolated to 1 million scores.

Accuracy check: the FFT densities against gaussian_kde on the subsample (same points, same
bandwidth), max relative error where the density exceeds 1 % of its peak.

Run: ``.venv/bin/python bench/bench_kde.py`` (``--no-append`` to skip bench/RESULTS.md).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy import special, stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.methods import StrategyParams, get_strategy  # noqa: E402
from core.methods.kde import fit_kde, grid_kde_density, kde_bandwidth  # noqa: E402
from core.methods.transforms import clipped_logit  # noqa: E402
from core.types import PairData  # noqa: E402

RESULTS = ROOT / "bench" / "RESULTS.md"
TARGET_S = 0.5


def best_of(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def make_pair(n: int, seed: int) -> PairData:
    rng = np.random.default_rng(seed)
    correct = rng.random(n) < 0.5
    x = np.where(correct, rng.normal(1.0, 1.0, n), rng.normal(-1.0, 1.3, n))
    per = 100
    n_problems = n // per
    return PairData(
        dataset_id="bench",
        llm="l",
        verifier="v",
        problem_ids=tuple(f"p{i}" for i in range(n_problems)),
        offsets=np.arange(n_problems + 1, dtype=np.int64) * per,
        cluster=np.zeros(n, dtype=np.int64),
        score=special.expit(x),
        correct=correct,
        sample_idx=np.tile(np.arange(per, dtype=np.int64), n_problems),
        n_tokens=np.full(n, np.nan),
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--subsample", type=int, default=10_000, help="scipy sample per class")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-append", action="store_true", help="do not write bench/RESULTS.md")
    args = ap.parse_args()

    pair = make_pair(args.n, args.seed)
    params = StrategyParams()
    eps = params.clip_eps

    def ours() -> object:
        x = clipped_logit(pair.score, eps)
        return fit_kde(x, pair.correct, bandwidth="scott", n_grid=params.n_grid)

    t_ours = best_of(ours, args.repeat)
    kde = fit_kde(clipped_logit(pair.score, eps), pair.correct)
    t_full = best_of(lambda: get_strategy("kde_wv").fit(pair, params), args.repeat)

    # scipy on a subsample, same bandwidth, same grid
    rng = np.random.default_rng(args.seed + 1)
    x = clipped_logit(pair.score, eps)
    xs = [
        rng.choice(x[pair.correct], args.subsample, replace=False),
        rng.choice(x[~pair.correct], args.subsample, replace=False),
    ]
    grid = kde.grid

    def scipy_fit() -> object:
        out = []
        for xc in xs:
            h = kde_bandwidth(xc, "scott")
            out.append(stats.gaussian_kde(xc, bw_method=h / xc.std(ddof=1))(grid))
        return out

    t_scipy = best_of(scipy_fit, max(1, args.repeat // 2))
    t_scipy_1m = t_scipy * args.n / (2 * args.subsample)
    ref = scipy_fit()
    errs = []
    for xc, r in zip(xs, ref, strict=True):
        h = kde_bandwidth(xc, "scott")
        d = grid_kde_density(xc, grid, h)
        dense = r > 0.01 * r.max()
        errs.append(float(np.max(np.abs(d[dense] - r[dense]) / r[dense])))
    t_ours_sub = best_of(
        lambda: [grid_kde_density(xc, grid, kde_bandwidth(xc, "scott")) for xc in xs],
        args.repeat,
    )

    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine = (
        f"{platform.platform()}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, numpy {np.__version__}; "
        f"1-min load average at the end {os.getloadavg()[0]:.2f} (shared machine)"
    )
    verdict = "meets" if t_ours < TARGET_S else "MISSES"
    lines = [
        "",
        f"## KDE fit (bench/bench_kde.py), {now}",
        "",
        f"Machine: {machine}.",
        f"Data: {args.n:,} synthetic scores (logit ~ N(1, 1) correct / N(-1, 1.3) incorrect, "
        f"half each); grid {kde.grid.size} points, Scott bandwidth (shared) "
        f"{kde.bandwidth1:.4f} logit units. Best of {args.repeat} runs after a warm-up.",
        "",
        "| what | time |",
        "|---|---|",
        f"| `fit_kde` on {args.n:,} scores (logit + binning + FFT + floor) | "
        f"{t_ours * 1e3:.1f} ms ({verdict} the {TARGET_S} s target) |",
        f"| KDE WV fit (`get_strategy('kde_wv').fit`) on {args.n:,} responses (adds transform and "
        f"calibrator g) | {t_full * 1e3:.1f} ms |",
        f"| FFT KDE, {args.subsample:,} scores per class, same grid | {t_ours_sub * 1e3:.2f} ms |",
        f"| scipy.stats.gaussian_kde, {args.subsample:,} scores per class, evaluated on the "
        f"same grid | {t_scipy * 1e3:.1f} ms |",
        f"| gaussian_kde extrapolated (linear in n) to {args.n:,} scores | {t_scipy_1m:.1f} s |",
        "",
        f"Ratios: gaussian_kde / FFT KDE on the same {args.subsample:,}-per-class subsample = "
        f"{t_scipy / t_ours_sub:,.0f}x; extrapolated gaussian_kde on {args.n:,} / FFT KDE on "
        f"{args.n:,} = {t_scipy_1m / t_ours:,.0f}x.",
        f"Agreement with gaussian_kde on the subsample (same bandwidth): max relative error "
        f"{max(errs):.2e} where the density exceeds 1 % of its peak.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_append:
        new_file = not RESULTS.exists()
        with RESULTS.open("a", encoding="utf-8") as fh:
            if new_file:
                fh.write("# Benchmark results\n")
            fh.write(text)
        print(f"appended to {RESULTS}")


if __name__ == "__main__":
    main()
