"""Kumar et al. 2024 ("Scaling laws for precision"), pre-training part:
L = A/N_eff^α + B/D^β + E with N_eff = N·(1 − e^(−P_w/γ_w))·(1 − e^(−P_a/γ_a)).

γ_w and γ_a are shared by all quantizers (fit one quantizer at a time with --where to compare).
The post-training-quantization term is not modelled (we only fit quantization-aware training).
"""
from __future__ import annotations

import numpy as np

from quest_lab.analysis.law_base import Design, Law, ParamSpec, chinchilla_specs, register_law, softmax_terms

GAMMA_GRID = (0.5, 1.0, 2.0, 4.0)


def _log_sat(P: np.ndarray, gamma: float) -> tuple[np.ndarray, np.ndarray]:
    """log(1 − e^(−P/γ)) and its derivative with respect to γ."""
    x = P / gamma
    val = np.log(-np.expm1(-x))
    dgamma = -(x / gamma) / np.expm1(x)
    return val, dgamma


@register_law("kumar")
class KumarLaw(Law):
    formula = "L = A/(N·(1−e^(−Pw/γw))·(1−e^(−Pa/γa)))^α + B/D^β + E"

    def specs(self) -> list[ParamSpec]:
        # neutral γ = 0.2: 1 − e^(−16/0.2) = 1, so 16-bit runs see N_eff = N in the base stage
        return chinchilla_specs() + [
            ParamSpec("gamma_w", 0.05, 16.0, GAMMA_GRID, stage="precision", neutral=0.2),
            ParamSpec("gamma_a", 0.05, 16.0, GAMMA_GRID, stage="precision", neutral=0.2),
        ]

    def batch_log_predict(self, theta: np.ndarray, d: Design) -> tuple[np.ndarray, np.ndarray]:
        a, b, e, alpha, beta, gw, ga = self.columns(theta, 7)
        sw, dsw = _log_sat(d.w_bits, gw)
        sa, dsa = _log_sat(d.a_bits, ga)
        logNeff = d.logN + sw + sa
        lse, (w1, w2, w3) = softmax_terms(a - alpha * logNeff, b - beta * d.logD, e)
        jac = np.stack([w1, w2, w3, -w1 * logNeff, -w2 * d.logD,
                        -alpha * w1 * dsw, -alpha * w1 * dsa], axis=-1)
        return lse, jac

    def eff_of(self, theta: np.ndarray, label: str, w_bits: float, a_bits: float) -> float:
        """N_eff/N of this precision relative to 16-bit: the law's saturation factors."""
        gw, ga = float(theta[5]), float(theta[6])
        sat = lambda p, g: -np.expm1(-p / g)  # noqa: E731
        return float(sat(w_bits, gw) * sat(a_bits, ga) / (sat(16.0, gw) * sat(16.0, ga)))
