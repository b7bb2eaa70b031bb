"""Linearised design: a question's CI width under the Fisher information of a law at given parameters,
for any set of runs, and the best batch it can find (c-optimal design).  `benchmarks/suggest.py`
evaluates it at the *true* law as a yardstick; `suggest` adds its batch at the point fit to the portfolio.

For log losses y = log L(θ) + ε, ε ~ N(0, σ²), the asymptotic variance of a scalar target t(θ) is
σ² gᵀ (Jᵀ J)⁻¹ g, with J the Jacobian of log L over the runs and g = ∂t/∂θ, both at θ (Chernoff's
local c-optimality; Atkinson, Donev & Tobias, *Optimum Experimental Designs*, 2007, ch. 10 and 17).
Its 80 % width is 2·z₀.₉·σ·√(gᵀ (Jᵀ J)⁻¹ g).  A Huber fit (threshold δ on the residuals of log loss, as
`quest-lab fit` makes) is an M-estimator: its variance is that of least squares times
E[ψ²]/E[ψ′]² for Gaussian residuals (Huber, *Ann. Math. Statist.* 35, 1964), which is π/2 as δ/σ → 0
(the L1 limit) and 1 as δ/σ → ∞.  Adding a run j is a rank-one update (Sherman–Morrison):
v' = v − (gᵀ M⁻¹ jⱼ)² / (1 + jⱼᵀ M⁻¹ jⱼ), so every candidate is scored at once.  The batch is greedy (the
largest variance drop per effective cost max(cost, budget left / runs left), as
`suggest_batches.Batches.scores`) and then improved by exchanges (each run against every affordable
candidate) until none helps.  At the truth this is an optimum no method could beat to first order
without knowing the truth, so it bounds what any design can gain over random or largest-first batches.
"""
from __future__ import annotations

import math

import numpy as np

from quest_lab.analysis.suggest_batches import affordable_rows, effective_cost

Z90 = 1.2815515655446004  # standard normal 0.9 quantile: the 80 % central interval is ±Z90·sd
RIDGE = 1e-10  # relative ridge on the information matrix: parameters the runs cannot move (at a bound)


def huber_factor(delta: float | None, sigma: float) -> float:
    """E[ψ²]/E[ψ′]² / σ² of the Huber loss with threshold `delta` on N(0, σ²) residuals (None: 1, least
    squares): the variance of the Huber fit relative to the least-squares fit."""
    if delta is None or not math.isfinite(delta):
        return 1.0
    k = delta / sigma
    phi, inside = math.exp(-k * k / 2) / math.sqrt(2 * math.pi), math.erf(k / math.sqrt(2))  # φ(k), 2Φ(k) − 1
    e_psi2 = (inside - 2 * k * phi) + k * k * (1 - inside)  # in units of σ²
    return e_psi2 / inside ** 2


class LinearYardstick:
    """Fisher-information widths at `theta` (internal parameters of `law`) for the runs of design `d0`
    plus candidate rows of `dc`; `target` is a bound question (`Target.values`)."""

    def __init__(self, law, theta: np.ndarray, d0, dc, target, sigma: float, delta: float | None = None,
                 eps: float = 1e-5) -> None:
        theta = np.asarray(theta, float)
        self.sigma = sigma * math.sqrt(huber_factor(delta, sigma))
        self.Jc = law.log_predict(theta, dc)[1]
        J0 = law.log_predict(theta, d0)[1]
        p = len(theta)
        h = eps * np.maximum(1.0, np.abs(theta))
        steps = np.diag(h)
        self.g = (target.values(theta + steps) - target.values(theta - steps)) / (2 * h)
        self.M0 = J0.T @ J0
        self.ridge = RIDGE * max(float(np.trace(self.M0)) / p, 1e-300) * np.eye(p)

    def _inv(self, rows) -> np.ndarray:
        J = self.Jc[np.asarray(list(rows), int)]
        return np.linalg.pinv(self.M0 + J.T @ J + self.ridge, hermitian=True)

    def _to_width(self, v) -> np.ndarray:
        return 2 * Z90 * self.sigma * np.sqrt(np.maximum(v, 0.0))

    def width(self, rows) -> float:
        Minv = self._inv(rows)
        return float(self._to_width(self.g @ Minv @ self.g))

    def widths_after(self, rows, js: np.ndarray) -> np.ndarray:
        """Width with `rows` plus each single candidate of `js` (vectorised rank-one updates)."""
        Minv = self._inv(rows)
        u = Minv @ self.g
        Jj = self.Jc[np.asarray(js, int)]
        a = Jj @ u
        c = np.einsum("ij,jk,ik->i", Jj, Minv, Jj)
        return self._to_width(self.g @ u - a * a / (1.0 + c))

    def oracle(self, cost: np.ndarray, n: int, budget: float, max_passes: int = 10) -> list[int]:
        """Greedy by width drop per effective cost, then exchanges, within `n` runs and `budget`;
        candidates of non-finite cost are never chosen."""
        cost = np.asarray(cost, float)
        usable = np.isfinite(cost)

        def affordable(b: list[int], reserve: bool) -> np.ndarray:
            return affordable_rows(cost, usable, b, n, budget, reserve)

        batch: list[int] = []
        while len(batch) < n:
            left = affordable(batch, reserve=True)
            if left.size == 0:
                break
            gain = (self.width(batch) - self.widths_after(batch, left)) / effective_cost(cost, left, batch, n, budget)
            batch.append(int(left[int(np.argmax(gain))]))
        for _ in range(max_passes):
            improved = False
            for i in range(len(batch)):
                rest = batch[:i] + batch[i + 1:]
                left = affordable(rest, reserve=False)
                if left.size == 0:
                    continue
                widths = self.widths_after(rest, left)
                k = int(np.argmin(widths))
                if widths[k] < self.width(batch) * (1 - 1e-6):
                    batch = rest[:i] + [int(left[k])] + rest[i:]
                    improved = True
            if not improved:
                break
        return batch
