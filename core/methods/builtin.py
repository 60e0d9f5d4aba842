"""The built-in strategies (definitions in ARCHITECTURE.md section 4), registered on import.

t = transformed score in [0, 1] (oriented: higher = more likely correct),
x = logit(clip(t, eps, 1 - eps)), w(x) = KDE log f1(x)/f0(x):

==================  ====================================================  ==============
name                weight                                                vote
==================  ====================================================  ==============
majority            1                                                     sum
best_of_n           raw score in the signal's direction (ordering only)   best-of
vanilla_wv          t                                                     sum
linear_wv           t - b, b tuned in [-1, 1]                             sum
logit_wv            logit t - logit b, b tuned in (0, 1)                  sum
kde_wv              w(x) + n_a log(q(m-1)/(1-q)), q = mean g over subset  sum + q/m
kde_wv_mlq          as kde_wv, q = the subset's maximum-likelihood q      sum + q/m
posterior_vote      lambda w(x) + h(n_a, N): Beta prior over q            sum + size term
                    integrated out, Pitman-Yor wrong answers, lambda in
                    [0, 1] tempering (all fitted on calibration)
platt_wv            logit P_platt(c|x) - logit(base rate) [+ q/m]         sum (+ q/m)
isotonic_wv         logit P_iso(c|x) - logit(base rate) [+ q/m]           sum (+ q/m)
kde_wv_oracle       ORACLE: kde_wv fitted on the evaluated problems'      sum + q/m
                    own labels, true per-problem q (not a bound)
bayes_optimal       ORACLE, CEILING: posterior vote with the simulator's  sum + size term
                    true densities, Beta prior and Pitman-Yor process
pass_at_n           ORACLE, CEILING: any correct response (exact)         best-of
==================  ====================================================  ==============
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Final

import numpy as np

from core.methods.calibrators import fit_binned_calibrator, fit_isotonic, fit_platt
from core.methods.fitted import FittedWeights
from core.methods.kde import fit_kde_params
from core.methods.params import (
    KDE_FIELDS,
    OFFSET_FIELDS,
    ORIENTATION_FIELDS,
    Q_FIELDS,
    TRANSFORM_FIELDS,
    CalibrationError,
    StrategyParams,
)
from core.methods.posterior import (
    AnswerPrior,
    fit_answer_prior,
    fit_temper,
    mixture_logpdf,
    size_inputs,
)
from core.methods.registry import OffsetSpace, Strategy, StrategyError, register
from core.methods.transforms import (
    apply_transform,
    clipped_logit,
    is_resolved_transform,
    logit_scalar,
    resolve_transform,
)
from core.types import BoolArray, FloatArray, PairData, VoteInputs, VoteKind

#: calibration labels: bool, or soft probabilities under label-free calibration
Labels = BoolArray | FloatArray

LINEAR_OFFSET: Final = OffsetSpace(
    lo=-1.0, hi=1.0, neutral=0.0, formula="w = s - b", base_uses_fit=False
)
LOGIT_OFFSET: Final = OffsetSpace(
    lo=0.0,
    hi=1.0,
    neutral=0.5,
    formula="w = logit s - logit b",
    open_interval=True,
    shift=logit_scalar,
    base_uses_fit=False,
)


def _with_calibrator(fitted: FittedWeights, t: FloatArray, correct: Labels) -> FittedWeights:
    p = fitted.params
    cal = fit_binned_calibrator(t, correct, n_bins=p.n_bins, smoothing=p.bin_smoothing)
    return replace(fitted, calibrator=cal)


@dataclass(frozen=True, kw_only=True)
class Majority(Strategy):
    uses: frozenset[str] = frozenset()

    def weights(self, fitted: FittedWeights, t: FloatArray) -> FloatArray:
        return np.ones(np.shape(t), dtype=np.float64)


@dataclass(frozen=True, kw_only=True)
class BestOfN(Strategy):
    """The cluster of the single highest raw score (exact in the evaluation engine)."""

    vote: VoteKind = "best_of"
    uses: frozenset[str] = ORIENTATION_FIELDS

    def weights(self, fitted: FittedWeights, t: FloatArray) -> FloatArray:
        return np.asarray(t, dtype=np.float64).copy()

    def vote_inputs(self, fitted: FittedWeights, pair: PairData) -> VoteInputs:
        """The raw score in the signal's direction (the transform would only lose ties)."""
        self.check(fitted)
        score = np.asarray(pair.score, dtype=np.float64)
        return VoteInputs(weight=fitted.sign * score, best_of=True)


