"""Fit the simulator's parameters to the real public files in ``../shared/data``.

``python -m core.synth.sim_fit`` recomputes every number in ``data/sim_params.json`` from the raw
files and rewrites it; each parameter group records its source files (with the upstream
repository and commit), the statistic that was fitted and the date. Nothing is random except
the level-loading fit, which uses a fixed seed, so re-running reproduces the file.

What is fitted from what (see ``/work/shared/data/SOURCES.md`` for the files):

* LLMs (``boinf/``, the only files with many samples per problem and their answers). Each
  simulated LLM mirrors one real reasoning LLM; to span the accuracy range of the paper's LLMs
  two mirror a model on MATH500 and three mirror a model on AIME 2024 + 2025 (the MATH500 files
  are all 93-95 % accurate). Correctness = normalised answer == normalised gold answer
  (``\\dfrac`` -> ``\\frac``, ``^\\circ`` / ``^{\\circ}`` removed; a missing answer is wrong).
  - per-problem accuracy ~ Beta(a, b): beta-binomial likelihood of the per-problem correct
    counts, with the mean a / (a + b) fixed to the pooled accuracy and the concentration a + b
    maximising the likelihood (so the simulated mean accuracy equals the real one);
  - wrong answers ~ Pitman-Yor(discount d, concentration alpha) by the method of moments on
    two statistics with closed forms: the rate at which two wrong samples of a problem give the
    same answer, E = (1 - d) / (1 + alpha) for any n, and the mean number of distinct wrong
    answers given each problem's number of wrong samples (exact recursion);
  - tokens: lognormal per class (mean and sd of log n_tokens, zeros ignored).
* Shared difficulty (``boinf/`` MATH500: 7 LLMs x 500 problems; AIME 2024 + 2025: 11 LLMs x 60
  problems): the one-factor Gaussian-copula correlation rho whose implied correlations of the
  LLMs' true per-problem accuracies (by quadrature, with each LLM's fitted Beta) best match,
  in least squares over all LLM pairs, the observed correlations corrected for binomial noise.
* Levels and subjects (``problems/math500.jsonl``): level and subject frequencies; the level
  loading lambda on the latent difficulty is chosen (fixed-seed simulation of the 7 MATH500 LLMs)
  so that the Spearman correlation between level and the LLMs' mean observed accuracy matches
  the real MATH500 value.
* Verifiers, per class, a 1- or 2-component Gaussian mixture (EM, chosen by BIC) of
  ``logit(score)``: Math-Shepherd step scores reduced by ``last`` / ``min`` on Qwen2.5-1.5B
  samples (``openr_math500_bon``), the Qwen2.5-Math ORM (``qwen25math_rm_maj``, score =
  sigmoid(pred_score)) and four RewardMATH reward models (``rewardmath``; index 0 = correct,
  the LLM-generated incorrect solutions = incorrect; ORM score = sigmoid(raw)).
* LLM effect on each verifier (``rewardmath``): RewardMATH's incorrect solutions come from
  named LLMs, so for each reward model the mean and sd of the incorrect-class logit-score of one
  source LLM relative to all sources (``shift_sd``, ``scale``) is measured. Each simulated LLM
  is assigned one source LLM (stronger simulated LLMs get stronger sources, whose wrong
  solutions the reward models score higher); verifiers not in RewardMATH (the Qwen ORM) take
  the average over the six RewardMATH ORMs. Only the incorrect class is modulated: RewardMATH
  has one correct solution per problem, not one per LLM.
* Steps of PRM verifiers: the distribution of the number of steps (clipped to 3..8) and the
  drift scale tau with E|increment| = tau sqrt(2/pi) equal to the source PRM's mean absolute
  step-to-step change of logit(step score).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
from scipy import optimize, special, stats

from core.synth.simulate import (
    DEFAULT_PARAMS_PATH,
    MAX_STEPS,
    MIN_STEPS,
    SCHEMA_VERSION,
    crp_expected_distinct,
    shared_data_dir,
)
from core.types import FloatArray, IntArray, TTSLabError

__all__ = ["LLM_SPECS", "VERIFIER_SPECS", "fit_params", "main", "normalise_answer"]

UPSTREAM: Final[Mapping[str, str]] = {
    "boinf": "jkomiyama/BoInf-code-publish @ fbcb0970 : boinf/jsonl/",
    "rewardmath": "kimsh0507/RewardMATH_official @ cde06ab3 : results/RewardMATH/",
    "openr_math500_bon": (
        "mehmetsakiraslan/compute-optimal-tts @ ca363f1a : src/output/MATH_best_of_n/"
    ),
    "qwen25math_rm_maj": "QwenLM/Qwen2.5-Math @ a45202bd : evaluation/data/eval_rm_maj_example/",
    "problems": "PRIME-RL/ImplicitPRM @ c0441755 : eval/testset/MATH500.jsonl",
}
OPENR_DIR: Final = (
    "openr_math500_bon/MATH_best_of_n/Qwen2.5-1.5B-Instruct/math-shepherd-mistral-7b-prm/1_1_1"
)
QWEN_ORM_FILE: Final = "qwen25math_rm_maj/math_cot_100.jsonl"
MATH500_FILE: Final = "problems/math500.jsonl"
BOINF_MATH500_LLMS: Final = (
    "EXAONE-Deep-32B",
    "MetaStone-S1-32B",
    "NVIDIA-Nemotron-Nano-9B-v2",
    "Phi-4-reasoning",
    "Qwen3-14B",
    "Qwen3-30B-A3B-Thinking-2507",
    "gpt-oss-20b",
)
BOINF_AIME_LLMS: Final = (
    "AM-Thinking-v1",
    "Datarus-R1-14B-preview",
    "EXAONE-Deep-32B",
    "LIMO-v2",
    "MetaStone-S1-32B",
    "NVIDIA-Nemotron-Nano-9B-v2",
    "Phi-4-reasoning",
    "Qwen3-14B",
    "Qwen3-30B-A3B-Thinking-2507",
    "Qwen3-4B",
    "gpt-oss-20b",
)
REWARDMATH_ORMS: Final = (
    "ArmoRM",
    "Eurus-RM",
    "grm_llama3",
    "internlm2",
    "oasst-rm",
    "skywork_llama3",
)
#: RewardMATH solution sources that are not samples of an LLM (perturbed reference, missing)
NON_LLM_SOURCES: Final = frozenset({"human_to_GPT-4", "modified_with_GPT-4", ""})
LEVEL_FIT_SEED: Final = 20240917
LEVEL_FIT_PROBLEMS: Final = 20000
PROB_CLIP: Final = 1e-6


class SimFitError(TTSLabError):
    """The real data needed to fit the simulator is missing or malformed."""


@dataclass(frozen=True)
class LLMSpec:
    name: str
    mirrors: str
    files: tuple[str, ...]
    effect_source: str


@dataclass(frozen=True)
class VerifierSpec:
    name: str
    kind: str
    mirrors: str
    data: str  # "openr", "qwen_orm" or a RewardMATH model name
    reduction: str  # "last" / "min" for step scores, "none" for ORMs
    effect_models: tuple[tuple[str, str], ...]  # RewardMATH (model, reduction) for LLM effects


def _aime(llm: str) -> tuple[str, ...]:
    return tuple(f"boinf/analysis_aime{y}_{llm}.jsonl" for y in (2024, 2025))


LLM_SPECS: Final = (
    LLMSpec(
        "sim-llm-A",
        "Qwen3-30B-A3B-Thinking-2507 on MATH500 (BoInf)",
        ("boinf/analysis_math500_Qwen3-30B-A3B-Thinking-2507.jsonl",),
        "google/gemma-2-27b-it",
    ),
    LLMSpec(
        "sim-llm-B",
        "gpt-oss-20b on MATH500 (BoInf)",
        ("boinf/analysis_math500_gpt-oss-20b.jsonl",),
        "meta-llama/Meta-Llama-3-70B-Instruct",
    ),
    LLMSpec(
        "sim-llm-C",
        "NVIDIA-Nemotron-Nano-9B-v2 on AIME 2024+2025 (BoInf)",
        _aime("NVIDIA-Nemotron-Nano-9B-v2"),
        "mistralai/Mixtral-8x7B-Instruct-v0.1",
    ),
    LLMSpec(
        "sim-llm-D",
        "LIMO-v2 on AIME 2024+2025 (BoInf)",
        _aime("LIMO-v2"),
        "meta-llama/Meta-Llama-3-8B-Instruct",
    ),
    LLMSpec(
        "sim-llm-E",
        "Datarus-R1-14B-preview on AIME 2024+2025 (BoInf)",
        _aime("Datarus-R1-14B-preview"),
        "deepseek-ai/DeepSeek-V2-Lite-Chat",
    ),
)

VERIFIER_SPECS: Final = (
    VerifierSpec(
        "sim-shepherd-last",
        "prm",
        "Math-Shepherd PRM (last step) on Qwen2.5-1.5B-Instruct MATH500 samples",
        "openr",
        "last",
        (("Math_Shepherd", "last"),),
    ),
    VerifierSpec(
        "sim-shepherd-min",
        "prm",
        "Math-Shepherd PRM (min over steps) on Qwen2.5-1.5B-Instruct MATH500 samples",
        "openr",
        "min",
        (("Math_Shepherd", "min"),),
    ),
    VerifierSpec(
        "sim-qwen-orm",
        "orm",
        "Qwen2.5-Math ORM on Qwen2.5-Math-Instruct MATH samples",
        "qwen_orm",
        "none",
        tuple((m, "none") for m in REWARDMATH_ORMS),
    ),
    VerifierSpec(
        "sim-internlm2-orm",
        "orm",
        "InternLM2 reward model on RewardMATH",
        "internlm2",
        "none",
        (("internlm2", "none"),),
    ),
    VerifierSpec(
        "sim-grm-orm",
        "orm",
        "GRM-Llama3 reward model on RewardMATH",
        "grm_llama3",
        "none",
        (("grm_llama3", "none"),),
    ),
    VerifierSpec(
        "sim-reasoneval34b-min",
        "prm",
        "ReasonEval-34B (min over steps) on RewardMATH",
        "ReasonEval_34B",
        "min",
        (("ReasonEval_34B", "min"),),
    ),
    VerifierSpec(
        "sim-easy2hard-last",
        "prm",
        "Easy-to-Hard PRM (last step) on RewardMATH",
        "Easy_to_hard",
        "last",
        (("Easy_to_hard", "last"),),
    ),
)


# --------------------------------------------------------------------------------------------
# small numeric helpers
# --------------------------------------------------------------------------------------------


def _r(x: float, digits: int = 6) -> float:
    """Round to ``digits`` significant digits (keeps the JSON readable and stable)."""
    x = float(x)
    if x == 0 or not math.isfinite(x):
        return x
    return float(f"{x:.{digits}g}")


def _logit(p: Iterable[float] | FloatArray) -> FloatArray:
    a = np.clip(np.asarray(list(p) if not isinstance(p, np.ndarray) else p, float), 0, 1)
    out: FloatArray = special.logit(np.clip(a, PROB_CLIP, 1 - PROB_CLIP))
    return out


def _auc(pos: FloatArray, neg: FloatArray) -> float:
    ranks = stats.rankdata(np.concatenate([pos, neg]))
    n1, n0 = pos.size, neg.size
    return float((ranks[:n1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def normalise_answer(ans: str | None) -> str | None:
    """BoInf answer normalisation: ``\\dfrac`` -> ``\\frac``, degree marks removed."""
    if ans is None:
        return None
    return ans.replace("\\dfrac", "\\frac").replace("^{\\circ}", "").replace("^\\circ", "")


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise SimFitError(f"missing real-data file {path}")
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


# --------------------------------------------------------------------------------------------
# LLM accuracy, wrong answers, tokens (BoInf)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BoinfProblem:
    correct: tuple[bool, ...]
    wrong_counts: tuple[int, ...]  # multiplicities of the distinct wrong answers
    tokens: tuple[int, ...]


def _load_boinf(path: Path) -> list[BoinfProblem]:
    key = str(path.resolve())
    if key not in _BOINF_CACHE:
        _BOINF_CACHE[key] = _parse_boinf(path)
    return _BOINF_CACHE[key]


_BOINF_CACHE: dict[str, list[BoinfProblem]] = {}


def _parse_boinf(path: Path) -> list[BoinfProblem]:
    out = []
    for rec in _read_jsonl(path):
        gold = normalise_answer(rec["gold_answer"])
        answers = [(normalise_answer(a), int(t)) for a, t in rec["all_answers"]]
        correct = tuple(a is not None and a == gold for a, _ in answers)
        wrong = Counter(
            "<no answer>" if a is None else a
            for (a, _), c in zip(answers, correct, strict=True)
            if not c
        )
        out.append(
            BoinfProblem(
                correct, tuple(sorted(wrong.values(), reverse=True)), tuple(t for _, t in answers)
            )
        )
    return out


def _counts(problems: Sequence[BoinfProblem]) -> tuple[IntArray, IntArray]:
    k = np.array([sum(p.correct) for p in problems], dtype=np.int64)
    n = np.array([len(p.correct) for p in problems], dtype=np.int64)
    return k, n


def fit_beta_binomial(k: IntArray, n: IntArray) -> tuple[float, float]:
    """Beta(a, b) with a / (a + b) = pooled accuracy and a + b by profile likelihood."""
    m = float(k.sum() / n.sum())
    if not 0 < m < 1:
        raise SimFitError("accuracy of exactly 0 or 1 cannot be fitted by a Beta")

    def nll(log_phi: float) -> float:
        phi = math.exp(log_phi)
        a, b = m * phi, (1 - m) * phi
        return -float(np.sum(special.betaln(k + a, n - k + b) - special.betaln(a, b)))

    res = optimize.minimize_scalar(
        nll, bounds=(math.log(1e-3), math.log(1e4)), method="bounded", options={"xatol": 1e-10}
    )
    phi = math.exp(float(res.x))
    return m * phi, (1 - m) * phi


def _pair_repeat_rates(problems: Sequence[BoinfProblem]) -> FloatArray:
    rates = []
    for p in problems:
        nw = sum(p.wrong_counts)
        if nw >= 2:
            rates.append(sum(c * (c - 1) for c in p.wrong_counts) / (nw * (nw - 1)))
    return np.asarray(rates, dtype=np.float64)


def fit_pitman_yor(problems: Sequence[BoinfProblem]) -> dict[str, Any]:
    """Method of moments: pair repeat rate and mean number of distinct wrong answers."""
    rates = _pair_repeat_rates(problems)
    n_wrong = np.array([sum(p.wrong_counts) for p in problems if p.wrong_counts], dtype=np.int64)
    distinct = np.array([len(p.wrong_counts) for p in problems if p.wrong_counts], dtype=np.float64)
    tops = np.array(
        [p.wrong_counts[0] / sum(p.wrong_counts) for p in problems if sum(p.wrong_counts) >= 2]
    )
    if rates.size < 2:
        raise SimFitError("too few problems with two or more wrong answers")
    c_bar = float(rates.mean())
    k_bar = float(distinct.mean())
    c_eff = min(max(c_bar, 1e-6), 1 - 1e-6)
    n_max = int(n_wrong.max())

    def alpha_of(d: float) -> float:
        return (1 - d) / c_eff - 1

    def gap(d: float) -> float:
        ek = crp_expected_distinct(n_max, d, alpha_of(d))
        return float(ek[n_wrong].mean() - k_bar)

    lo, hi = 0.0, 1 - 1e-6
    if gap(lo) >= 0:
        d, boundary = lo, True
    elif gap(hi) <= 0:
        d, boundary = hi, True
    else:
        d, boundary = float(optimize.brentq(gap, lo, hi, xtol=1e-12)), False
    return {
        "discount": _r(d),
        "concentration": _r(alpha_of(d)),
        "at_boundary": boundary,
        "targets": {
            "pair_repeat_rate": _r(c_bar),
            "pair_repeat_rate_se": _r(float(rates.std(ddof=1) / math.sqrt(rates.size))),
            "mean_distinct_wrong": _r(k_bar),
            "mean_top_wrong_share": _r(float(tops.mean())),
            "mean_top_wrong_share_se": _r(float(tops.std(ddof=1) / math.sqrt(tops.size))),
            "n_problems_with_2plus_wrong": int(rates.size),
        },
    }


def _fit_tokens(problems: Sequence[BoinfProblem]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for label, want in (("correct", True), ("incorrect", False)):
        t = np.array(
            [
                tok
                for p in problems
                for c, tok in zip(p.correct, p.tokens, strict=True)
                if c == want and tok > 0
            ],
            dtype=np.float64,
        )
        lt = np.log(t)
        out[label] = {"mu": _r(float(lt.mean())), "sd": _r(float(lt.std())), "n": int(t.size)}
    return out


# --------------------------------------------------------------------------------------------
# shared difficulty (copula) and levels
# --------------------------------------------------------------------------------------------

_ZGRID: Final = np.linspace(-8.0, 8.0, 1601)
_UGRID: Final = np.linspace(-7.0, 7.0, 281)


def _beta_on_zgrid(a: float, b: float) -> FloatArray:
    out: FloatArray = special.betaincinv(a, b, special.ndtr(_ZGRID))
    return out


def _model_corr(h: FloatArray, rho: float) -> FloatArray:
    """Correlation matrix of true accuracies ``h_l(z_l)`` under a one-factor copula."""
    dz = _ZGRID[1] - _ZGRID[0]
    du = _UGRID[1] - _UGRID[0]
    s = math.sqrt(1 - rho)
    kern = np.exp(-0.5 * ((_ZGRID[None, :] - math.sqrt(rho) * _UGRID[:, None]) / s) ** 2)
    kern *= dz / (s * math.sqrt(2 * math.pi))
    cond = kern @ h  # E[q_l | u], shape (U, L)
    wu = stats.norm.pdf(_UGRID) * du
    wu = wu / wu.sum()
    wz = stats.norm.pdf(_ZGRID) * dz
    wz = wz / wz.sum()
    mean = wz @ h
    var = wz @ (h**2) - mean**2
    cov = (cond * wu[:, None]).T @ cond - np.outer(mean, mean)
    out: FloatArray = cov / np.sqrt(np.outer(var, var))
    return out


def _denoised_corr(k: IntArray, n: IntArray) -> FloatArray:
    """Correlation of true per-problem accuracies, corrected for binomial noise.

    ``k``, ``n``: (L, P). cov(k/n) across LLMs is unbiased for the true covariance; the
    variance is reduced by the mean of ``x (1 - x) / (n - 1)``, unbiased for E[q(1-q)] / n.
    """
    x = k / n
    cov = np.cov(x, ddof=1)
    noise = np.mean(x * (1 - x) / (n - 1), axis=1)
    var = np.diag(cov) - noise
    out: FloatArray = cov / np.sqrt(np.outer(var, var))
    return out


def _fit_rho(groups: Sequence[tuple[FloatArray, FloatArray]]) -> float:
    """Least squares over LLM pairs of (model - denoised) correlations; groups: (h, target)."""

    def loss(rho: float) -> float:
        total = 0.0
        for h, target in groups:
            iu = np.triu_indices(h.shape[1], 1)
            total += float(np.sum((_model_corr(h, rho)[iu] - target[iu]) ** 2))
        return total

    res = optimize.minimize_scalar(
        loss, bounds=(0.0, 0.99), method="bounded", options={"xatol": 1e-7}
    )
    return float(res.x)


def _fit_level_loading(
    betas: Sequence[tuple[float, float]],
    n_samples: int,
    rho: float,
    level_probs: FloatArray,
    target: float,
) -> float:
    """Level loading lambda matching Spearman(level, mean observed accuracy) by simulation."""
    rng = np.random.default_rng(LEVEL_FIT_SEED)
    n_p = LEVEL_FIT_PROBLEMS
    u = rng.standard_normal(n_p)
    eps = rng.standard_normal(n_p)
    acc = np.zeros(n_p)
    for a, b in betas:
        z = math.sqrt(rho) * u + math.sqrt(1 - rho) * rng.standard_normal(n_p)
        q = special.betaincinv(a, b, special.ndtr(z))
        acc += rng.binomial(n_samples, q) / n_samples
    acc_rank = stats.rankdata(acc)
    cuts = special.ndtri(np.cumsum(level_probs)[:-1])
    grid = np.linspace(0.0, 0.98, 99)
    rhos = []
    for lam in grid:
        lvl = np.searchsorted(cuts, -lam * u + math.sqrt(1 - lam**2) * eps)
        rhos.append(float(np.corrcoef(acc_rank, stats.rankdata(lvl))[0, 1]))
    curve = np.asarray(rhos)  # decreasing in lambda
    if target >= curve[0]:
        return 0.0
    if target <= curve[-1]:
        return float(grid[-1])
    return float(np.interp(target, curve[::-1], grid[::-1]))


# --------------------------------------------------------------------------------------------
# verifier score models
# --------------------------------------------------------------------------------------------


def fit_gmm(
    x: FloatArray, k: int, max_iter: int = 5000, tol: float = 1e-6
) -> tuple[dict[str, list[float]], float]:
    """1-D Gaussian mixture MLE by EM (deterministic quantile start); returns (params, loglik).

    EM stops when the log-likelihood gains less than ``tol`` per observation.
    """
    x = np.sort(np.asarray(x, dtype=np.float64))
    n = x.size
    sd_floor = 0.05 * float(x.std()) + 1e-3
    half_log_2pi = 0.5 * math.log(2 * math.pi)
    if k == 1:
        mu, sd, w = np.array([x.mean()]), np.array([max(float(x.std()), sd_floor)]), np.ones(1)
        ll = float(np.sum(-0.5 * ((x - mu[0]) / sd[0]) ** 2 - math.log(sd[0]) - half_log_2pi))
    else:
        parts = np.array_split(x, k)
        mu = np.array([p.mean() for p in parts])
        sd = np.array([max(float(p.std()), sd_floor) for p in parts])
        w = np.full(k, 1.0 / k)
        ll_old = -np.inf
        xc = x[:, None]
        for _ in range(max_iter):
            logp = np.log(w) - 0.5 * ((xc - mu) / sd) ** 2 - np.log(sd) - half_log_2pi
            top = logp.max(axis=1, keepdims=True)
            resp = np.exp(logp - top)
            norm = resp.sum(axis=1, keepdims=True)
            ll = float(np.sum(top[:, 0] + np.log(norm[:, 0])))
            resp /= norm
            nk = resp.sum(axis=0)
            w = nk / n
            mu = (resp * xc).sum(axis=0) / nk
            sd = np.maximum(np.sqrt((resp * (xc - mu) ** 2).sum(axis=0) / nk), sd_floor)
            if ll - ll_old < tol * n:
                break
            ll_old = ll
        mu, sd, w, ll = _polish_gmm(x, mu, sd, w, sd_floor)
    order = np.argsort(mu)
    return (
        {
            "weights": [_r(v) for v in w[order]],
            "means": [_r(v) for v in mu[order]],
            "sds": [_r(v) for v in sd[order]],
        },
        ll,
    )


def _polish_gmm(
    x: FloatArray, mu: FloatArray, sd: FloatArray, w: FloatArray, sd_floor: float
) -> tuple[FloatArray, FloatArray, FloatArray, float]:
    """Finish an EM run with BFGS (analytic gradient): EM crawls along the flat ridges of
    overlapping mixtures, quasi-Newton gets to the maximum. Parameters: means,
    ``log(sd - sd_floor)`` and weight logits relative to component 0."""
    k = mu.size
    xc = x[:, None]
    half_log_2pi = 0.5 * math.log(2 * math.pi)

    def unpack(theta: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        logits = np.concatenate([[0.0], theta[2 * k :]])
        ww = np.exp(logits - logits.max())
        return theta[:k], sd_floor + np.exp(theta[k : 2 * k]), ww / ww.sum()

    def nll_grad(theta: FloatArray) -> tuple[float, FloatArray]:
        m, s, ww = unpack(theta)
        z = (xc - m) / s
        logp = np.log(ww) - 0.5 * z**2 - np.log(s) - half_log_2pi
        top = logp.max(axis=1, keepdims=True)
        e = np.exp(logp - top)
        tot = e.sum(axis=1, keepdims=True)
        resp = e / tot
        value = -float(np.sum(top[:, 0] + np.log(tot[:, 0])))
        g_mu = -(resp * z / s).sum(axis=0)
        g_t = -(resp * (z**2 - 1.0)).sum(axis=0) * (s - sd_floor) / s
        g_logit = -(resp.sum(axis=0) - x.size * ww)[1:]
        return value, np.concatenate([g_mu, g_t, g_logit])

    theta0 = np.concatenate([mu, np.log(np.maximum(sd - sd_floor, 1e-12)), np.log(w[1:] / w[0])])
    res = optimize.minimize(
        nll_grad, theta0, jac=True, method="BFGS", options={"gtol": 1e-6, "maxiter": 5000}
    )
    theta = res.x if res.fun <= nll_grad(theta0)[0] else theta0
    m, s, ww = unpack(theta)
    return m, s, ww, -nll_grad(theta)[0]


def _fit_class(x: FloatArray) -> tuple[dict[str, list[float]], int]:
    best: tuple[float, dict[str, list[float]], int] | None = None
    for k in (1, 2):
        par, ll = fit_gmm(x, k)
        bic = -2 * ll + (3 * k - 1) * math.log(x.size)
        if best is None or bic < best[0]:
            best = (bic, par, k)
    assert best is not None
    return best[1], best[2]


def _reduce(steps: Sequence[float], how: str) -> float:
    if how == "last":
        return float(steps[-1])
    if how == "min":
        return float(min(steps))
    raise SimFitError(f"unknown reduction {how!r}")


@dataclass(frozen=True)
class VerifierData:
    x_correct: FloatArray  # logit scores
    x_incorrect: FloatArray
    step_lists: tuple[tuple[float, ...], ...]  # raw step scores (PRMs only)
    sources: tuple[str, ...]  # files


def _load_openr(root: Path, how: str) -> VerifierData:
    folder = root / OPENR_DIR
    if not folder.is_dir():
        raise SimFitError(f"missing real-data folder {folder}")
    xs: dict[bool, list[float]] = {True: [], False: []}
    steps: list[tuple[float, ...]] = []
    for qdir in sorted(folder.glob("question_*"), key=lambda p: int(p.name.split("_")[1])):
        for rec_file in sorted(qdir.glob("record_*.jsonl")):
            for rec in _read_jsonl(rec_file):
                value = [float(v) for v in rec["output"][0]["value"]]
                if not value:
                    continue
                xs[rec["result"]["majority_vote"] == 1].append(_reduce(value, how))
                steps.append(tuple(value))
    return VerifierData(
        _logit(xs[True]),
        _logit(xs[False]),
        tuple(steps),
        (OPENR_DIR + "/question_*/record_*.jsonl",),
    )


def _load_qwen_orm(root: Path) -> VerifierData:
    xs: dict[bool, list[float]] = {True: [], False: []}
    for rec in _read_jsonl(root / QWEN_ORM_FILE):
        for ps, ok in zip(rec["pred_score"], rec["score"], strict=True):
            xs[bool(ok)].append(float(ps[0]))
    return VerifierData(np.asarray(xs[True]), np.asarray(xs[False]), (), (QWEN_ORM_FILE,))


class _RewardMath:
    """Lazy cache of RewardMATH files: per model, rows of (source, score or step list)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._cache: dict[str, list[dict[str, Any]]] = {}

    def file(self, model: str) -> str:
        return f"rewardmath/{model}_reward.json"

    def rows(self, model: str) -> list[dict[str, Any]]:
        if model not in self._cache:
            path = self.root / self.file(model)
            if not path.is_file():
                raise SimFitError(f"missing real-data file {path}")
            self._cache[model] = json.loads(path.read_text(encoding="utf-8"))
        return self._cache[model]

    def logit_scores(self, model: str, how: str) -> list[list[tuple[str, float]]]:
        rows = self.rows(model)
        srcs = [list(row["solution_reference"]) for row in rows]
        raw = np.array(
            [
                _reduce(sc, how) if isinstance(sc, list) else float(sc)
                for row in rows
                for sc in row["score"]
            ],
            dtype=np.float64,
        )
        is_prm = isinstance(rows[0]["score"][0], list)
        x = _logit(raw) if is_prm else raw  # ORM: the raw score is the logit
        out, i = [], 0
        for src, row in zip(srcs, rows, strict=True):
            if len(src) != len(row["score"]):
                raise SimFitError(f"{model}: solution_reference and score lengths differ")
            out.append(
                [(sname, float(v)) for sname, v in zip(src, x[i : i + len(src)], strict=True)]
            )
            i += len(src)
        return out

    def verifier_data(self, model: str, how: str) -> VerifierData:
        x1: list[float] = []
        x0: list[float] = []
        for items in self.logit_scores(model, how):
            if items[0][0] != "human_to_GPT-4":
                raise SimFitError(f"{model}: solution 0 is not the correct reference solution")
            x1.append(items[0][1])  # index 0: the correct reference solution
            x0.extend(x for src, x in items[1:] if src not in NON_LLM_SOURCES)
        steps = tuple(
            tuple(float(v) for v in sc)
            for row in self.rows(model)
            for sc in row["score"]
            if isinstance(sc, list)
        )
        return VerifierData(np.asarray(x1), np.asarray(x0), steps, (self.file(model),))

    def source_effects(self, model: str, how: str) -> dict[str, tuple[float, float]]:
        """Per source LLM: (mean - pooled mean) / pooled sd and sd / pooled sd, incorrect only."""
        by: dict[str, list[float]] = defaultdict(list)
        for items in self.logit_scores(model, how):
            for src, x in items[1:]:
                if src not in NON_LLM_SOURCES:
                    by[src].append(x)
        pooled = np.concatenate([np.asarray(v) for v in by.values()])
        m, s = float(pooled.mean()), float(pooled.std())
        return {src: ((float(np.mean(v)) - m) / s, float(np.std(v)) / s) for src, v in by.items()}


