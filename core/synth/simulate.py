"""Synthetic benchmark with exactly known likelihood ratios (SIMULATED data).

The benchmark mirrors the paper's setup (5 LLMs x 7 verifiers, 500 problems, 64 samples per
problem by default) with every parameter fitted to real public files in ``../shared/data`` by
:mod:`core.synth.sim_fit` and stored, with its provenance, in ``data/sim_params.json``. Nothing it
produces is real: problems, answers and scores are drawn from the model below, every LLM and
verifier name starts with ``sim-``, every problem text starts with ``[SIMULATED]`` and every
frame carries ``attrs["simulated"] = True``.

Generative model (one problem p, one LLM l, one verifier v):

* Problem: a latent difficulty ``u_p ~ N(0, 1)`` shared by all LLMs (higher = easier); the
  MATH level is an ordinal cut of ``-lambda * u_p + sqrt(1 - lambda^2) * eps_p`` with cut
  points giving the real MATH500 level frequencies; the subject is drawn from the real subject
  frequencies, independently of difficulty; the gold answer is a random integer string.
* Per-problem accuracy (Gaussian copula): ``z = sqrt(rho) u_p + sqrt(1 - rho) e_lp`` and
  ``q_lp = F_l^{-1}(Phi(z))`` with ``F_l`` the LLM's Beta(a_l, b_l) distribution, so the marginal
  of ``q_lp`` is exactly Beta(a_l, b_l) and problems are hard for all LLMs alike. ``true_q``
  returns ``q_lp``. Each sample is correct independently with probability ``q_lp``.
* Wrong answers: the wrong samples of (l, p), in sampling order, follow a Chinese restaurant
  process with Pitman-Yor discount ``d_l`` and concentration ``alpha_l``: the next wrong sample
  opens a new wrong answer with probability ``(alpha + d K) / (alpha + n)`` and otherwise repeats
  existing wrong answer ``k`` with probability ``(n_k - d) / (alpha + n)`` (n wrong samples so
  far, K distinct). This is the exact Pitman-Yor predictive rule, so popular wrong answers
  repeat often, as they do in real samples. The k-th distinct wrong answer of a problem is the
  same string for every LLM (LLMs share their first, usually most popular, mistakes).
* Verifier scores: with ``x = logit(score)``, ``x | correct ~ G1_v`` and
  ``x | incorrect ~ G0_lv``, both Gaussian mixtures (1 or 2 components, chosen by BIC in the fit).
  ``G0_lv`` is the verifier's fitted incorrect-class mixture moved by the LLM effect
  ``(shift, scale)``: each component mean ``mu -> m + scale (mu - m) + shift * S`` and each sd
  ``sd -> scale * sd`` (``m``, ``S``: mean and sd of the base mixture). Scores depend on nothing
  but correctness, so the paper's conditional-independence assumption holds exactly, and
  ``log f1(s) / f0(s) = log G1(logit s) - log G0(logit s)`` exactly (the Jacobian
  ``1 / (s (1 - s))`` of the logit map is common to both densities and cancels in the ratio).
  ``x`` is clipped to [-30, 30] before the sigmoid (probability below 1e-40 under the fitted
  parameters) so that every score is strictly inside (0, 1).
* Step scores: PRM-type verifiers give each response a list of 3 to 8 step scores whose logits
  form a non-increasing path ending at ``x`` (increments ``|N(0, tau_v)|``), so both the
  ``last`` and the ``min`` reduction recover the score exactly; ``mean``, ``prod`` and ``max``
  give other, noisier signals whose likelihood ratio is not known in closed form. ORM-type
  verifiers have no steps: their list is ``[score]``.
* Token counts: ``log n_tokens | correctness`` is normal with the LLM's fitted per-class mean and
  sd (a second conditionally independent signal), rounded, at least 1.

``problem_effect_sd > 0`` (off by default) deliberately breaks conditional independence: a
random effect ``b_pv ~ N(0, problem_effect_sd^2)``, shared by all responses of problem p scored
by verifier v, is added to ``x``. It is independent of correctness, so the marginal class
densities are the mixtures with every component variance increased by ``problem_effect_sd^2``
and :meth:`SimulatedBenchmark.true_log_lr` stays exact for the pooled scores.

The ``step_scores`` column is a pandas ``ArrowDtype(list<double>)`` column built from one flat
float array plus offsets (``pyarrow.ListArray.from_arrays``): no Python object per row, and
``series.iloc[i]`` gives a plain ``list[float]``. DuckDB reads it as ``DOUBLE[]``.

Randomness: every component draws from its own stream ``SeedSequence(seed, spawn_key=crc32 of
its names)``, so the result is a pure function of the arguments, and a pair's scores do not
change when other LLMs or verifiers are added to or removed from the run.
"""