@dataclass(frozen=True, kw_only=True)
class RankedVote(Strategy):
    """A vote on the ranks of the raw score within the subset (`core.methods.ranked`):
    Majority-of-the-Bests ("mob") or the majority among the top share ("top")."""

    vote: VoteKind = "ranked"
    uses: frozenset[str] = ORIENTATION_FIELDS
    ranked: str = "mob"
    ranked_param: float = 0.5

    def weights(self, fitted: FittedWeights, t: FloatArray) -> FloatArray:
        return np.asarray(t, dtype=np.float64).copy()

    def vote_inputs(self, fitted: FittedWeights, pair: PairData) -> VoteInputs:
        self.check(fitted)
        score = np.asarray(pair.score, dtype=np.float64)
        return VoteInputs(
            weight=fitted.sign * score, ranked=self.ranked, ranked_param=self.ranked_param
        )


@dataclass(frozen=True, kw_only=True)
class Vanilla(Strategy):
    def weights(self, fitted: FittedWeights, t: FloatArray) -> FloatArray:
        return np.asarray(t, dtype=np.float64).copy()


@dataclass(frozen=True, kw_only=True)
class OffsetWV(Strategy):
    """``w = base(t) - shift(b)``: linear (base t) or logit (base logit t)."""

    logit: bool = False
    needs_labels: bool = True
    show_weights: bool = True
    uses: frozenset[str] = TRANSFORM_FIELDS | OFFSET_FIELDS

    def base_weights(self, fitted: FittedWeights, t: FloatArray) -> FloatArray:
        if self.logit:
            return clipped_logit(t, fitted.params.clip_eps)
        return np.asarray(t, dtype=np.float64)


@dataclass(frozen=True, kw_only=True)
class KDEWV(Strategy):
    """Theorem 3.2: KDE log likelihood ratio plus the per-problem q-term, q the mean of
    the binned calibrator g over the subset (the paper's), or with `ml_q` the subset's
    maximum-likelihood q (the fixed point of q <- mean sigmoid(w + logit q))."""

    needs_labels: bool = True
    soft_labels: bool = True
    show_weights: bool = True
    ml_q: bool = False
    uses: frozenset[str] = TRANSFORM_FIELDS | KDE_FIELDS | Q_FIELDS

    def fit_state(self, base: FittedWeights, t: FloatArray, correct: Labels) -> FittedWeights:
        kde = fit_kde_params(clipped_logit(t, base.params.clip_eps), correct, base.params)
        if self.ml_q:
            return replace(base, kde=kde)
        return _with_calibrator(replace(base, kde=kde), t, correct)

    def weights(self, fitted: FittedWeights, t: FloatArray) -> FloatArray:
        if fitted.kde is None:
            raise CalibrationError(f"{self.name} fit has no KDE")
        return fitted.kde.log_lr(clipped_logit(t, fitted.params.clip_eps))

    def uses_q(self, fitted: FittedWeights) -> bool:
        return not self.ml_q

    def vote_inputs(self, fitted: FittedWeights, pair: PairData) -> VoteInputs:
        vi = super().vote_inputs(fitted, pair)
        return replace(vi, ml_q=True) if self.ml_q else vi


