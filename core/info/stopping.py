"""What the "Adaptive sampling" page and `ttslab stopping` show: each early-stopping
rule's accuracy against the mean samples (and tokens) it used, the fixed-N curves of
majority vote and of the best calibrated strategy on the same problems and orders, and
what each rule saves at the accuracy of each fixed-N reference."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from core.evaluation.config import EvalConfig
from core.evaluation.stats import bootstrap_mean_ci
from core.evaluation.stopping import RULES, Saving, fixed_cost, has_tokens, saving
from core.info.common import MIN_PROBLEMS, Issue, kept_per_content
from core.store import DatasetInfo, Store
from core.studies.stopping import pair_stopping
from core.types import FloatArray

ProgressFn = Callable[[str, int, int], None]
#: every stopping rule's name and label, in the order the pages list them
RULE_LABELS: dict[str, str] = {name: rule.label for name, rule in RULES.items()}


@dataclass(frozen=True)
class RuleCurve:
    """One rule: per threshold, accuracy with its bootstrap interval and mean cost."""

    rule: str
    label: str
    threshold_name: str
    thresholds: tuple[float, ...]
    accuracy: FloatArray
    low: FloatArray
    high: FloatArray
    samples: FloatArray
    tokens: FloatArray  # NaN where token counts are missing


@dataclass(frozen=True)
class FixedCurve:
    """A fixed-N strategy: per budget, accuracy with its interval and expected cost."""

    strategy: str
    budgets: tuple[int, ...]
    accuracy: FloatArray
    low: FloatArray
    high: FloatArray
    samples: FloatArray
    tokens: FloatArray


@dataclass(frozen=True)
class StoppingView:
    dataset: str
    llm: str
    verifier: str
    n_problems: int
    cap: int
    rules: tuple[RuleCurve, ...]
    fixed: tuple[FixedCurve, ...]  # majority first, then the best calibrated strategy
    reference_budget: int
    savings: tuple[Saving, ...]  # per rule x reference x unit
    has_tokens: bool
    level: float
    tolerance: float
    issues: tuple[Issue, ...]


@kept_per_content
def stopping_view(
    store: Store,
    info: DatasetInfo,
    llm: str,
    verifier: str,
    rules: Sequence[str],
    config: EvalConfig,
    *,
    cap: int | None = None,
    reference_budget: int = 32,
    tolerance: float = 0.005,
    progress: ProgressFn | None = None,
) -> StoppingView:
    """`tolerance`: savings are read where a rule comes within this much accuracy of
    the fixed-N reference (default half a point; see `core.evaluation.stopping.saving`)."""
    res = pair_stopping(store, info, llm, verifier, rules, config, cap=cap, progress=progress)
    pair = res.pair
    where = f"{llm} × {verifier}"
    issues: list[Issue] = [
        Issue("unfittable", where, name, why) for name, why in sorted(res.skipped.items())
    ]
    if pair.n_problems < MIN_PROBLEMS:
        issues.append(Issue("few_problems", where, value=float(pair.n_problems)))
    tokens_ok = has_tokens(pair)
    fixed = res.fixed
    budgets = tuple(int(b) for b in fixed.budgets)
    below = [b for b in budgets if b <= reference_budget]
    ref_b = max(below) if below else budgets[0]
    if ref_b != reference_budget:
        issues.append(
            Issue("budget_not_evaluated", where, detail=str(reference_budget), value=ref_b)
        )
    bi = budgets.index(ref_b)
    n_max = int(pair.sizes().max())
    if ref_b > int(pair.sizes().min()):
        issues.append(
            Issue(
                "short_problems",
                where,
                detail=str(ref_b),
                value=float(np.count_nonzero(pair.sizes() < ref_b)),
            )
        )
    cost_s = fixed_cost(pair, budgets, "samples")
    cost_t = fixed_cost(pair, budgets, "tokens") if tokens_ok else np.full(cost_s.shape, np.nan)
    means = fixed.mean()
    calibrated = [
        i for i, s in enumerate(fixed.strategies) if s != "majority" and np.isfinite(means[i, bi])
    ]
    picks = [fixed.strategies.index("majority")]
    if calibrated:
        picks.append(max(calibrated, key=lambda i: float(means[i, bi])))
    fixed_curves = []
    for i in picks:
        _, lo, hi = bootstrap_mean_ci(
            fixed.per_problem[i], config.n_boot, config.level, config.boot_seed
        )
        fixed_curves.append(
            FixedCurve(
                strategy=fixed.strategies[i],
                budgets=budgets,
                accuracy=means[i],
                low=lo,
                high=hi,
                samples=cost_s.mean(axis=1),
                tokens=cost_t.mean(axis=1),
            )
        )
    rule_curves = []
    savings: list[Saving] = []
    for c in res.curves:
        _, lo, hi = bootstrap_mean_ci(c.credit, config.n_boot, config.level, config.boot_seed)
        rule = RULES[c.rule]
        rule_curves.append(
            RuleCurve(
                rule=c.rule,
                label=rule.label,
                threshold_name=rule.threshold_name,
                thresholds=c.thresholds,
                accuracy=c.accuracy,
                low=lo,
                high=hi,
                samples=c.mean_samples,
                tokens=c.mean_tokens,
            )
        )
        for i in picks:
            for unit, cost in (("samples", cost_s), ("tokens", cost_t)):
                if unit == "tokens" and not tokens_ok:
                    continue
                savings.append(
                    saving(
                        c,
                        fixed.per_problem[i, bi],
                        cost[bi],
                        unit=unit,
                        reference=fixed.strategies[i],
                        n_boot=config.n_boot,
                        level=config.level,
                        seed=config.boot_seed,
                        tolerance=tolerance,
                    )
                )
    return StoppingView(
        dataset=info.name,
        llm=llm,
        verifier=verifier,
        n_problems=pair.n_problems,
        cap=max((c.cap for c in res.curves), default=n_max),
        rules=tuple(rule_curves),
        fixed=tuple(fixed_curves),
        reference_budget=ref_b,
        savings=tuple(savings),
        has_tokens=tokens_ok,
        level=config.level,
        tolerance=tolerance,
        issues=tuple(issues),
    )


__all__ = ["RULE_LABELS", "FixedCurve", "RuleCurve", "StoppingView", "stopping_view"]