from __future__ import annotations

import json
import math
import os
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
from scipy import special

from core.methods.posterior import mixture_logpdf
from core.types import BoolArray, FloatArray, IntArray, TTSLabError

SCHEMA_VERSION: Final = 1
DEFAULT_PARAMS_PATH: Final = Path(__file__).resolve().parents[2] / "data" / "sim_params.json"
SIMULATED_TAG: Final = "[SIMULATED]"
DATASET_LABEL: Final = "Simulated benchmark (synthetic data, not real LLM outputs)"
LOGIT_CLIP: Final = 30.0
MIN_STEPS: Final = 3
MAX_STEPS: Final = 8
VERIFIER_KINDS: Final = ("prm", "orm")

__all__ = [
    "DATASET_LABEL",
    "DEFAULT_PARAMS_PATH",
    "SCHEMA_VERSION",
    "SIMULATED_TAG",
    "GaussianMixture",
    "LLMParams",
    "SimParams",
    "SimParamsError",
    "SimulatedBenchmark",
    "VerifierParams",
    "crp_expected_distinct",
    "load_params",
    "shared_data_dir",
    "simulate",
]


class SimParamsError(TTSLabError):
    """The simulator parameters are missing, malformed or inconsistent."""


def shared_data_dir() -> Path:
    """The read-only real-data folder: ``$TTSLAB_SHARED_DATA`` or ``<repo>/../shared/data``."""
    env = os.environ.get("TTSLAB_SHARED_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"


# --------------------------------------------------------------------------------------------
# parameter objects
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GaussianMixture:
    """A 1-D Gaussian mixture (used for logit-scores)."""

    weights: tuple[float, ...]
    means: tuple[float, ...]
    sds: tuple[float, ...]

    def __post_init__(self) -> None:
        k = len(self.weights)
        if k == 0 or len(self.means) != k or len(self.sds) != k:
            raise SimParamsError("mixture needs equally many (>= 1) weights, means and sds")
        if any(w < 0 for w in self.weights) or not math.isclose(
            sum(self.weights), 1.0, abs_tol=1e-6
        ):
            raise SimParamsError(f"mixture weights must be >= 0 and sum to 1: {self.weights}")
        if any(not (s > 0 and math.isfinite(s)) for s in self.sds):
            raise SimParamsError(f"mixture sds must be positive and finite: {self.sds}")
        if any(not math.isfinite(m) for m in self.means):
            raise SimParamsError(f"mixture means must be finite: {self.means}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> GaussianMixture:
        w = tuple(float(v) for v in d["weights"])
        total = sum(w)
        return cls(
            weights=tuple(v / total for v in w),
            means=tuple(float(v) for v in d["means"]),
            sds=tuple(float(v) for v in d["sds"]),
        )

    def to_dict(self) -> dict[str, list[float]]:
        return {"weights": list(self.weights), "means": list(self.means), "sds": list(self.sds)}

    @property
    def mean(self) -> float:
        return float(np.dot(self.weights, self.means))

    @property
    def sd(self) -> float:
        w, mu, sd = (np.asarray(v, dtype=np.float64) for v in (self.weights, self.means, self.sds))
        second = float(np.dot(w, sd**2 + mu**2))
        return math.sqrt(max(second - self.mean**2, 0.0))

    def logpdf(self, x: npt.ArrayLike) -> FloatArray:
        """Log density at ``x`` (any shape)."""
        return mixture_logpdf(self.to_dict(), x)

    def cdf(self, x: npt.ArrayLike) -> FloatArray:
        xa = np.asarray(x, dtype=np.float64)[..., None]
        w = np.asarray(self.weights, dtype=np.float64)
        mu = np.asarray(self.means, dtype=np.float64)
        sd = np.asarray(self.sds, dtype=np.float64)
        out: FloatArray = np.sum(w * special.ndtr((xa - mu) / sd), axis=-1)
        return out

    def sample(self, rng: np.random.Generator, n: int) -> FloatArray:
        cum = np.cumsum(self.weights)
        comp = np.minimum(np.searchsorted(cum, rng.random(n), side="right"), len(cum) - 1)
        mu = np.asarray(self.means, dtype=np.float64)[comp]
        sd = np.asarray(self.sds, dtype=np.float64)[comp]
        out: FloatArray = mu + sd * rng.standard_normal(n)
        return out

    def affine(self, shift_sd: float, scale: float) -> GaussianMixture:
        """Move by ``shift_sd`` mixture sds and scale the spread about the mixture mean."""
        m, s = self.mean, self.sd
        return GaussianMixture(
            weights=self.weights,
            means=tuple(m + scale * (mu - m) + shift_sd * s for mu in self.means),
            sds=tuple(scale * sd for sd in self.sds),
        )

    def widen(self, extra_sd: float) -> GaussianMixture:
        """Convolution with N(0, extra_sd^2)."""
        if extra_sd == 0:
            return self
        return GaussianMixture(
            weights=self.weights,
            means=self.means,
            sds=tuple(math.sqrt(sd**2 + extra_sd**2) for sd in self.sds),
        )


@dataclass(frozen=True)
class LLMParams:
    """One simulated LLM. ``mirrors`` names the real data its parameters were fitted to."""

    name: str
    mirrors: str
    beta_a: float
    beta_b: float
    py_discount: float
    py_concentration: float
    log_tokens_correct: tuple[float, float]
    log_tokens_incorrect: tuple[float, float]

    def __post_init__(self) -> None:
        if not (self.beta_a > 0 and self.beta_b > 0):
            raise SimParamsError(f"{self.name}: Beta parameters must be positive")
        if not 0 <= self.py_discount < 1:
            raise SimParamsError(f"{self.name}: Pitman-Yor discount must be in [0, 1)")
        if not self.py_concentration > -self.py_discount:
            raise SimParamsError(f"{self.name}: Pitman-Yor concentration must exceed -discount")
        for mu_sd in (self.log_tokens_correct, self.log_tokens_incorrect):
            if len(mu_sd) != 2 or not mu_sd[1] > 0:
                raise SimParamsError(f"{self.name}: token lognormal needs (mu, sd > 0)")

    @property
    def mean_accuracy(self) -> float:
        return self.beta_a / (self.beta_a + self.beta_b)


@dataclass(frozen=True)
class VerifierParams:
    """One simulated verifier: base class-conditional logit-score mixtures and LLM effects."""

    name: str
    kind: str
    mirrors: str
    correct: GaussianMixture
    incorrect: GaussianMixture
    llm_effects: Mapping[str, tuple[float, float]]
    step_length_probs: tuple[float, ...] = ()
    step_drift_scale: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in VERIFIER_KINDS:
            raise SimParamsError(f"{self.name}: kind must be one of {VERIFIER_KINDS}")
        if self.kind == "prm":
            n = MAX_STEPS - MIN_STEPS + 1
            p = self.step_length_probs
            if len(p) != n or any(v < 0 for v in p) or not math.isclose(sum(p), 1, abs_tol=1e-6):
                raise SimParamsError(f"{self.name}: need {n} step-length probabilities")
            if not self.step_drift_scale >= 0:
                raise SimParamsError(f"{self.name}: step drift scale must be >= 0")
        for llm, (_shift, scale) in self.llm_effects.items():
            if not scale > 0:
                raise SimParamsError(f"{self.name}: LLM effect scale for {llm} must be > 0")


@dataclass(frozen=True)
class SimParams:
    """All simulator parameters (see ``data/sim_params.json`` for their provenance)."""

    llms: Mapping[str, LLMParams]
    verifiers: Mapping[str, VerifierParams]
    difficulty_rho: float
    level_loading: float
    level_probs: tuple[float, ...]
    subjects: tuple[str, ...]
    subject_probs: tuple[float, ...]
    schema_version: int = SCHEMA_VERSION
    source: str = "<dict>"
    document: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.llms or not self.verifiers:
            raise SimParamsError("need at least one LLM and one verifier")
        if not 0 <= self.difficulty_rho < 1:
            raise SimParamsError("difficulty_rho must be in [0, 1)")
        if not -1 < self.level_loading < 1:
            raise SimParamsError("level_loading must be in (-1, 1)")
        if len(self.level_probs) != 5 or not math.isclose(sum(self.level_probs), 1, abs_tol=1e-6):
            raise SimParamsError("level_probs must be 5 probabilities (levels 1-5)")
        if len(self.subjects) != len(self.subject_probs) or not self.subjects:
            raise SimParamsError("subjects and subject_probs must have equal, non-zero length")
        if not math.isclose(sum(self.subject_probs), 1, abs_tol=1e-6):
            raise SimParamsError("subject_probs must sum to 1")
        for v in self.verifiers.values():
            missing = set(self.llms) - set(v.llm_effects)
            if missing:
                raise SimParamsError(f"{v.name}: no LLM effect for {sorted(missing)}")

    @property
    def llm_names(self) -> tuple[str, ...]:
        return tuple(self.llms)

    @property
    def verifier_names(self) -> tuple[str, ...]:
        return tuple(self.verifiers)

    def pair_mixtures(
        self, llm: str, verifier: str, problem_effect_sd: float = 0.0
    ) -> tuple[GaussianMixture, GaussianMixture]:
        """(correct, incorrect) logit-score mixtures of one (LLM, verifier) pair."""
        if llm not in self.llms:
            raise KeyError(f"unknown simulated LLM {llm!r}; known: {list(self.llms)}")
        if verifier not in self.verifiers:
            raise KeyError(
                f"unknown simulated verifier {verifier!r}; known: {list(self.verifiers)}"
            )
        v = self.verifiers[verifier]
        shift, scale = v.llm_effects[llm]
        g1 = v.correct.widen(problem_effect_sd)
        g0 = v.incorrect.affine(shift, scale).widen(problem_effect_sd)
        return g1, g0

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], source: str = "<dict>") -> SimParams:
        """Build from the JSON document written by :func:`core.synth.sim_fit.main`."""
        try:
            if doc.get("simulated") is not True:
                raise SimParamsError('parameter file must say "simulated": true')
            version = int(doc["schema_version"])
            if version != SCHEMA_VERSION:
                raise SimParamsError(f"schema_version {version} != supported {SCHEMA_VERSION}")
            llms: dict[str, LLMParams] = {}
            for name, d in doc["llms"].items():
                tok = d["tokens"]
                llms[name] = LLMParams(
                    name=name,
                    mirrors=str(d["mirrors"]),
                    beta_a=float(d["accuracy"]["beta_a"]),
                    beta_b=float(d["accuracy"]["beta_b"]),
                    py_discount=float(d["wrong_answers"]["discount"]),
                    py_concentration=float(d["wrong_answers"]["concentration"]),
                    log_tokens_correct=(float(tok["correct"]["mu"]), float(tok["correct"]["sd"])),
                    log_tokens_incorrect=(
                        float(tok["incorrect"]["mu"]),
                        float(tok["incorrect"]["sd"]),
                    ),
                )
            verifiers: dict[str, VerifierParams] = {}
            for name, d in doc["verifiers"].items():
                sm = d["score_model"]
                steps = d.get("steps") or {}
                verifiers[name] = VerifierParams(
                    name=name,
                    kind=str(d["kind"]),
                    mirrors=str(d["mirrors"]),
                    correct=GaussianMixture.from_dict(sm["correct"]),
                    incorrect=GaussianMixture.from_dict(sm["incorrect"]),
                    llm_effects={
                        llm: (float(e["shift_sd"]), float(e["scale"]))
                        for llm, e in d["llm_effects"]["effects"].items()
                    },
                    step_length_probs=_normalised(steps.get("length_probs", [])),
                    step_drift_scale=float(steps.get("drift_scale", 0.0)),
                )
            prob = doc["problems"]
            return cls(
                llms=llms,
                verifiers=verifiers,
                difficulty_rho=float(prob["difficulty_copula"]["rho"]),
                level_loading=float(prob["level"]["loading"]),
                level_probs=_normalised(prob["level"]["probs"]),
                subjects=tuple(str(s) for s in prob["subject"]["names"]),
                subject_probs=_normalised(prob["subject"]["probs"]),
                schema_version=version,
                source=source,
                document=doc,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SimParamsError(f"malformed simulator parameters ({source}): {exc!r}") from exc


def _normalised(values: Sequence[Any]) -> tuple[float, ...]:
    """Probabilities as stored (rounded to 6 significant digits), renormalised to sum 1."""
    v = [float(x) for x in values]
    total = sum(v)
    if v and not (total > 0 and math.isclose(total, 1.0, abs_tol=1e-3)):
        raise SimParamsError(f"probabilities must sum to 1, got {total}")
    return tuple(x / total for x in v)


def load_params(path: Path | str | None = None) -> SimParams:
    """Read ``data/sim_params.json`` (or ``path``)."""
    p = Path(path) if path is not None else DEFAULT_PARAMS_PATH
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise SimParamsError(f"{p} not found: run `python -m core.synth.sim_fit`") from exc
    except json.JSONDecodeError as exc:
        raise SimParamsError(f"{p} is not valid JSON: {exc}") from exc
    return SimParams.from_dict(doc, source=str(p))


# --------------------------------------------------------------------------------------------
# the benchmark
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SimulatedBenchmark:
    """A simulated benchmark: frames in the canonical schema plus the exact ground truth.

    ``true_accuracy`` holds the true per-problem P(correct) (rows: problem_id, columns: llm)
    and ``difficulty`` the latent problem difficulty ``u_p`` (higher = easier).
    """

    problems: pd.DataFrame
    responses: pd.DataFrame
    scores: pd.DataFrame
    params: SimParams
    seed: int
    true_accuracy: pd.DataFrame = field(repr=False)
    difficulty: pd.Series = field(repr=False)
    n_samples: int = 64
    problem_effect_sd: float = 0.0
    label: str = DATASET_LABEL

    @property
    def llms(self) -> tuple[str, ...]:
        return tuple(str(c) for c in self.true_accuracy.columns)

    @property
    def verifiers(self) -> tuple[str, ...]:
        return tuple(pd.unique(self.scores["verifier"]).tolist())

    def true_log_lr(self, llm: str, verifier: str, s: npt.ArrayLike) -> FloatArray:
        """Exact ``log f1(s) / f0(s)`` of the pair's score densities, ``s`` in (0, 1).

        Both densities are of ``x = logit(s)`` pushed through the sigmoid, so the Jacobian
        cancels and the ratio equals ``log G1(x) - log G0(x)``.
        """
        sa = np.asarray(s, dtype=np.float64)
        if np.any((sa <= 0) | (sa >= 1)):
            raise ValueError("scores must lie strictly inside (0, 1)")
        if llm not in self.llms:
            raise KeyError(f"{llm!r} is not in this benchmark: {list(self.llms)}")
        g1, g0 = self.params.pair_mixtures(llm, verifier, self.problem_effect_sd)
        x = special.logit(sa)
        out: FloatArray = g1.logpdf(x) - g0.logpdf(x)
        return out

    def true_q(self, llm: str) -> pd.Series:
        """True per-problem probability that ``llm`` answers correctly, indexed by problem_id."""
        if llm not in self.true_accuracy.columns:
            raise KeyError(f"{llm!r} is not in this benchmark: {list(self.llms)}")
        return self.true_accuracy[llm].rename("q")

    def to_long_frame(self) -> pd.DataFrame:
        """One row per (llm, verifier, problem, sample) with response and problem fields."""
        s, r, p = self.scores, self.responses, self.problems
        llm_cat = pd.CategoricalDtype(list(self.llms))
        pid_cat = pd.CategoricalDtype(p["problem_id"].tolist())
        n = self.n_samples
        n_prob = len(p)
        s_llm = s["llm"].astype(llm_cat).cat.codes.to_numpy(np.int64)
        s_pid = s["problem_id"].astype(pid_cat).cat.codes.to_numpy(np.int64)
        s_idx = s["sample_idx"].to_numpy(np.int64)
        r_pos = (s_llm * n_prob + s_pid) * n + s_idx
        # the responses frame is laid out (llm, problem, sample): check before relying on it
        r_llm = r["llm"].astype(llm_cat).cat.codes.to_numpy(np.int64)
        r_pid = r["problem_id"].astype(pid_cat).cat.codes.to_numpy(np.int64)
        r_key = (r_llm * n_prob + r_pid) * n + r["sample_idx"].to_numpy(np.int64)
        if not np.array_equal(r_key, np.arange(len(r))) or np.any(s_llm < 0) or np.any(s_pid < 0):
            raise SimParamsError("responses frame is not in simulator layout")

        def take(col: pd.Series, pos: IntArray) -> pd.Series:
            return col.take(pos).reset_index(drop=True)

        s_rows = s.reset_index(drop=True)
        out = pd.DataFrame(
            {
                "problem_id": s_rows["problem_id"],
                "sample_idx": s_rows["sample_idx"],
                "llm": s_rows["llm"],
                "verifier": s_rows["verifier"],
                "answer": take(r["answer_raw"], r_pos),
                "answer_key": take(r["answer_key"], r_pos),
                "is_correct": take(r["is_correct"], r_pos),
                "gold_answer": take(p["gold_answer"], s_pid),
                "score": s_rows["score"],
                "step_scores": s_rows["step_scores"],
                "n_tokens": take(r["n_tokens"], r_pos),
                "level": take(p["level"], s_pid),
                "subject": take(p["subject"], s_pid),
                "problem_text": take(p["text"], s_pid),
            }
        )
        out.attrs.update(_attrs(self.seed))
        return out


# --------------------------------------------------------------------------------------------
# simulation
# --------------------------------------------------------------------------------------------


def _rng(seed: int, *keys: str) -> np.random.Generator:
    spawn_key = tuple(zlib.crc32(k.encode("utf-8")) for k in keys)
    return np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=spawn_key))