@dataclass(frozen=True, kw_only=True)
class PosteriorVote(KDEWV):
    """Each answer's posterior under a model fitted on calibration problems only: the KDE
    log likelihood ratio of the scores, a Beta prior over the problem's q integrated out,
    and Pitman-Yor wrong answers (`core.methods.posterior`)."""

    uses: frozenset[str] = TRANSFORM_FIELDS | KDE_FIELDS | {"offset_budget", "offset_seed"}

    def fit(self, calib: PairData, params: StrategyParams) -> FittedWeights:
        fitted = super().fit(calib, params)
        prior = fit_answer_prior(calib)
        w = KDEWV.weights(self, fitted, fitted.transformed(calib))
        n_max = int(calib.sizes().max()) if calib.n_problems else 1
        lam = fit_temper(calib, w, prior, min(params.offset_budget, n_max), seed=params.offset_seed)
        return replace(fitted, state={"answer_prior": prior.to_dict(), "temper": lam})

    def weights(self, fitted: FittedWeights, t: FloatArray) -> FloatArray:
        """The tempered log likelihood ratio lambda * log f1/f0 (lambda fitted on
        calibration problems, see `core.methods.posterior.fit_temper`)."""
        lam = float(fitted.state.get("temper", 1.0))
        return np.asarray(lam * super().weights(fitted, t), dtype=np.float64)

    def fit_state(self, base: FittedWeights, t: FloatArray, correct: Labels) -> FittedWeights:
        kde = fit_kde_params(clipped_logit(t, base.params.clip_eps), correct, base.params)
        return replace(base, kde=kde)

    def uses_q(self, fitted: FittedWeights) -> bool:
        return False

    def vote_inputs(self, fitted: FittedWeights, pair: PairData) -> VoteInputs:
        self.check(fitted)
        if "answer_prior" not in fitted.state:
            raise CalibrationError(f"{self.name} fit has no answer prior")
        w = self.weights(fitted, fitted.transformed(pair))
        return size_inputs(w, AnswerPrior.from_dict(fitted.state["answer_prior"]), pair)


@dataclass(frozen=True, kw_only=True)
class BayesOptimal(Strategy):
    """CEILING on simulated data: the posterior vote with the simulator's own parameters
    (true class densities of the logit score, the LLM's Beta prior over q and its
    Pitman-Yor wrong-answer process), i.e. the decision with the highest expected accuracy
    among the answers of the subset. Scores are conditionally independent given
    correctness in the simulator (unless its problem effect is switched on, when there
    is no exact vote here and the strategy is skipped)."""

    oracle: bool = True
    upper_bound: bool = True
    needs_truth: bool = True
    uses: frozenset[str] = frozenset()

    def vote_inputs(self, fitted: FittedWeights, pair: PairData) -> VoteInputs:
        self.check(fitted)
        truth = pair.truth
        if truth is None:
            raise CalibrationError(
                "the Bayes-optimal vote needs the simulator's parameters, which simulated "
                "datasets built by this version record (rebuild an older demo with `ttslab "
                "demo --replace`); a step reduction that changes the score loses them"
            )
        if not truth.get("conditionally_independent", True):
            raise CalibrationError(
                "this simulation breaks conditional independence (problem effect): "
                "its Bayes-optimal vote is not computed"
            )
        s = np.clip(np.asarray(pair.score, dtype=np.float64), 1e-300, 1.0 - 1e-16)
        x = np.log(s) - np.log1p(-s)
        w = mixture_logpdf(truth["logit_correct"], x) - mixture_logpdf(truth["logit_incorrect"], x)
        return size_inputs(np.asarray(w, dtype=np.float64), AnswerPrior.from_dict(truth), pair)

    def weights(self, fitted: FittedWeights, t: FloatArray) -> FloatArray:
        raise StrategyError("the Bayes-optimal vote has no fitted weight curve")


