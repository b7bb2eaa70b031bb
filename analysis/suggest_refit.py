"""Paired bootstrap refits for experimental design: what would the target's CI be with extra runs?

A bootstrap replicate b is a vector of multiplicities W[b] on the runs (stratified by precision, as
`bootstrap.resample_weights` draws them).  Here every replicate may also see its own observations
Y[b] — the simulated losses of candidate runs differ per replicate (noise draws) — so the batched
Levenberg–Marquardt of `optimize.py` runs on a `Problem` whose observations are one row per
replicate.  The refit follows the fit's mode exactly as `bootstrap.py` refits its resamples: `joint`
(the default of most laws) frees every parameter at once; `staged` refits the base parameters on the
16-bit runs, then the precision parameters with the base fixed.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from quest_lab.analysis import data as data_mod
from quest_lab.analysis.bootstrap import resample_weights
from quest_lab.analysis.fit import FitConfig, fit_frame
from quest_lab.analysis.law_base import Design, Law
from quest_lab.analysis.optimize import Problem, batched_lm

JITTER = 0.05  # relative jitter of the extra start of a replicate (as optimize.perturbed)


class ReplicateProblem(Problem):
    """A `Problem` whose observations differ per weights row: `Y` (K, n) replaces `d.y`."""

    def __init__(self, law: Law, d: Design, free: np.ndarray, theta_fixed: np.ndarray, delta: float,
                 weights: np.ndarray, Y: np.ndarray) -> None:
        super().__init__(law, d, free, theta_fixed, delta, weights)
        self.Y = np.asarray(Y, float)

    def terms(self, X: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        theta = self.full(X, rows)
        logp, jac = self.law.batch_log_predict(theta, self.d)
        return logp - self.Y[rows], jac[..., self.free], self.weights[rows]


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
    X, f = batched_lm(prob, X0)
    f = np.where(np.isfinite(f), f, np.inf).reshape(B, S)
    best = np.argmin(f, axis=1) + np.arange(B) * S
    out = prob.full(X[best], best)  # `best` indexes the expanded (B·S) rows of prob.theta
    out[~np.isfinite(f.min(axis=1))] = np.nan
    return out


def refit_replicates(law: Law, d: Design, W: np.ndarray, Y: np.ndarray, theta: np.ndarray, mode: str,
                     delta: float, seed: int | None = None, extra: np.ndarray | None = None) -> np.ndarray:
    """(B, p) internal parameters of B replicates (weights W (B, n), observations Y (B, n)),
    warm-started at `theta` (B, p) — plus a jittered start each when `seed` is given, plus `extra`
    (B, p) — refitted in the fit's `mode` ("joint": all parameters at once; "staged": base on the
    16-bit runs, then the precision parameters), as `bootstrap.py` refits its resamples."""
    rng = None if seed is None else np.random.default_rng(seed)
    base = stage_masks(law)
    theta = np.array(theta, float)
    staged = law.uses_precision and (~base).any()
    if mode == "joint" and staged:
        return _stage(law, d, np.ones(len(base), bool), theta, W, Y, delta, rng, extra)
    rows = np.nonzero(d.is_base)[0] if law.uses_precision else np.arange(d.n)
    theta = _stage(law, d.subset(rows), base, theta, W[:, rows], Y[:, rows], delta, rng, extra)
    if staged:
        theta = _stage(law, d, ~base, np.nan_to_num(theta), W, Y, delta, rng, extra)
    return theta


@dataclass(frozen=True)
class Replicates:
    """One paired-bootstrap ensemble for simulate-and-refit: B replicates of the runs (weights `W`), each
    refitted (`theta_b`); per replicate and candidate one noise draw `E` and one resampling multiplicity
    `M` (the stratified bootstrap would draw a new run Binomial(n_label + 1, 1/(n_label + 1)) times);
    and the plausible truth the replicate simulates the candidates from (`truth`: one of `n_truths`
    refits, replicate b using truth b mod n_truths = `groups`), with its predicted log losses `mu`."""

    W: np.ndarray  # (B, n)
    E: np.ndarray  # (B, m)
    M: np.ndarray  # (B, m)
    theta_b: np.ndarray  # (B, p)
    groups: np.ndarray  # (B,)
    truth: np.ndarray  # (B, p)
    mu: np.ndarray  # (B, m)

    @classmethod
    def draw(cls, law: Law, d: Design, cd: Design, theta: np.ndarray, B: int, n_truths: int, mode: str,
             delta: float, seed: int) -> "Replicates":
        rng = np.random.default_rng(seed)
        W = resample_weights(d, B, rng)
        E = rng.normal(size=(B, cd.n))
        stratum = np.array([np.sum(d.label_idx == k) for k in cd.label_idx]) + 1
        M = rng.binomial(stratum, 1.0 / stratum, size=(B, cd.n)).astype(float)
        theta_b = refit_replicates(law, d, W, np.tile(d.y, (B, 1)), np.tile(theta, (B, 1)), mode, delta, seed)
        theta_b[~np.all(np.isfinite(theta_b), axis=1)] = theta
        groups = np.arange(B) % n_truths
        truth = theta_b[rng.choice(B, size=n_truths, replace=False)][groups]
        return cls(W, E, M, theta_b, groups, truth, law.batch_log_predict(truth, cd)[0])


def question_interval(runs: pd.DataFrame, question, fit: FitConfig, bootstrap: int = 200,
                      ci: float = 0.8, seed: int = 0, reference: np.ndarray | None = None) -> dict[str, float]:
    """The question's value at the fit and its central `ci` bootstrap interval (stratified resamples,
    refitted in the fit's mode like `bootstrap.py`, parameters of one replicate kept together).  `reference`: bind
    the question at these internal parameters instead of the fit (best-precision then compares the
    same two precisions before and after new runs)."""
    result = fit_frame(runs, replace(fit, bootstrap=0), with_answers=False)
    law = result.model
    d = data_mod.design(result.frame, labels=result.labels if law.uses_precision else ())
    target = question.bind(law, result.theta if reference is None else reference)
    W = resample_weights(d, bootstrap, np.random.default_rng(seed))
    theta = refit_replicates(law, d, W, np.tile(d.y, (bootstrap, 1)), np.tile(result.theta, (bootstrap, 1)),
                             fit.mode, fit.huber_delta, seed)
    values = target.values(theta[np.all(np.isfinite(theta), axis=1)])
    lo, hi = np.percentile(values, [50 * (1 - ci), 50 * (1 + ci)])
    return {"value": float(target.values(result.theta)[0]), "lo": float(lo), "hi": float(hi), "width": float(hi - lo)}