def _attrs(seed: int) -> dict[str, Any]:
    return {"simulated": True, "label": DATASET_LABEL, "seed": seed}


def crp_expected_distinct(n_max: int, discount: float, concentration: float) -> FloatArray:
    """``E[K_n]``, expected distinct values among n Pitman-Yor draws, for n = 0..n_max.

    Exact recursion: a new value appears at draw n+1 with probability
    ``(alpha + d K_n) / (alpha + n)``, which is linear in ``K_n``.
    """
    out = np.zeros(n_max + 1, dtype=np.float64)
    if n_max >= 1:
        out[1] = 1.0
    for n in range(1, n_max):
        out[n + 1] = out[n] + (concentration + discount * out[n]) / (concentration + n)
    return out


def _crp_tables(
    rng: np.random.Generator, wrong: BoolArray, discount: float, concentration: float
) -> IntArray:
    """Pitman-Yor CRP over the wrong samples of each row (row = problem), in sample order.

    Returns the 0-based index of each wrong sample's distinct wrong answer (order of first
    appearance) and -1 where the sample is not wrong.
    """
    n_rows, n = wrong.shape
    counts = np.zeros((n_rows, n), dtype=np.float64)
    n_tables = np.zeros(n_rows, dtype=np.int64)
    n_wrong = np.zeros(n_rows, dtype=np.int64)
    out = np.full((n_rows, n), -1, dtype=np.int64)
    u = rng.random((n_rows, n))
    for j in range(n):
        rows = np.flatnonzero(wrong[:, j])
        if rows.size == 0:
            continue
        width = int(n_tables[rows].max()) + 1  # tables beyond this are all empty
        c = counts[rows, :width]
        weights = np.where(c > 0, c - discount, 0.0)
        cum = np.cumsum(weights, axis=1)
        nw = n_wrong[rows]
        total = np.where(nw > 0, concentration + nw, 1.0)
        target = u[rows, j] * total
        hit = cum > target[:, None]
        existing = hit.any(axis=1)
        table = np.where(existing, np.argmax(hit, axis=1), n_tables[rows])
        counts[rows, table] += 1.0
        n_tables[rows] += ~existing
        n_wrong[rows] += 1
        out[rows, j] = table
    return out