@dataclass(frozen=True, kw_only=True)
class ProbabilityLR(Strategy):
    """``logit P(c|x) - logit(base rate)`` from Platt scaling or isotonic regression."""

    isotonic: bool = False
    needs_labels: bool = True
    show_weights: bool = True
    uses: frozenset[str] = TRANSFORM_FIELDS | Q_FIELDS | {"use_qm"}

    def fit_state(self, base: FittedWeights, t: FloatArray, correct: Labels) -> FittedWeights:
        x = clipped_logit(t, base.params.clip_eps)
        labels = np.asarray(correct, dtype=bool)  # never soft: soft_labels is False
        if self.isotonic:
            out = replace(
                base, isotonic=fit_isotonic(x, labels, smoothing=base.params.bin_smoothing)
            )
        else:
            out = replace(base, platt=fit_platt(x, labels))
        return _with_calibrator(out, t, correct) if base.params.use_qm else out

    def weights(self, fitted: FittedWeights, t: FloatArray) -> FloatArray:
        x = clipped_logit(t, fitted.params.clip_eps)
        if self.isotonic:
            if fitted.isotonic is None:
                raise CalibrationError("isotonic_wv fit has no isotonic model")
            return fitted.isotonic.log_lr(x)
        if fitted.platt is None:
            raise CalibrationError("platt_wv fit has no Platt model")
        return fitted.platt.log_lr(x)

    def uses_q(self, fitted: FittedWeights) -> bool:
        return fitted.params.use_qm


@dataclass(frozen=True, kw_only=True)
class OracleKDE(Strategy):
    """ORACLE, not a bound: Theorem 3.2 with densities and the true q from the evaluated
    problems' labels. It can fall below calibrated strategies (the uniform m-1 spread of
    wrong answers is wrong for real and simulated samples alike): a diagnostic of how much
    better densities and q would help KDE WV, never a ceiling.

    log f1/f0 from a KDE fitted on the evaluated pair itself (all its problems, with their
    labels), and g = each problem's true fraction of correct responses, so q is the true
    per-problem rate. Per-problem densities were tried and rejected: with 16 responses per
    problem, leave-one-out per-problem KDEs are so noisy that the oracle fell below
    calibrated KDE WV on the simulator.
    """

    oracle: bool = True
    uses: frozenset[str] = TRANSFORM_FIELDS | KDE_FIELDS

    def vote_inputs(self, fitted: FittedWeights, pair: PairData) -> VoteInputs:
        self.check(fitted)
        tr = fitted.transform
        if not is_resolved_transform(tr):
            tr = resolve_transform(tr, pair.score)
        x = clipped_logit(apply_transform(pair.score, tr), fitted.params.clip_eps)
        c = np.asarray(pair.correct, dtype=bool)
        prob = pair.problem_index()
        g = np.asarray(pair.share_correct()[prob], dtype=np.float64)
        try:
            kde = fit_kde_params(x, c, fitted.params)
        except CalibrationError:
            # one class (nearly) absent from the whole pair: scores carry no information
            return VoteInputs(weight=np.zeros_like(x), g=g)
        return VoteInputs(weight=kde.log_lr(x), g=g)

    def weights(self, fitted: FittedWeights, t: FloatArray) -> FloatArray:
        raise StrategyError(
            "oracle weights depend on the labels of the evaluated problems; "
            "they have no score-only weight curve"
        )


@dataclass(frozen=True, kw_only=True)
class PassAtN(Strategy):
    """ORACLE upper bound: credit if any response in the subset is correct (coverage). As a
    best-of vote over weight = correctness, the engine's exact best-of formula gives
    1 - C(n - c, N) / C(n, N)."""

    vote: VoteKind = "best_of"
    oracle: bool = True
    upper_bound: bool = True
    uses: frozenset[str] = frozenset()

    def vote_inputs(self, fitted: FittedWeights, pair: PairData) -> VoteInputs:
        self.check(fitted)
        return VoteInputs(weight=np.asarray(pair.correct, dtype=np.float64), best_of=True)


