"""Quartet (Castro, Panferov et al. 2025, arXiv 2505.14669): L = (A/(N·effN)^α + B/(D·effD)^β)^γ + E.

One parameter efficiency effN and one data efficiency effD per precision label, both bounded to
(0, 1.05]; 1 for full precision.  Its base is not of the Chinchilla form (γ), so variable
projection does not apply; the base stage uses the smaller starting grid declared here (144
starts: its extra exponent γ makes each start costlier than Chinchilla's).
"""
from __future__ import annotations

import numpy as np

from quest_lab.analysis.law_base import Design, Law, ParamSpec, register_law, softmax_terms
from quest_lab.analysis.law_quest import EFF_LOWER, EFF_UPPER

EFF_GRID = (0.5, 1.0)


@register_law("quartet")
class QuartetLaw(Law):
    formula = "L = (A/(N·effN)^α + B/(D·effD)^β)^γ + E"
    chinchilla_base = False

    def specs(self) -> list[ParamSpec]:
        specs = [
            ParamSpec("A", -10.0, 60.0, (0.0, 5.0, 10.0), log=True),
            ParamSpec("B", -10.0, 60.0, (0.0, 5.0, 10.0), log=True),
            ParamSpec("E", -5.0, 3.0, (0.0, 1.0), log=True),
            ParamSpec("alpha", 0.0, 4.0, (0.3, 0.6)),
            ParamSpec("beta", 0.0, 4.0, (0.3, 0.6)),
            ParamSpec("gamma", 0.1, 5.0, (0.7, 1.4)),
        ]
        for lab in self.labels:
            specs.append(ParamSpec(f"effN[{lab}]", EFF_LOWER, EFF_UPPER, EFF_GRID, stage="precision", neutral=1.0))
        for lab in self.labels:
            specs.append(ParamSpec(f"effD[{lab}]", EFF_LOWER, EFF_UPPER, EFF_GRID, stage="precision", neutral=1.0))
        return specs

    def batch_log_predict(self, theta: np.ndarray, d: Design) -> tuple[np.ndarray, np.ndarray]:
        a, b, e, alpha, beta, gamma = self.columns(theta, 6)
        K = len(self.labels)
        quant = d.label_idx >= 0
        k = np.where(quant, d.label_idx, 0)
        if K:
            uN = np.where(quant, theta[:, 6 + k], 1.0)
            uD = np.where(quant, theta[:, 6 + K + k], 1.0)
        else:
            uN = uD = np.ones((len(theta), d.n))
        xN, xD = d.logN + np.log(uN), d.logD + np.log(uD)
        logS, (v1, v2) = softmax_terms(a - alpha * xN, b - beta * xD)
        lse, (w1, w2) = softmax_terms(gamma * logS, e)
        g = w1 * gamma  # d lse / d logS
        jac = np.zeros((len(theta), d.n, theta.shape[1]))
        jac[..., 0], jac[..., 1], jac[..., 2] = g * v1, g * v2, w2
        jac[..., 3], jac[..., 4], jac[..., 5] = -g * v1 * xN, -g * v2 * xD, w1 * logS
        if K:
            rows = np.nonzero(quant)[0]
            jac[:, rows, 6 + k[rows]] = (-alpha * g * v1 / uN)[:, rows]
            jac[:, rows, 6 + K + k[rows]] = (-beta * g * v2 / uD)[:, rows]
        return lse, jac

    def eff_of(self, theta: np.ndarray, label: str, w_bits: float, a_bits: float) -> float:
        return 1.0 if label not in self.labels else float(theta[6 + self.labels.index(label)])
