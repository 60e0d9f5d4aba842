"""The built-in demo dataset: the simulated benchmark of `core.synth.simulate`, canonical."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import pandas as pd

from core.store import CanonicalData, Store
from core.synth.simulate import SimulatedBenchmark, simulate


def canonical_from_benchmark(bench: SimulatedBenchmark) -> CanonicalData:
    problems = bench.problems.rename(columns={})[
        ["problem_id", "gold_answer", "level", "subject", "text"]
    ]
    responses = bench.responses[
        ["llm", "problem_id", "sample_idx", "answer_raw", "answer_key", "is_correct", "n_tokens"]
    ]
    scores = bench.scores[["llm", "verifier", "problem_id", "sample_idx", "score", "step_scores"]]
    return CanonicalData(problems=problems, responses=responses, scores=scores)


def truth_meta(bench: SimulatedBenchmark) -> dict[str, Any]:
    """The simulator's own parameters of every pair, stored with the dataset so that the
    exact Bayes-optimal vote can be computed on it: per LLM the prior over a problem's
    accuracy q (Beta) and the wrong-answer process (Pitman-Yor), per pair the class
    densities of the logit score (Gaussian mixtures)."""
    p = bench.params
    llms = {
        name: {
            "beta_a": m.beta_a,
            "beta_b": m.beta_b,
            "py_discount": m.py_discount,
            "py_concentration": m.py_concentration,
        }
        for name, m in p.llms.items()
        if name in bench.llms
    }
    pairs = {}
    for m in bench.llms:
        for v in bench.verifiers:
            g1, g0 = p.pair_mixtures(m, v, bench.problem_effect_sd)
            pairs[f"{m}|{v}"] = {"logit_correct": g1.to_dict(), "logit_incorrect": g0.to_dict()}
    return {
        "truth": {
            "llms": llms,
            "pairs": pairs,
            "conditionally_independent": bench.problem_effect_sd == 0,
        },
    }


def demo_canonical(
    seed: int = 0, n_problems: int = 500, n_samples: int = 64
) -> tuple[CanonicalData, str, str, dict[str, Any]]:
    """(data, content hash, notes, metadata with the simulator's parameters) of the
    simulated demo benchmark."""
    bench = simulate(seed=seed, n_problems=n_problems, n_samples=n_samples)
    ident = {
        "simulator": "core.simulate",
        "seed": seed,
        "n_problems": n_problems,
        "n_samples": n_samples,
        "params": repr(bench.params),
    }
    sha = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()
    notes = (
        f"SIMULATED benchmark (seed {seed}, {n_problems} problems x {n_samples} samples); "
        "parameters fitted to real data, see data/sim_params.json; true likelihood ratios "
        "are known exactly"
    )
    return canonical_from_benchmark(bench), sha, notes, truth_meta(bench)


def example_frames(seed: int = 7) -> pd.DataFrame:
    """A small long-format frame (2 LLMs x 2 verifiers x 12 problems x 4 samples)."""
    bench = simulate(seed=seed, n_problems=12, n_samples=4)
    long = bench.to_long_frame()
    llms = sorted(long["llm"].unique())[:2]
    vers = sorted(long["verifier"].unique())[:2]
    out = long[long["llm"].isin(llms) & long["verifier"].isin(vers)].reset_index(drop=True)
    return out


#: name of the built-in demo dataset
DEMO_NAME = "demo (simulated)"


def build_demo(
    store: Store,
    *,
    seed: int = 0,
    n_problems: int = 500,
    n_samples: int = 64,
    replace: bool = False,
    name: str = DEMO_NAME,
    progress: Callable[[str, int, int], None] | None = None,
) -> None:
    """Simulate the demo benchmark and store it, labelled as simulated."""
    if progress is not None:
        progress("simulating", 0, 5)
    data, sha, notes, meta = demo_canonical(seed=seed, n_problems=n_problems, n_samples=n_samples)

    def ingest_progress(stage: str, i: int, n: int) -> None:
        if progress is not None:
            progress(f"writing {stage}", 1 + i, 5)

    store.ingest(
        data,
        name=name,
        source_format="simulator",
        content_sha256=sha,
        source_path=None,
        replace=replace,
        iid=True,
        simulated=True,
        grader="simulator ground truth",
        notes=notes,
        meta=meta,
        progress=ingest_progress,
    )