BUILTIN: Final[tuple[Strategy, ...]] = (
    Majority(
        name="majority",
        label="Majority vote",
        short="majority vote",
        description="every response weighs 1",
        color="#7f7f7f",
        default=True,
    ),
    BestOfN(
        name="best_of_n",
        label="Best-of-N",
        short="best-of-N",
        description="answer of the single highest-scored response",
        color="#8c564b",
        default=True,
    ),
    RankedVote(
        name="majority_of_bests",
        label="Majority-of-the-Bests",
        short="MoB",
        description="mode of best-of picks over m-out-of-N bootstrap resamples (m = "
        "round(sqrt N), the limit of infinitely many resamples; Rakhsha et al. 2025)",
        color="#a6761d",
        ranked="mob",
        ranked_param=0.5,
    ),
    RankedVote(
        name="top_filtered_vote",
        label="Top-50% vote",
        short="top-50% vote",
        description="majority vote among the half of the responses with the highest "
        "scores (confidence-filtered voting, DeepConf offline style)",
        color="#666666",
        ranked="top",
        ranked_param=0.5,
    ),
    Vanilla(
        name="vanilla_wv",
        label="Vanilla WV",
        short="vanilla WV",
        description="weight = transformed score t",
        color="#1f77b4",
        default=True,
    ),
    OffsetWV(
        name="linear_wv",
        label="Linear WV",
        short="linear WV",
        description="weight = t - b, b tuned in [-1, 1] on calibration problems",
        color="#9467bd",
        default=True,
        offset=LINEAR_OFFSET,
    ),
    OffsetWV(
        name="logit_wv",
        label="Logit WV",
        short="logit WV",
        description="weight = logit t - logit b, b tuned in (0, 1) on calibration problems",
        color="#d62728",
        default=True,
        offset=LOGIT_OFFSET,
        logit=True,
    ),
    KDEWV(
        name="kde_wv",
        label="KDE WV (Thm 3.2)",
        short="KDE WV",
        description="weight = KDE log likelihood ratio + per-problem log(q(m-1)/(1-q))",
        color="#2ca02c",
        default=True,
    ),
    KDEWV(
        name="kde_wv_mlq",
        label="KDE WV, ML q",
        short="KDE WV (ML q)",
        description="KDE WV with q the subset's maximum-likelihood P(correct) "
        "(q <- mean sigmoid(w + logit q))",
        color="#98df8a",
        ml_q=True,
    ),
    PosteriorVote(
        name="posterior_vote",
        label="Posterior vote",
        short="posterior vote",
        description="each answer's posterior: KDE log LR + Beta prior over q + "
        "Pitman-Yor wrong answers, all fitted on calibration problems",
        color="#ff7f0e",
        default=True,
    ),
    ProbabilityLR(
        name="platt_wv",
        label="Platt LR WV",
        short="Platt WV",
        description="weight = logit Platt P(c|s) - logit base rate (+ q/m term if use_qm)",
        color="#e377c2",
    ),
    ProbabilityLR(
        name="isotonic_wv",
        label="Isotonic LR WV",
        short="isotonic WV",
        description="weight = logit isotonic P(c|s) - logit base rate (+ q/m term if use_qm)",
        color="#bcbd22",
        isotonic=True,
    ),
    OracleKDE(
        name="kde_wv_oracle",
        label="KDE WV with test labels (oracle)",
        short="KDE WV with test labels",
        description="ORACLE, not a bound: Thm 3.2 with densities and true per-problem q "
        "from the evaluated problems' own labels",
        color="#17becf",
    ),
    BayesOptimal(
        name="bayes_optimal",
        label="Bayes-optimal (ceiling, simulator)",
        short="Bayes-optimal vote",
        description="CEILING on simulated data: the posterior vote with the simulator's "
        "true densities, prior over q and wrong-answer process",
        color="#6a3d9a",
        default=True,
    ),
    PassAtN(
        name="pass_at_n",
        label="pass@N (ceiling)",
        short="pass@N",
        description="ORACLE: any correct response in the subset (exact formula)",
        color="#222222",
        default=True,
    ),
)

for _s in BUILTIN:
    register(_s)
