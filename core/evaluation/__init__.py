"""Evaluation: the one config, the one cross-fitting path, the budget engine, offset tuning,
statistics, and the cached analyses of stored pairs (built on `core.methods`)."""

from core.evaluation.config import ConfigError, EvalConfig
from core.evaluation.crossfit import CrossFit, Fold, cross_fit, kfold, stitch, transfer_folds
from core.evaluation.engine import (
    BudgetError,
    CurveSet,
    Subsets,
    accuracy_curves,
    default_budgets,
    exact_best_of_n,
    make_subsets,
    offset_credits,
    subset_credits,
)
from core.evaluation.offsets import OffsetTuner
from core.evaluation.pipeline import (
    AnalysisError,
    PairCurves,
    PairInputs,
    crossfit_strategies,
    evaluate,
    fit_pair,
    fit_strategy,
    load_pair,
    pair_curves,
    pair_inputs,
    response_weights,
)

__all__ = [
    "AnalysisError",
    "BudgetError",
    "ConfigError",
    "CrossFit",
    "CurveSet",
    "EvalConfig",
    "Fold",
    "OffsetTuner",
    "PairCurves",
    "PairInputs",
    "Subsets",
    "accuracy_curves",
    "cross_fit",
    "crossfit_strategies",
    "default_budgets",
    "evaluate",
    "exact_best_of_n",
    "fit_pair",
    "fit_strategy",
    "kfold",
    "load_pair",
    "make_subsets",
    "offset_credits",
    "pair_curves",
    "pair_inputs",
    "response_weights",
    "stitch",
    "subset_credits",
    "transfer_folds",
]
