"""Bootstrap confidence intervals: resample runs with replacement, refit, take percentiles.

Resampling is stratified by precision label (every precision keeps its run count, so every
efficiency stays defined).  A resample is a vector of multiplicities — weights on the Huber terms —
so a whole chunk of resamples is refitted as one batch (batched Levenberg–Marquardt).  Each refit
starts from the best full-data fit plus two jittered copies (standard practice: the full start
grid per resample would cost 1000× more and lands in the same basin).  Chunks run in parallel
over `config.workers` processes (forkserver: safe next to Ray/torch threads).  Seeded: the same seed gives the same intervals, whatever the number of workers.
"""
from __future__ import annotations

import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from quest_lab.analysis.data import label_bits
from quest_lab.analysis.law_base import Design, Law, get_law
from quest_lab.analysis.optimize import Problem, batched_lm, perturbed

log = logging.getLogger(__name__)
N_STARTS = 3  # best fit + 2 jittered copies per resample
CHUNK = 100  # resamples refitted as one batch (one task of the process pool)


def resample_weights(d: Design, n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, runs) multiplicities of a stratified (by precision label) bootstrap."""
    w = np.zeros((n, d.n))
    for k in np.unique(d.label_idx):
        rows = np.nonzero(d.label_idx == k)[0]
        picks = rng.integers(0, rows.size, size=(n, rows.size))
        for j in range(rows.size):
            np.add.at(w, (np.arange(n), rows[picks[:, j]]), 1.0)
    return w


def _refit_stage(law: Law, d: Design, free: np.ndarray, theta: np.ndarray, weights: np.ndarray,
                 rng: np.random.Generator, delta: float) -> np.ndarray:
    """Refit the `free` parameters of each resample (rows of `weights`) from `theta` (B, p) + jitter."""
    specs = law.specs()
    B = len(weights)
    starts = np.concatenate([perturbed(t, specs, free, N_STARTS - 1, rng) for t in theta])  # (B*S, pf)
    rows = np.repeat(np.arange(B), N_STARTS)
    prob = Problem(law, d, free, theta[rows], delta, weights[rows])
    X, f = batched_lm(prob, starts)
    f = np.where(np.isfinite(f), f, np.inf).reshape(B, N_STARTS)
    best = np.argmin(f, axis=1) + np.arange(B) * N_STARTS
    return prob.full(X[best], rows[best])


def _chunk(args) -> np.ndarray:
    law_name, labels, options, d, theta_best, weights, seed, delta, mode, uses_precision = args
    law = get_law(law_name, labels, options)
    rng = np.random.default_rng(seed)
    specs = law.specs()
    base = np.array([s.stage == "base" for s in specs])
    theta = np.tile(theta_best, (len(weights), 1))
    if mode == "joint" and (~base).any() and uses_precision:  # the fit's own mode: everything at once
        return _refit_stage(law, d, np.ones(len(specs), bool), theta, weights, rng, delta)
    brows = np.nonzero(d.is_base)[0] if uses_precision else np.arange(d.n)
    theta = _refit_stage(law, d.subset(brows), base, theta, weights[:, brows], rng, delta)
    if (~base).any() and uses_precision:
        theta = _refit_stage(law, d, ~base, theta, weights, rng, delta)
    return theta


def _mp_context():
    """forkserver where available: forking a process that already runs threads (Ray, torch,
    BLAS) can deadlock; the fork server is a clean single-threaded parent, started once."""
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    if "forkserver" in methods:
        ctx.set_forkserver_preload([__name__])
    return ctx


def bootstrap_samples(law: Law, d: Design, theta_best: np.ndarray, config) -> np.ndarray:
    """(B, p) public parameter values of `config.bootstrap` refits."""
    rng = np.random.default_rng(config.seed)
    weights = resample_weights(d, config.bootstrap, rng)
    # chunks of a fixed size, one seed each: the samples do not depend on the number of workers
    n_chunks = -(-config.bootstrap // CHUNK)
    seeds = rng.integers(0, 2**31, size=n_chunks)
    jobs = [(law.name, law.labels, law.options, d, theta_best, w, int(s), config.huber_delta, config.mode,
             law.uses_precision)
            for w, s in zip(np.array_split(weights, n_chunks), seeds)]
    workers = min(config.workers, n_chunks)
    if workers == 1:
        parts = [_chunk(job) for job in jobs]
    else:
        with ProcessPoolExecutor(max_workers=workers, mp_context=_mp_context()) as pool:
            parts = list(pool.map(_chunk, jobs))
    thetas = np.concatenate(parts)
    specs = law.specs()
    return np.array([[s.public(t) for s, t in zip(specs, row)] for row in thetas])


def intervals(law: Law, samples: np.ndarray, level: float) -> dict[str, tuple[float, float]]:
    """Central percentile intervals at `level` for every parameter, plus `eff[label]` for laws whose
    efficiency is derived from other parameters (kumar: from γ_w, γ_a)."""
    q = [50 * (1 - level), 50 * (1 + level)]
    lo, hi = np.nanpercentile(samples, q, axis=0)
    out = {name: (float(a), float(b)) for name, a, b in zip(law.param_names, lo, hi)}
    specs = law.specs()
    for label in law.labels:
        if f"eff[{label}]" in out or f"effN[{label}]" in out:
            continue
        w, a = label_bits(label)
        effs = np.array([law.eff_of(np.array([s.internal(v) for s, v in zip(specs, row)]), label, w, a)
                         for row in samples])
        if np.isfinite(effs).any():  # laws without an efficiency (qat) have none
            out[f"eff[{label}]"] = tuple(float(x) for x in np.nanpercentile(effs, q))
    return out
