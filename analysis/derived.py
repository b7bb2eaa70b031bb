"""Answers derived from a fitted law: efficiency per bit, optimal precision under a memory or
compute budget, compute-optimal N and D, and Pareto frontiers of the observed runs.

Conventions (documented in the report):
- Model memory of a run = w_bits · N (bits of the non-embedding weights).
- Training compute in BF16-equivalent FLOPs: BOPs ≈ 6·N·D·(w_bits·a_bits)/256, i.e. 6ND scaled by
  the cost of a w×a-bit multiply relative to a 16×16 one (so BF16 runs cost exactly 6ND).
- Efficiency per bit of a precision = eff(P)·16/P with P = w_bits (the bits that set memory):
  at a fixed memory budget the effective parameter count N·eff is ∝ eff/P, so the precision with
  the highest eff·16/P gives the lowest loss when data is plentiful (QuEST: 4 bits).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar

from quest_lab.analysis.data import label_bits
from quest_lab.analysis.fit import FitResult
from quest_lab.analysis.law_base import BASE_LABEL

def memory_bits(N, w_bits) -> np.ndarray:
    return np.asarray(w_bits, float) * np.asarray(N, float)


def training_compute(N, D, w_bits=16, a_bits=16) -> np.ndarray:
    """BF16-equivalent training FLOPs: 6·N·D·(w·a)/256."""
    return 6.0 * np.asarray(N, float) * np.asarray(D, float) * np.asarray(w_bits, float) * np.asarray(a_bits, float) / 256.0


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


def optimal_precision_memory(result: FitResult, memory: float, D: float | None = None) -> pd.DataFrame:
    """Predicted loss of each precision at model memory `memory` bits (N = memory / w_bits).

    D = None: data-rich limit (the B/D^β term is the same for every precision and dropped: D → ∞).
    Sorted best first.
    """
    rows = []
    for label in _labels(result):
        w, a = label_bits(label)
        N = memory / w
        loss = float(result.predict(N, 1e300 if D is None else D, label, w, a))
        rows.append({"label": label, "w_bits": w, "a_bits": a, "N": N, "loss": loss})
    return pd.DataFrame(rows).sort_values("loss").reset_index(drop=True)


def compute_optimal(result: FitResult, C: float, label: str | None = None) -> dict[str, float]:
    """N*, D* minimising the fitted loss at training compute C (BF16-equivalent FLOPs, see above)."""
    label = label or BASE_LABEL
    w, a = label_bits(label)
    nd = C * 256.0 / (6.0 * w * a)  # N·D affordable at this precision

    def loss_at(log_n: float) -> float:
        N = np.exp(log_n)
        return float(result.predict(N, nd / N, label, w, a))

    lo, hi = np.log(nd) * 0.05, np.log(nd) * 0.95
    res = minimize_scalar(loss_at, bounds=(lo, hi), method="bounded", options={"xatol": 1e-8})
    N = float(np.exp(res.x))
    return {"label": label, "C": C, "N": N, "D": nd / N, "tokens_per_param": nd / N / N, "loss": float(res.fun)}


def optimal_precision_compute(result: FitResult, C: float) -> pd.DataFrame:
    """Compute-optimal loss of each precision at the same training compute C; best first."""
    return pd.DataFrame([compute_optimal(result, C, lab) for lab in _labels(result)]).sort_values(
        "loss").reset_index(drop=True)


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
