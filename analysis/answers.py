"""The `answers` of a fit: for each cost model and budget, the best precision, how sure we are
(bootstrap share of draws choosing each precision, CI of the loss gap to the runner-up), and whether
the answer extrapolates beyond the runs (N*, D* or the budget outside the observed range, or the
search ended on its bound) or contradicts them (a run within the budget beat the predicted optimum).

    answers = build_answers(result, runs, budgets=(("train_flops", 1e18),))

Budgets not given default to the geometric middle of the observed range of that cost (the fitted
runs), so `answers` is never empty.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from quest_lab.analysis import derived
from quest_lab.analysis.cost import CostModel
from quest_lab.analysis.fit import FitResult
from quest_lab.analysis.law_base import BASE_LABEL

log = logging.getLogger(__name__)
CONTRADICTION_MARGIN = 0.01  # an observed run beats the predicted optimum by more than 1 % of the loss


@dataclass(frozen=True)
class Budget:
    cost: str
    value: float
    source: str  # "given" or how the default was derived


@dataclass(frozen=True)
class Observed:
    """The range a fit has seen: N, D and each cost model's cost over the fitted runs."""

    N: tuple[float, float]
    D: tuple[float, float]
    cost: dict[str, tuple[float, float]]
    runs: pd.DataFrame  # N, D, w_bits, a_bits, loss, label

    @classmethod
    def of(cls, runs: pd.DataFrame, models: dict[str, CostModel]) -> "Observed":
        costs = {name: m.cost(runs["N"], runs["D"], runs["w_bits"], runs["a_bits"]) for name, m in models.items()}
        span = lambda x: (float(np.min(x)), float(np.max(x)))  # noqa: E731
        return cls(N=span(runs["N"]), D=span(runs["D"]), cost={k: span(v) for k, v in costs.items()},
                   runs=runs[["N", "D", "w_bits", "a_bits", "loss", "label"]].reset_index(drop=True))


def default_budgets(observed: Observed, given: tuple[tuple[str, float], ...] = ()) -> list[Budget]:
    """The budgets asked for, plus the geometric middle of the observed range for every cost model
    that was given none."""
    out = [Budget(name, float(value), "given") for name, value in given]
    asked = {name for name, _ in given}
    for name, (lo, hi) in observed.cost.items():
        if name not in asked:
            out.append(Budget(name, float(np.sqrt(lo * hi)), f"default: geometric middle of the observed range "
                                                              f"[{lo:.3g}, {hi:.3g}]"))
    return out


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def _extrapolation(best: dict[str, float], cost: CostModel, budget: float, observed: Observed) -> list[str]:
    reasons = []
    lo, hi = observed.cost[cost.name]
    if budget < lo:
        reasons.append(f"budget {_fmt(budget)} {cost.unit} is below the cheapest run ({_fmt(lo)})")
    elif budget > hi:
        reasons.append(f"budget {_fmt(budget)} {cost.unit} is above the costliest run ({_fmt(hi)})")
    N, D = best["N"], best["D"]
    if N < observed.N[0]:
        reasons.append(f"N* = {_fmt(N)} is below the smallest model trained (N = {_fmt(observed.N[0])})")
    elif N > observed.N[1]:
        reasons.append(f"N* = {_fmt(N)} is above the largest model trained (N = {_fmt(observed.N[1])})")
    if cost.scales_with == "ND":
        if D < observed.D[0]:
            reasons.append(f"D* = {_fmt(D)} tokens is below the smallest budget trained ({_fmt(observed.D[0])})")
        elif D > observed.D[1]:
            reasons.append(f"D* = {_fmt(D)} tokens is above the largest budget trained ({_fmt(observed.D[1])})")
    if best["search_bound_hit"]:
        reasons.append(f"the search for N* ended on its bound (N·D split {derived.SEARCH_SPAN}): the law has no "
                       "optimum inside it")
    return reasons


