"""Batches of candidate runs for `suggest`: the cheap ensemble screen and the ways batches are built.

Every batch respects the two limits of a suggestion: at most `n` runs and a total cost within the
budget.  A candidate's *effective* cost is max(cost, budget left / runs left): the budget's share per
remaining run, so a cheap run is not preferred when the run count, not the budget, binds.

- `screen_batch`: greedy by the screen's expected narrowing per effective cost;
- `largest_batch`: the largest models (then the most tokens) still affordable — "train bigger";
- `sampled_batch`: candidates drawn in turn with probability ∝ the screen's narrowing per effective cost;
- `swaps`: a batch with one run replaced by each of the screen's best alternatives.
`suggest` simulates and refits them all and keeps the narrowest.
"""
from __future__ import annotations

import math

import numpy as np

SCREEN_FLOOR = 0.01  # the screen's expected relative narrowing below which `screen_batch` stops
EXPLORE = 0.05  # `sampled_batch`: weight of every affordable candidate next to the best one's 1


def affordable_rows(cost: np.ndarray, usable: np.ndarray, batch: list[int], n: int, budget: float,
                    reserve_slots: bool = False) -> np.ndarray:
    """Usable candidates that fit next to `batch` within `budget`; with `reserve_slots`, leaving room
    for the cheapest candidates in the remaining of `n` slots."""
    left = budget - float(cost[batch].sum())
    ok = usable.copy()
    ok[batch] = False
    rest = np.nonzero(ok)[0]
    if reserve_slots and n - len(batch) > 1 and math.isfinite(left):
        left -= np.sort(cost[rest])[:n - len(batch) - 1].sum()
    return rest[cost[rest] <= left * (1 + 1e-12)]


def effective_cost(cost: np.ndarray, left: np.ndarray, batch: list[int], n: int, budget: float) -> np.ndarray:
    """max(cost, budget left / runs left) of the candidates `left` next to `batch` (1 with no budget):
    a cheap run is not preferred when the run count, not the budget, binds."""
    share = (budget - float(cost[batch].sum())) / max(n - len(batch), 1)
    return np.maximum(cost[left], share) if math.isfinite(share) else np.ones(left.size)


class EnsembleScreen:
    """Linear-Gaussian preposterior variance from the bootstrap ensemble.

    Over the replicates, the target t and the candidates' predicted log losses f have a joint
    covariance Σ.  Observing candidate j (its log loss with noise σ²) leaves Var(t) − Σ_tj²/(Σ_jj + σ²);
    `condition(j)` updates Σ for it (rank one), so later choices account for earlier ones.  No
    Jacobian: the ensemble carries the fit's actual (nonlinear, bounded) spread.
    """

    def __init__(self, target: np.ndarray, preds: np.ndarray, noise: float) -> None:
        X = np.column_stack([target, preds])
        X = X[np.all(np.isfinite(X), axis=1)]
        X = X - X.mean(axis=0)
        self.cov = X.T @ X / max(len(X) - 1, 1)
        self.noise2 = noise ** 2

    @property
    def var(self) -> float:
        return float(self.cov[0, 0])

    def var_after(self, js: np.ndarray) -> np.ndarray:
        """Var(t) after also observing candidate j, for each j in `js`."""
        s = np.asarray(js, int) + 1
        return self.cov[0, 0] - self.cov[0, s] ** 2 / (self.cov[s, s] + self.noise2)

    def copy(self) -> "EnsembleScreen":
        out = object.__new__(EnsembleScreen)
        out.cov, out.noise2 = self.cov.copy(), self.noise2
        return out

    def condition(self, j: int) -> None:
        v = self.cov[:, j + 1].copy()
        self.cov -= np.outer(v, v) / (v[j + 1] + self.noise2)

    def given(self, rows: list[int]) -> "EnsembleScreen":
        out = self.copy()
        for j in rows:
            out.condition(j)
        return out


class Batches:
    """Batch builders over one candidate pool: `usable` (m,) mask, `cost`, `N`, `D` (m,), at most
    `n` runs within `budget`."""

    def __init__(self, screen: EnsembleScreen, usable: np.ndarray, cost: np.ndarray, N: np.ndarray,
                 D: np.ndarray, n: int, budget: float) -> None:
        self.screen, self.usable, self.cost, self.N, self.D = screen, usable, cost, N, D
        self.n, self.budget = n, budget

    def affordable(self, batch: list[int], reserve_slots: bool = False) -> np.ndarray:
        return affordable_rows(self.cost, self.usable, batch, self.n, self.budget, reserve_slots)

    def scores(self, batch: list[int], left: np.ndarray, screen: EnsembleScreen | None = None) -> np.ndarray:
        """Expected relative narrowing per effective cost of adding each of `left` to `batch`."""
        screen = screen or self.screen.given(batch)
        if left.size == 0 or screen.var <= 0:
            return np.zeros(left.size)
        eff = effective_cost(self.cost, left, batch, self.n, self.budget)
        drop = 1.0 - np.sqrt(np.maximum(screen.var_after(left), 0.0) / screen.var)
        return drop / eff

    def screen_batch(self, prefix: list[int] | None = None) -> list[int]:
        batch = list(prefix or [])
        screen = self.screen.given(batch)
        while len(batch) < self.n:
            left = self.affordable(batch)
            if left.size == 0 or screen.var <= 0:
                break
            drop = 1.0 - np.sqrt(np.maximum(screen.var_after(left), 0.0) / screen.var)
            j = int(np.argmax(self.scores(batch, left, screen)))
            if drop[j] < SCREEN_FLOOR:
                break
            batch.append(int(left[j]))
            screen.condition(int(left[j]))
        return batch

    def largest_batch(self) -> list[int]:
        batch: list[int] = []
        while len(batch) < self.n:
            left = self.affordable(batch, reserve_slots=True)
            if left.size == 0:
                break
            batch.append(int(left[np.lexsort((-self.D[left], -self.N[left]))[0]]))
        return batch

    def sampled_batch(self, rng: np.random.Generator) -> list[int]:
        batch: list[int] = []
        while len(batch) < self.n:
            left = self.affordable(batch, reserve_slots=True)
            if left.size == 0:
                break
            s = np.maximum(self.scores(batch, left), 0.0)
            w = (s / s.max() if s.max() > 0 else s) + EXPLORE
            batch.append(int(rng.choice(left, p=w / w.sum())))
        return batch

    def swaps(self, batch: list[int], i: int, k: int) -> list[list[int]]:
        """`batch` with run i replaced by each of the `k` best alternatives by the screen."""
        rest = batch[:i] + batch[i + 1:]
        left = self.affordable(rest)
        left = left[left != batch[i]]
        order = left[np.argsort(-self.scores(rest, left), kind="stable")][:k]
        return [batch[:i] + [int(j)] + batch[i + 1:] for j in order]

    def order(self, batch: list[int]) -> list[int]:
        """The batch's runs, most valuable first by the screen (for the expected width run by run)."""
        out: list[int] = []
        todo = list(batch)
        while todo:
            screen = self.screen.given(out)
            j = int(np.argmin(screen.var_after(np.array(todo))))
            out.append(todo.pop(j))
        return out