def _step_stats(step_lists: Sequence[Sequence[float]]) -> dict[str, Any]:
    lengths = np.clip([len(s) for s in step_lists], MIN_STEPS, MAX_STEPS)
    probs = np.bincount(lengths - MIN_STEPS, minlength=MAX_STEPS - MIN_STEPS + 1) / lengths.size
    diffs = np.concatenate([np.abs(np.diff(_logit(s))) for s in step_lists if len(s) > 1])
    return {
        "length_probs": [_r(p) for p in probs],
        "drift_scale": _r(float(diffs.mean()) / math.sqrt(2 / math.pi)),
        "mean_abs_step_change": _r(float(diffs.mean())),
    }


# --------------------------------------------------------------------------------------------
# the whole fit
# --------------------------------------------------------------------------------------------


def _src(files: Iterable[str]) -> list[str]:
    out = []
    for f in files:
        top = f.split("/", 1)[0]
        out.append(f"../shared/data/{f}  [upstream: {UPSTREAM.get(top, 'see SOURCES.md')}]")
    return out


def fit_params(shared_data_dir: Path, *, date: str | None = None) -> dict[str, Any]:
    """Compute every simulator parameter from the raw files; returns the JSON document."""
    root = Path(shared_data_dir)
    if not root.is_dir():
        raise SimFitError(f"shared data folder {root} not found (set TTSLAB_SHARED_DATA)")
    today = date or dt.date.today().isoformat()

    # ---- LLMs
    llms: dict[str, Any] = {}
    for spec in LLM_SPECS:
        probs = [p for f in spec.files for p in _load_boinf(root / f)]
        k, n = _counts(probs)
        a, b = fit_beta_binomial(k, n)
        py = fit_pitman_yor(probs)
        llms[spec.name] = {
            "mirrors": spec.mirrors,
            "accuracy": {
                "beta_a": _r(a),
                "beta_b": _r(b),
                "statistic": "per-problem accuracy ~ Beta(a, b): beta-binomial likelihood of the "
                "per-problem correct counts, mean a/(a+b) fixed to the pooled accuracy, a+b by "
                "maximum likelihood; correct = normalised answer == normalised gold_answer",
                "source": _src(spec.files),
                "fitted_on": today,
                "targets": {
                    "mean_accuracy": _r(float(k.sum() / n.sum())),
                    "n_problems": int(k.size),
                    "samples_per_problem": int(n.max()),
                    "frac_problems_all_correct": _r(float(np.mean(k == n))),
                    "frac_problems_all_wrong": _r(float(np.mean(k == 0))),
                },
            },
            "wrong_answers": {
                "discount": py["discount"],
                "concentration": py["concentration"],
                "at_boundary": py["at_boundary"],
                "statistic": "Pitman-Yor (discount d, concentration alpha) by the method of "
                "moments: pair repeat rate among wrong samples = (1-d)/(1+alpha) and mean "
                "number of distinct wrong answers given each problem's wrong-sample count "
                "(exact CRP recursion); top-wrong-share is a check, not fitted",
                "source": _src(spec.files),
                "fitted_on": today,
                "targets": py["targets"],
            },
            "tokens": {
                **_fit_tokens(probs),
                "statistic": "log n_tokens ~ Normal(mu, sd) per correctness class (MLE), "
                "token counts of 0 ignored",
                "source": _src(spec.files),
                "fitted_on": today,
            },
            "verifier_effect_source": spec.effect_source,
        }

    # ---- shared difficulty
    def group(
        files_per_llm: Sequence[Sequence[str]],
    ) -> tuple[FloatArray, FloatArray, list[tuple[float, float]], int]:
        ks, ns, hs, betas = [], [], [], []
        for files in files_per_llm:
            k, n = _counts([p for f in files for p in _load_boinf(root / f)])
            a, b = fit_beta_binomial(k, n)
            ks.append(k)
            ns.append(n)
            hs.append(_beta_on_zgrid(a, b))
            betas.append((a, b))
        h = np.stack(hs, axis=1)
        return h, _denoised_corr(np.stack(ks), np.stack(ns)), betas, int(np.stack(ns).max())

    m_files = [[f"boinf/analysis_math500_{m}.jsonl"] for m in BOINF_MATH500_LLMS]
    a_files = [list(_aime(m)) for m in BOINF_AIME_LLMS]
    h_m, c_m, betas_m, n_m = group(m_files)
    h_a, c_a, _, _ = group(a_files)
    rho = _fit_rho([(h_m, c_m), (h_a, c_a)])
    iu_m, iu_a = np.triu_indices(len(m_files), 1), np.triu_indices(len(a_files), 1)

    # ---- levels and subjects
    math500 = _read_jsonl(root / MATH500_FILE)
    levels = np.array([int(r["level"]) for r in math500])
    level_probs = np.bincount(levels, minlength=6)[1:] / levels.size
    subj = Counter(str(r["subject"]) for r in math500)
    subj_names = sorted(subj, key=lambda s: (-subj[s], s))
    pooled_acc = np.mean([_counts(_load_boinf(root / f[0]))[0] for f in m_files], axis=0)
    level_spearman = float(stats.spearmanr(levels, pooled_acc).statistic)
    loading = _fit_level_loading(betas_m, n_m, rho, level_probs, level_spearman)

    # ---- verifiers
    rm = _RewardMath(root)
    verifiers: dict[str, Any] = {}
    for vs in VERIFIER_SPECS:
        if vs.data == "openr":
            data = _load_openr(root, vs.reduction)
        elif vs.data == "qwen_orm":
            data = _load_qwen_orm(root)
        else:
            data = rm.verifier_data(vs.data, vs.reduction)
        g1, k1 = _fit_class(data.x_correct)
        g0, k0 = _fit_class(data.x_incorrect)
        per_model = [rm.source_effects(m, how) for m, how in vs.effect_models]
        effects = {}
        for spec in LLM_SPECS:
            shifts = [e[spec.effect_source][0] for e in per_model]
            scales = [e[spec.effect_source][1] for e in per_model]
            effects[spec.name] = {
                "shift_sd": _r(float(np.mean(shifts))),
                "scale": _r(float(np.exp(np.mean(np.log(scales))))),
                "from": spec.effect_source,
            }
        entry: dict[str, Any] = {
            "kind": vs.kind,
            "mirrors": vs.mirrors,
            "score_model": {
                "space": "x = logit(score); score = sigmoid(raw) for ORMs",
                "reduction": vs.reduction,
                "correct": g1,
                "incorrect": g0,
                "statistic": "per class, Gaussian mixture of logit(score) by EM, 1 or 2 "
                "components chosen by BIC (sd floor 5 % of the class sd)",
                "source": _src(data.sources),
                "fitted_on": today,
                "diagnostics": {
                    "n_correct": int(data.x_correct.size),
                    "n_incorrect": int(data.x_incorrect.size),
                    "components_correct": k1,
                    "components_incorrect": k0,
                    "auc_real": _r(_auc(data.x_correct, data.x_incorrect)),
                },
            },
            "llm_effects": {
                "effects": effects,
                "statistic": "incorrect class only: shift_sd = (mean - pooled mean) / pooled sd "
                "and scale = sd / pooled sd of the logit-scores of one source LLM's incorrect "
                "RewardMATH solutions among all LLM-generated incorrect solutions; averaged "
                "(shift: mean, scale: geometric mean) over "
                + ", ".join(f"{m} ({h})" for m, h in vs.effect_models),
                "source": _src(rm.file(m) for m, _ in vs.effect_models),
                "fitted_on": today,
            },
        }
        if vs.kind == "prm":
            entry["steps"] = {
                **_step_stats(data.step_lists),
                "statistic": "number of steps clipped to 3..8 (relative frequencies); drift "
                "scale tau of the half-normal logit increments with tau*sqrt(2/pi) = mean "
                "|change of logit(step score)| between consecutive steps",
                "source": _src(data.sources),
                "fitted_on": today,
            }
        verifiers[vs.name] = entry

    return {
        "schema_version": SCHEMA_VERSION,
        "simulated": True,
        "title": "Parameters of the SIMULATED benchmark (core/simulate.py). Synthetic data, "
        "fitted to real public files; no real LLM outputs are generated from them.",
        "generated_by": "python -m core.synth.sim_fit",
        "fitted_on": today,
        "shared_data": "../shared/data (read-only; provenance and licences in its SOURCES.md)",
        "problems": {
            "difficulty_copula": {
                "rho": _r(rho),
                "statistic": "one-factor Gaussian copula correlation; least squares over LLM "
                "pairs between the model correlation of true per-problem accuracies (quadrature "
                "with each LLM's fitted Beta) and the observed correlation of per-problem "
                "accuracies corrected for binomial noise",
                "source": _src([f[0] for f in m_files] + [f for fs in a_files for f in fs]),
                "fitted_on": today,
                "diagnostics": {
                    "mean_denoised_corr_math500": _r(float(c_m[iu_m].mean())),
                    "mean_denoised_corr_aime": _r(float(c_a[iu_a].mean())),
                    "mean_model_corr_math500": _r(float(_model_corr(h_m, rho)[iu_m].mean())),
                    "mean_model_corr_aime": _r(float(_model_corr(h_a, rho)[iu_a].mean())),
                },
            },
            "level": {
                "probs": [_r(p) for p in level_probs],
                "loading": _r(loading),
                "statistic": "level frequencies; loading lambda of the level's latent variable "
                "on (minus) difficulty, matched by fixed-seed simulation to the Spearman "
                "correlation between level and the mean accuracy of the 7 BoInf MATH500 LLMs",
                "source": _src([MATH500_FILE] + [f[0] for f in m_files]),
                "fitted_on": today,
                "targets": {"spearman_level_vs_accuracy": _r(level_spearman)},
            },
            "subject": {
                "names": subj_names,
                "probs": [_r(subj[s] / len(math500)) for s in subj_names],
                "statistic": "relative frequency of MATH500 subjects (independent of difficulty)",
                "source": _src([MATH500_FILE]),
                "fitted_on": today,
            },
        },
        "llms": llms,
        "verifiers": verifiers,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Refit data/sim_params.json from ../shared/data")
    parser.add_argument("--shared-data", type=Path, default=None, help="real-data folder")
    parser.add_argument("--out", type=Path, default=DEFAULT_PARAMS_PATH, help="output JSON")
    args = parser.parse_args(argv)
    root = args.shared_data if args.shared_data is not None else shared_data_dir()
    doc = fit_params(root)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    tmp.replace(args.out)
    print(f"wrote {args.out}")
    for name, d in doc["llms"].items():
        acc, wa = d["accuracy"], d["wrong_answers"]
        print(
            f"  {name}: mean acc {acc['targets']['mean_accuracy']:.3f} "
            f"Beta({acc['beta_a']:.3g}, {acc['beta_b']:.3g}), "
            f"PY(d={wa['discount']:.3g}, alpha={wa['concentration']:.3g})"
        )
    for name, d in doc["verifiers"].items():
        print(f"  {name}: real AUC {d['score_model']['diagnostics']['auc_real']:.3f}")
    print(
        f"  rho = {doc['problems']['difficulty_copula']['rho']:.3f}, "
        f"level loading = {doc['problems']['level']['loading']:.3f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
