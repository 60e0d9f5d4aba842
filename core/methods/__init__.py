"""Methods: how responses are weighted and voted on. Step reductions, score transforms,
KDE and calibrators, fitted weight functions, and the strategy registry.

This package is the registry's public face: the dashboard, the CLI and user code list,
look up and register strategies through the names exported here. Methods never evaluate
accuracy (that is `core.evaluation`'s job, including the tuning of offsets).
"""

from core.methods import builtin as _builtin  # noqa: F401  (registers the built-ins)
from core.methods.fitted import FittedWeights, OffsetFit
from core.methods.params import CalibrationError, StrategyParams
from core.methods.registry import (
    REGISTRY,
    OffsetSpace,
    ScoreWeighted,
    Strategy,
    StrategyError,
    calibrated_strategies,
    color,
    default_strategies,
    display_label,
    get_strategy,
    list_strategies,
    load_plugins,
    register,
    short_name,
    strategy_names,
    unregister,
    weight_strategies,
)

__all__ = [
    "REGISTRY",
    "CalibrationError",
    "FittedWeights",
    "OffsetFit",
    "OffsetSpace",
    "ScoreWeighted",
    "Strategy",
    "StrategyError",
    "StrategyParams",
    "calibrated_strategies",
    "color",
    "default_strategies",
    "display_label",
    "get_strategy",
    "list_strategies",
    "load_plugins",
    "register",
    "short_name",
    "strategy_names",
    "unregister",
    "weight_strategies",
]