def _contradiction(best_loss: float, cost: CostModel, budget: float, observed: Observed) -> str | None:
    """A run that costs no more than the budget yet beat the predicted optimum of every precision."""
    runs = observed.runs
    c = cost.cost(runs["N"], runs["D"], runs["w_bits"], runs["a_bits"])
    within = runs[np.asarray(c) <= budget * (1 + 1e-9)]
    if within.empty:
        return None
    run = within.loc[within["loss"].idxmin()]
    if run["loss"] < best_loss * (1 - CONTRADICTION_MARGIN):
        return (f"a {run['label']} run with N = {_fmt(run['N'])}, D = {_fmt(run['D'])} costs no more than the budget "
                f"and reached loss {run['loss']:.4g}, below the predicted optimum {best_loss:.4g}")
    return None


def _bootstrap(result: FitResult, labels: list[str], cost: CostModel, budget: float, best: str,
               runner_up: str | None) -> dict[str, Any] | None:
    if result.samples is None or not len(result.samples):
        return None
    law = result.model
    thetas = np.array([[s.internal(v) for s, v in zip(law.specs(), row)] for row in result.samples])
    ok = np.all(np.isfinite(thetas), axis=1)
    thetas = thetas[ok]
    if not len(thetas):
        return None
    losses = np.stack([derived.optimal_points(law, thetas, lab, cost, budget)["loss"] for lab in labels], axis=1)
    picks = np.array(labels)[np.argmin(np.where(np.isfinite(losses), losses, np.inf), axis=1)]
    level = result.config.ci
    q = [50 * (1 - level), 50 * (1 + level)]
    with np.errstate(invalid="ignore"):  # a refit whose loss is unbounded (inf) makes that end of the CI inf
        out: dict[str, Any] = {
            "draws": int(len(thetas)), "ci_level": level,
            "share": {lab: float(np.mean(picks == lab)) for lab in labels if np.any(picks == lab)},
            "loss_ci": [float(x) for x in np.nanpercentile(losses[:, labels.index(best)], q)],
        }
        if runner_up is not None:
            gap = losses[:, labels.index(runner_up)] - losses[:, labels.index(best)]
            out["gap_ci"] = [float(x) for x in np.nanpercentile(gap, q)]
    return out


def answer(result: FitResult, cost: CostModel, budget: Budget, observed: Observed) -> dict[str, Any]:
    """The best precision at one budget under one cost model, with its evidence."""
    table = derived.optimal_precision(result, cost, budget.value)
    labels = [BASE_LABEL, *result.labels]
    top = table.iloc[0]
    best = {"N": float(top["N"]), "D": float(top["D"]), "search_bound_hit": bool(top["search_bound_hit"])}
    runner_up = str(table["label"].iloc[1]) if len(table) > 1 else None
    reasons = _extrapolation(best, cost, budget.value, observed)
    contradiction = _contradiction(float(top["loss"]), cost, budget.value, observed)
    rows = table.replace({np.inf: None}).to_dict("records")
    return {
        "cost_model": cost.name, "unit": cost.unit, "budget": budget.value, "budget_source": budget.source,
        "best": str(top["label"]), "loss": float(top["loss"]), "N": best["N"],
        "D": best["D"] if np.isfinite(best["D"]) else None,
        "data_rich_limit": cost.scales_with == "N",
        "runner_up": runner_up, "gap": float(table["loss"].iloc[1] - top["loss"]) if runner_up else None,
        "bootstrap": _bootstrap(result, labels, cost, budget.value, str(top["label"]), runner_up),
        "extrapolated": bool(reasons), "reasons": reasons, "search_bound_hit": best["search_bound_hit"],
        "contradicted_by": contradiction, "table": rows,
    }


def build_answers(result: FitResult, runs: pd.DataFrame, models: dict[str, CostModel],
                  budgets: tuple[tuple[str, float], ...] = ()) -> dict[str, Any]:
    """{cost model name: {"cost_model": description, "answers": [answer per budget]}} for every model."""
    observed = Observed.of(runs, models)
    out: dict[str, Any] = {name: {"cost_model": m.describe(), "answers": []} for name, m in models.items()}
    for budget in default_budgets(observed, budgets):
        out[budget.cost]["answers"].append(answer(result, models[budget.cost], budget, observed))
    return out