def _step_paths(
    rng: np.random.Generator, x: FloatArray, length_probs: Sequence[float], drift: float
) -> tuple[FloatArray, IntArray]:
    """Non-increasing logit step paths ending at ``x``: (flat logits, lengths)."""
    n = x.size
    lengths = MIN_STEPS + rng.choice(len(length_probs), size=n, p=np.asarray(length_probs))
    ends = np.cumsum(lengths)
    total = int(ends[-1]) if n else 0
    inc = np.abs(rng.normal(0.0, drift, size=total)) if drift > 0 else np.zeros(total)
    inc[ends - 1] = 0.0
    csum = np.cumsum(inc)
    row = np.repeat(np.arange(n), lengths)
    # suffix sum of increments from position i to the row's last position
    suffix = csum[ends[row] - 1] - csum + inc
    flat = np.minimum(x[row] + suffix, LOGIT_CLIP)
    flat[ends - 1] = x  # exact: the last step is the score itself
    return flat, lengths.astype(np.int64)


def _list_column(flat: FloatArray, lengths: IntArray) -> pd.Series:
    offsets = np.zeros(lengths.size + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    if offsets[-1] < np.iinfo(np.int32).max:
        arr: pa.Array = pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(flat))
    else:
        arr = pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(flat))
    return pd.Series(pd.arrays.ArrowExtensionArray(arr), name="step_scores")


