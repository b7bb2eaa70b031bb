"""Paired bootstrap refits for experimental design: what would the target's CI be with extra runs?

A bootstrap replicate b is a vector of multiplicities W[b] on the runs (stratified by precision, as
`bootstrap.resample_weights` draws them).  Here every replicate may also see its own observations
Y[b] — the simulated losses of candidate runs differ per replicate (noise draws) — so the batched
L-BFGS of `optimize.py` runs on a `Problem` whose observations are one row per replicate.  The refit
follows the fitter's stages: base parameters on the 16-bit runs, then the precision parameters with
the base fixed, then (mode "joint") everything, each stage warm-started from the previous estimate.
"""
from __future__ import annotations

import numpy as np

from quest_lab.analysis.law_base import Design, Law
from quest_lab.analysis.optimize import Problem, batched_lbfgs, huber

JITTER = 0.05  # relative jitter of the extra start of a replicate (as optimize.perturbed)
# Tight enough: on the sum-Huber objective maxiter 150 / ftol 1e-10 leave replicates short of their
# optimum and move an 80 % interval width by ~10 % (more than one run's effect); these settings stay
# within ~1 % of maxiter 1000 / ftol 1e-15 at half its cost.
LBFGS = {"maxiter": 300, "ftol": 1e-13, "gtol": 1e-10}


class ReplicateProblem(Problem):
    """A `Problem` whose observations differ per weights row: `Y` (K, n) replaces `d.y`."""

    def __init__(self, law: Law, d: Design, free: np.ndarray, theta_fixed: np.ndarray, delta: float,
                 weights: np.ndarray, Y: np.ndarray) -> None:
        super().__init__(law, d, free, theta_fixed, delta, weights)
        self.Y = np.asarray(Y, float)

    def batch_fun(self, X: np.ndarray, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        rows = np.zeros(len(np.atleast_2d(X)), int) if rows is None else rows
        theta = np.atleast_2d(self.full(X, rows))
        logp, jac = self.law.batch_log_predict(theta, self.d)
        r = logp - self.Y[rows]
        w = self.weights[rows]
        f = (huber(r, self.delta) * w).sum(axis=1)
        g = np.einsum("kn,knp->kp", np.clip(r, -self.delta, self.delta) * w, jac[..., self.free])
        return f, g


def stage_masks(law: Law) -> np.ndarray:
    """True for base-stage parameters (A, B, E, α, β), False for precision parameters."""
    return np.array([s.stage == "base" for s in law.specs()])


def _stage(law: Law, d: Design, free: np.ndarray, theta: np.ndarray, W: np.ndarray, Y: np.ndarray,
           delta: float, rng: np.random.Generator | None, extra: np.ndarray | None = None) -> np.ndarray:
    """Refit the `free` parameters of every replicate from its current `theta` (B, p), plus one
    jittered copy of it when `rng` is given, plus `extra` (B, p) starts; NaN rows where every start
    failed."""
    specs = law.specs()
    lo = np.array([s.lower for s, f in zip(specs, free) if f])
    hi = np.array([s.upper for s, f in zip(specs, free) if f])
    x = theta[:, free]
    starts = [x]
    if rng is not None:
        starts.append(np.clip(x + rng.normal(0.0, JITTER, x.shape) * (1.0 + np.abs(x)), lo, hi))
    if extra is not None:
        starts.append(extra[:, free])
    S, B = len(starts), len(theta)
    X0 = np.stack(starts, axis=1).reshape(B * S, -1)
    rows = np.repeat(np.arange(B), S)
    prob = ReplicateProblem(law, d, free, theta[rows], delta, W[rows], Y[rows])
    X, f = batched_lbfgs(prob, X0, **LBFGS)
    f = np.where(np.isfinite(f), f, np.inf).reshape(B, S)
    best = np.argmin(f, axis=1) + np.arange(B) * S
    out = prob.full(X[best], best)  # `best` indexes the expanded (B·S) rows of prob.theta
    out[~np.isfinite(f.min(axis=1))] = np.nan
    return out


def refit_replicates(law: Law, d: Design, W: np.ndarray, Y: np.ndarray, theta: np.ndarray, mode: str,
                     delta: float, seed: int | None = None, extra: np.ndarray | None = None) -> np.ndarray:
    """(B, p) internal parameters of B replicates (weights W (B, n), observations Y (B, n)),
    warm-started at `theta` (B, p) — plus a jittered start each when `seed` is given, plus `extra`
    (B, p) — and staged like the fitter."""
    rng = None if seed is None else np.random.default_rng(seed)
    base = stage_masks(law)
    theta = np.array(theta, float)
    rows = np.nonzero(d.is_base)[0] if law.uses_precision else np.arange(d.n)
    theta = _stage(law, d.subset(rows), base, theta, W[:, rows], Y[:, rows], delta, rng, extra)
    if (~base).any() and law.uses_precision:
        theta = _stage(law, d, ~base, np.nan_to_num(theta), W, Y, delta, rng, extra)
        if mode == "joint":
            theta = _stage(law, d, np.ones(len(base), bool), np.nan_to_num(theta), W, Y, delta, rng, extra)
    return theta
