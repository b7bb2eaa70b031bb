"""QuEST: precision as effective parameters, L = A/(N·eff(P))^α + B/D^β + E.

One free efficiency per precision label "<quantizer>:w<w>a<a>", bounded to (0, 1.05];
full-precision runs have eff = 1 by definition (QuEST paper, docs/design.md §4).
"""
from __future__ import annotations

import numpy as np

from quest_lab.analysis.law_base import Design, Law, ParamSpec, chinchilla_specs, register_law, softmax_terms

EFF_LOWER, EFF_UPPER = 1e-3, 1.05
EFF_GRID = (0.25, 0.5, 0.75, 1.0)


@register_law("quest")
class QuestLaw(Law):
    formula = "L = A/(N·eff(P))^α + B/D^β + E"

    def specs(self) -> list[ParamSpec]:
        return chinchilla_specs() + [
            ParamSpec(f"eff[{lab}]", EFF_LOWER, EFF_UPPER, EFF_GRID, stage="precision", neutral=1.0)
            for lab in self.labels
        ]

    def batch_log_predict(self, theta: np.ndarray, d: Design) -> tuple[np.ndarray, np.ndarray]:
        a, b, e, alpha, beta = self.columns(theta, 5)
        eff = theta[:, 5:]
        quant = d.label_idx >= 0
        k = np.where(quant, d.label_idx, 0)
        u = np.where(quant, eff[:, k], 1.0) if eff.shape[1] else np.ones((len(theta), d.n))
        logNeff = d.logN + np.log(u)
        lse, (w1, w2, w3) = softmax_terms(a - alpha * logNeff, b - beta * d.logD, e)
        jac = np.zeros((len(theta), d.n, theta.shape[1]))
        jac[..., 0], jac[..., 1], jac[..., 2] = w1, w2, w3
        jac[..., 3], jac[..., 4] = -w1 * logNeff, -w2 * d.logD
        if eff.shape[1]:
            rows = np.nonzero(quant)[0]
            jac[:, rows, 5 + k[rows]] = (-alpha * w1 / u)[:, rows]
        return lse, jac

    def joint_starts(self, d: Design) -> np.ndarray:
        """Global starts by variable projection: per-precision amplitudes A_g = A·eff_g^(−α) are linear
        at fixed (α, β), so eff_g = (A_0/A_g)^(1/α) (optimize.grouped_varpro)."""
        if not self.labels or not d.is_base.any():
            return super().joint_starts(d)
        K = len(self.labels)
        out = []
        from quest_lab.analysis.optimize import grouped_varpro  # scipy: only when fitting

        for alpha, beta, *coef in grouped_varpro(d):
            amp = np.maximum(np.asarray(coef[:K + 1]), 1e-300)
            with np.errstate(over="ignore"):
                eff = (amp[0] / amp[1:]) ** (1.0 / alpha)
            out.append([np.log(max(amp[0], 1e-4)), np.log(max(coef[K + 1], 1e-4)), np.log(max(coef[K + 2], 1e-2)),
                        alpha, beta, *np.nan_to_num(eff, nan=1.0, posinf=EFF_UPPER)])
        return self.clip(np.array(out))

    def eff_of(self, theta: np.ndarray, label: str, w_bits: float, a_bits: float) -> float:
        return 1.0 if label not in self.labels else float(theta[5 + self.labels.index(label)])
