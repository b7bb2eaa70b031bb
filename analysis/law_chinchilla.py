"""Chinchilla: L(N, D) = E + A/N^α + B/D^β (Hoffmann et al. 2022), fitted on 16-bit runs only."""
from __future__ import annotations

import numpy as np

from quest_lab.analysis.law_base import Design, Law, ParamSpec, chinchilla_specs, register_law, softmax_terms


@register_law("chinchilla")
class ChinchillaLaw(Law):
    formula = "L = E + A/N^α + B/D^β"
    uses_precision = False

    def specs(self) -> list[ParamSpec]:
        return chinchilla_specs()

    def batch_log_predict(self, theta: np.ndarray, d: Design) -> tuple[np.ndarray, np.ndarray]:
        a, b, e, alpha, beta = self.columns(theta, 5)
        lse, (w1, w2, w3) = softmax_terms(a - alpha * d.logN, b - beta * d.logD, e)
        jac = np.stack([w1, w2, w3, -w1 * d.logN, -w2 * d.logD], axis=-1)
        return lse, jac
