"""The info layer: what each dashboard page and CLI table shows, as frozen results of plain
arrays, computed from the evaluation and study layers (which cache) with no prose."""

from core.info.allocation import AllocationView, allocation_view
from core.info.budget import (
    BudgetCurve,
    BudgetView,
    Efficiency,
    budget_view,
    common_budgets,
    warm_curves,
)
from core.info.calibrate import WeightSummary, calibrate_table, weight_summary
from core.info.combine import CombineView, combine_obstacle, combine_view
from core.info.common import (
    Issue,
    ViewError,
    check_pair,
    curve_strategies,
    dataset_label,
    negative_intervals,
    pair_name,
    parse_llm_params,
    sample_issues,
)
from core.info.compare import CompareView, compare_view, default_baseline, voting_note
from core.info.overlay import MAX_OVERLAY, OverlayView, overlay_view
from core.info.problems import (
    FILTER_KINDS,
    FILTER_LABELS,
    NO_ANSWER,
    DisagreementView,
    ProblemFilter,
    ProblemList,
    ProblemView,
    disagreement_problems,
    explorer_problems,
    explorer_strategies,
    problem_view,
)
from core.info.transfer import TransferView, pair_ref_label, transfer_view
from core.info.weights import (
    WeightGridView,
    WeightPanel,
    WeightView,
    weight_grid_view,
    weight_view,
)
from core.studies.transfer import PairRef

__all__ = [
    "FILTER_KINDS",
    "FILTER_LABELS",
    "MAX_OVERLAY",
    "NO_ANSWER",
    "AllocationView",
    "BudgetCurve",
    "BudgetView",
    "CombineView",
    "CompareView",
    "DisagreementView",
    "Efficiency",
    "Issue",
    "OverlayView",
    "PairRef",
    "ProblemFilter",
    "ProblemList",
    "ProblemView",
    "TransferView",
    "ViewError",
    "WeightGridView",
    "WeightPanel",
    "WeightSummary",
    "WeightView",
    "allocation_view",
    "budget_view",
    "calibrate_table",
    "check_pair",
    "combine_obstacle",
    "combine_view",
    "common_budgets",
    "compare_view",
    "curve_strategies",
    "dataset_label",
    "default_baseline",
    "disagreement_problems",
    "explorer_problems",
    "explorer_strategies",
    "negative_intervals",
    "overlay_view",
    "pair_name",
    "pair_ref_label",
    "parse_llm_params",
    "problem_view",
    "sample_issues",
    "transfer_view",
    "voting_note",
    "warm_curves",
    "weight_grid_view",
    "weight_summary",
    "weight_view",
]