def _str_col(values: npt.NDArray[Any]) -> pd.Series:
    return pd.Series(values, dtype="str")


def _str_take(values: Sequence[str] | npt.NDArray[Any], idx: IntArray) -> pd.Series:
    """``values[idx]`` as a pandas ``str`` column, gathered in Arrow (no Python objects)."""
    small = pa.array([str(v) for v in values], type=pa.large_string())
    out: pd.Series = small.take(pa.array(np.asarray(idx, dtype=np.int64))).to_pandas()
    return out.astype("str")


def _problem_id_width(n_problems: int) -> int:
    return max(4, len(str(n_problems - 1)))


def simulate(
    seed: int = 0,
    n_problems: int = 500,
    n_samples: int = 64,
    llms: Sequence[str] | None = None,
    verifiers: Sequence[str] | None = None,
    params: SimParams | None = None,
    *,
    problem_effect_sd: float = 0.0,
) -> SimulatedBenchmark:
    """Draw a simulated benchmark (deterministic given the arguments).

    ``llms`` / ``verifiers`` select (and order) a subset of the parameter file's names;
    ``problem_effect_sd > 0`` breaks conditional independence on purpose (see module doc).
    """
    prm = params if params is not None else load_params()
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError("seed must be a non-negative int")
    if n_problems < 1 or n_samples < 1:
        raise ValueError("n_problems and n_samples must be >= 1")
    if not (problem_effect_sd >= 0 and math.isfinite(problem_effect_sd)):
        raise ValueError("problem_effect_sd must be finite and >= 0")
    llm_names = list(prm.llm_names if llms is None else llms)
    ver_names = list(prm.verifier_names if verifiers is None else verifiers)
    for kind, names, known in (
        ("LLM", llm_names, prm.llms),
        ("verifier", ver_names, prm.verifiers),
    ):
        if not names:
            raise ValueError(f"need at least one {kind}")
        unknown = [x for x in names if x not in known]
        if unknown or len(set(names)) != len(names):
            raise ValueError(f"unknown or repeated {kind} names {names}; known: {list(known)}")
    seed = int(seed)
    n_p, n_s = int(n_problems), int(n_samples)

    # ---- problems
    rng = _rng(seed, "problems")
    u = rng.standard_normal(n_p)
    lam = prm.level_loading
    lstar = -lam * u + math.sqrt(1.0 - lam**2) * rng.standard_normal(n_p)
    cuts = special.ndtri(np.cumsum(prm.level_probs)[:-1])
    level = (1 + np.searchsorted(cuts, lstar)).astype(np.int64)
    subj_idx = rng.choice(len(prm.subjects), size=n_p, p=np.asarray(prm.subject_probs))
    subject = np.asarray(prm.subjects, dtype=object)[subj_idx]
    gold = rng.integers(10, 1000, size=n_p)
    cand = np.concatenate([np.arange(-2 * n_s, 0), np.arange(1, 2 * n_s + 1)])
    order = np.argsort(rng.random((n_p, cand.size)), axis=1)[:, :n_s]
    pool = np.concatenate([gold[:, None], gold[:, None] + cand[order]], axis=1).astype(str)
    width = _problem_id_width(n_p)
    pids = np.array([f"sim-{i:0{width}d}" for i in range(n_p)], dtype=object)
    gold_str = pool[:, 0].astype(object)
    text = np.array(
        [
            f"{SIMULATED_TAG} synthetic problem {pid} ({sj}, level {lv}): no real text"
            for pid, sj, lv in zip(pids, subject, level, strict=True)
        ],
        dtype=object,
    )
    problems = pd.DataFrame(
        {
            "problem_id": _str_col(pids),
            "gold_answer": _str_col(gold_str),
            "level": level,
            "subject": _str_col(subject),
            "text": _str_col(text),
        }
    )
    problems.attrs.update(_attrs(seed))

    # ---- responses
    rho = prm.difficulty_rho
    q_cols: dict[str, FloatArray] = {}
    correct_by_llm: dict[str, BoolArray] = {}
    resp_parts: list[dict[str, Any]] = []
    for name in llm_names:
        lp = prm.llms[name]
        rng = _rng(seed, "llm", name)
        z = math.sqrt(rho) * u + math.sqrt(1.0 - rho) * rng.standard_normal(n_p)
        q = np.clip(special.betaincinv(lp.beta_a, lp.beta_b, special.ndtr(z)), 0.0, 1.0)
        correct = rng.random((n_p, n_s)) < q[:, None]
        tables = _crp_tables(rng, ~correct, lp.py_discount, lp.py_concentration)
        answer = np.arange(n_p)[:, None] * (n_s + 1) + np.where(correct, 0, tables + 1)
        mu = np.where(correct, lp.log_tokens_correct[0], lp.log_tokens_incorrect[0])
        sd = np.where(correct, lp.log_tokens_correct[1], lp.log_tokens_incorrect[1])
        tokens = np.maximum(1, np.rint(np.exp(mu + sd * rng.standard_normal((n_p, n_s)))))
        q_cols[name] = q
        correct_by_llm[name] = correct.ravel()
        resp_parts.append(
            {
                "answer": answer.ravel(),
                "correct": correct.ravel(),
                "tokens": tokens.ravel().astype(np.int64),
            }
        )
    n_l = len(llm_names)
    rows_per_llm = n_p * n_s
    answers = _str_take(pool.ravel(), np.concatenate([r["answer"] for r in resp_parts]))
    prob_idx = np.repeat(np.arange(n_p), n_s)
    responses = pd.DataFrame(
        {
            "llm": _str_take(llm_names, np.repeat(np.arange(n_l), rows_per_llm)),
            "problem_id": _str_take(pids, np.tile(prob_idx, n_l)),
            "sample_idx": np.tile(np.arange(n_s, dtype=np.int64), n_p * n_l),
            "answer_raw": answers,
            "answer_key": answers.copy(),
            "is_correct": np.concatenate([r["correct"] for r in resp_parts]),
            "n_tokens": np.concatenate([r["tokens"] for r in resp_parts]),
        }
    )
    responses.attrs.update(_attrs(seed))

    # ---- scores
    prob_of_row = prob_idx
    effects: dict[str, FloatArray] = {}
    if problem_effect_sd > 0:
        for v in ver_names:
            effects[v] = _rng(seed, "problem-effect", v).normal(0.0, problem_effect_sd, n_p)
    score_parts: list[FloatArray] = []
    flat_parts: list[FloatArray] = []
    len_parts: list[IntArray] = []
    for name in llm_names:
        c = correct_by_llm[name]
        n_c = int(c.sum())
        for v in ver_names:
            vp = prm.verifiers[v]
            g1, g0 = prm.pair_mixtures(name, v)
            rng = _rng(seed, "score", name, v)
            x = np.empty(rows_per_llm, dtype=np.float64)
            x[c] = g1.sample(rng, n_c)
            x[~c] = g0.sample(rng, rows_per_llm - n_c)
            if v in effects:
                x += effects[v][prob_of_row]
            x = np.clip(x, -LOGIT_CLIP, LOGIT_CLIP)
            score = special.expit(x)
            if vp.kind == "prm":
                path, lengths = _step_paths(rng, x, vp.step_length_probs, vp.step_drift_scale)
                steps = special.expit(path)
                steps[np.cumsum(lengths) - 1] = score
            else:
                steps, lengths = score.copy(), np.ones(rows_per_llm, dtype=np.int64)
            score_parts.append(score)
            flat_parts.append(steps)
            len_parts.append(lengths)
    n_v = len(ver_names)
    scores = pd.DataFrame(
        {
            "llm": _str_take(llm_names, np.repeat(np.arange(n_l), n_v * rows_per_llm)),
            "verifier": _str_take(ver_names, np.tile(np.repeat(np.arange(n_v), rows_per_llm), n_l)),
            "problem_id": _str_take(pids, np.tile(prob_idx, n_l * n_v)),
            "sample_idx": np.tile(np.arange(n_s, dtype=np.int64), n_p * n_l * n_v),
            "score": np.concatenate(score_parts),
        }
    )
    scores["step_scores"] = _list_column(np.concatenate(flat_parts), np.concatenate(len_parts))
    scores.attrs.update(_attrs(seed))

    true_acc = pd.DataFrame(q_cols, index=pd.Index(pids, name="problem_id", dtype="str"))
    difficulty = pd.Series(u, index=true_acc.index, name="difficulty")
    return SimulatedBenchmark(
        problems=problems,
        responses=responses,
        scores=scores,
        params=prm,
        seed=seed,
        true_accuracy=true_acc,
        difficulty=difficulty,
        n_samples=n_s,
        problem_effect_sd=float(problem_effect_sd),
    )
