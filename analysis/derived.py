"""Answers derived from a fitted law: efficiency per bit, the best precision under a cost model at
a budget, compute-optimal N and D, and Pareto frontiers of the observed runs.

Costs come from the cost-model registry (cost.py): `memory` (w_bits·N), `bops` (N·D·w·a) and
`train_flops` (forward at the hardware rate of max(w, a) bits, backward in full precision).
- Memory budget M (scales with N): each precision at N = M/w_bits, in the data-rich limit D → ∞
  (for the QuEST law the ranking does not depend on D: the data term is shared).
- Compute budget C (scales with N·D): each precision at its loss-minimising N, with N·D = C/factor(w, a);
  a bounded 1-D search over log N (grid, then golden section), vectorised over bootstrap draws.
- Efficiency per bit of a precision = eff(P)·16/P with P = w_bits: at a fixed memory budget N·eff
  is ∝ eff/P, so the highest eff·16/P gives the lowest loss when data is plentiful (QuEST: 4 bits).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from quest_lab.analysis.cost import CostModel, get_cost_model
from quest_lab.analysis.data import label_bits
from quest_lab.analysis.fit import FitResult
from quest_lab.analysis.law_base import BASE_LABEL, Design, Law

DATA_RICH_D = 1e300  # "D → ∞": the data term vanishes (B/D^β ≈ 0 for any β > 0)
SEARCH_SPAN = (0.05, 0.95)  # log N searched within these fractions of log(N·D): N and D both >= (N·D)^0.05
GRID_POINTS, GOLDEN_STEPS = 241, 60


def memory_bits(N, w_bits) -> np.ndarray:
    """Bits of the non-embedding weights (the `memory` cost model)."""
    return get_cost_model("memory").cost(N, 1.0, w_bits, 16)


def _log_losses(law: Law, thetas: np.ndarray, label: str, N: np.ndarray, D: np.ndarray) -> np.ndarray:
    """log L for every theta (K, p) at every point (N, D) of one precision label: (K, n)."""
    w, a = label_bits(label)
    d = Design(np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0, int), law.labels, np.zeros(0))
    with np.errstate(all="ignore"):
        return law.batch_log_predict(thetas, d.with_inputs(N, D, label, w, a))[0]


def _row_log_losses(law: Law, thetas: np.ndarray, label: str, N: np.ndarray, D: np.ndarray,
                    chunk: int = 128) -> np.ndarray:
    """log L of theta k at its own point (N_k, D_k): (K,)."""
    out = np.empty(len(thetas))
    for s in range(0, len(thetas), chunk):
        sl = slice(s, s + chunk)
        out[sl] = np.diagonal(_log_losses(law, thetas[sl], label, N[sl], D[sl]))
    return out


def optimal_points(law: Law, thetas: np.ndarray, label: str, cost: CostModel, budget: float) -> dict[str, np.ndarray]:
    """For each parameter vector (K, p): the loss-minimising N, D of `label` at `budget` under `cost`,
    its loss, and whether the search ended on a bound.  Arrays of length K."""
    thetas = np.atleast_2d(thetas)
    K = len(thetas)
    w, a = label_bits(label)
    factor = float(cost.factor(w, a))
    if cost.scales_with == "N":  # memory: N fixed by the budget, data-rich limit
        N = np.full(K, budget / factor)
        with np.errstate(over="ignore"):  # a law whose loss grows with D (qat's δ) overflows here: inf, not a warning
            loss = np.exp(_log_losses(law, thetas, label, N[:1], np.array([DATA_RICH_D]))[:, 0])
        return {"N": N, "D": np.full(K, np.inf), "loss": loss, "at_bound": np.zeros(K, bool)}
    nd = budget / factor
    lo, hi = (f * np.log(nd) for f in SEARCH_SPAN)
    grid = np.linspace(lo, hi, GRID_POINTS)
    vals = _log_losses(law, thetas, label, np.exp(grid), nd / np.exp(grid))
    vals = np.where(np.isfinite(vals), vals, np.inf)
    i = np.argmin(vals, axis=1)
    step = grid[1] - grid[0]
    left, right = np.maximum(grid[i] - step, lo), np.minimum(grid[i] + step, hi)
    g = (np.sqrt(5.0) - 1) / 2  # golden section inside the bracketing grid cells, x1 < x2
    x1, x2 = right - g * (right - left), left + g * (right - left)
    f1 = _row_log_losses(law, thetas, label, np.exp(x1), nd / np.exp(x1))
    f2 = _row_log_losses(law, thetas, label, np.exp(x2), nd / np.exp(x2))
    for _ in range(GOLDEN_STEPS):
        keep_left = f1 < f2  # the minimum lies in [left, x2]: x2 ← x1, new x1; else x1 ← x2, new x2
        right = np.where(keep_left, x2, right)
        left = np.where(keep_left, left, x1)
        new = np.where(keep_left, right - g * (right - left), left + g * (right - left))
        fn = _row_log_losses(law, thetas, label, np.exp(new), nd / np.exp(new))
        x1, x2, f1, f2 = (np.where(keep_left, new, x2), np.where(keep_left, x1, new),
                          np.where(keep_left, fn, f2), np.where(keep_left, f1, fn))
    best = np.argmin(np.stack([vals[np.arange(K), i], f1, f2]), axis=0)
    x = np.choose(best, [grid[i], x1, x2])
    logl = np.choose(best, [vals[np.arange(K), i], f1, f2])
    tol = 1e-6 * (hi - lo)
    at_bound = (x - lo <= tol) | (hi - x <= tol)
    N = np.exp(x)
    return {"N": N, "D": nd / N, "loss": np.exp(logl), "at_bound": at_bound}


def compute_optimal(result: FitResult, C: float, label: str | None = None,
                    cost: CostModel | None = None) -> dict[str, float]:
    """N*, D* minimising the fitted loss of `label` at cost C (default cost model: train_flops)."""
    label = label or BASE_LABEL
    cost = cost or get_cost_model("train_flops")
    pt = optimal_points(result.model, result.theta[None, :], label, cost, C)
    N, D = float(pt["N"][0]), float(pt["D"][0])
    return {"label": label, "cost_model": cost.name, "C": C, "N": N, "D": D, "tokens_per_param": D / N,
            "loss": float(pt["loss"][0]), "search_bound_hit": bool(pt["at_bound"][0])}


def optimal_precision(result: FitResult, cost: CostModel, budget: float) -> pd.DataFrame:
    """Each precision at its best (N, D) for `budget` under `cost`; best (lowest loss) first."""
    rows = []
    for label in _labels(result):
        pt = optimal_points(result.model, result.theta[None, :], label, cost, budget)
        w, a = label_bits(label)
        rows.append({"label": label, "w_bits": w, "a_bits": a, "N": float(pt["N"][0]), "D": float(pt["D"][0]),
                     "loss": float(pt["loss"][0]), "search_bound_hit": bool(pt["at_bound"][0])})
    return pd.DataFrame(rows).sort_values("loss", kind="stable").reset_index(drop=True)


def optimal_precision_memory(result: FitResult, memory: float) -> pd.DataFrame:
    """Predicted loss of each precision at model memory `memory` bits (N = memory/w_bits, D → ∞)."""
    return optimal_precision(result, get_cost_model("memory"), memory)


def optimal_precision_compute(result: FitResult, C: float, cost: CostModel | None = None) -> pd.DataFrame:
    """Compute-optimal loss of each precision at the same cost C (default: train_flops); best first."""
    return optimal_precision(result, cost or get_cost_model("train_flops"), C)


def efficiency_per_bit(result: FitResult) -> pd.DataFrame:
    """One row per precision: eff, its CI, eff·16/P and its CI (P = w_bits); base included (eff 1).

    eff is the law's parameter efficiency (quest: eff, quartet: effN, kumar: its saturation
    factors relative to 16 bits); CIs come from the bootstrap where the law has eff parameters.
    """
    law = result.model
    rows = [{"label": BASE_LABEL, "w_bits": 16.0, "a_bits": 16.0, "eff": 1.0, "eff_lo": 1.0, "eff_hi": 1.0}]
    for label in result.labels:
        w, a = label_bits(label)
        lo, hi = result.ci.get(f"eff[{label}]", result.ci.get(f"effN[{label}]", (np.nan, np.nan)))
        rows.append({"label": label, "w_bits": w, "a_bits": a, "eff": law.eff_of(result.theta, label, w, a),
                     "eff_lo": lo, "eff_hi": hi})
    df = pd.DataFrame(rows)
    for col in ("eff", "eff_lo", "eff_hi"):
        df[col.replace("eff", "eff_per_bit")] = df[col] * 16.0 / df["w_bits"]
    return df.sort_values("eff_per_bit", ascending=False).reset_index(drop=True)


def _labels(result: FitResult) -> list[str]:
    return [BASE_LABEL] + list(result.labels)


def pareto_mask(cost: np.ndarray, loss: np.ndarray) -> np.ndarray:
    """True for runs no other run dominates (another run as good on cost and loss and better on one;
    lower is better for both).  Exact duplicates are all on the frontier; runs with a NaN or
    infinite cost or loss never are (and do not dominate)."""
    cost, loss = np.asarray(cost, float), np.asarray(loss, float)
    mask = np.zeros(cost.size, bool)
    best, best_cost = np.inf, np.nan
    for i in np.lexsort((loss, cost)):
        if not (np.isfinite(cost[i]) and np.isfinite(loss[i])):
            continue
        if loss[i] < best or (loss[i] == best and cost[i] == best_cost):
            mask[i] = True
            best, best_cost = loss[i], cost[i]
    return mask
