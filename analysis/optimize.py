"""The numerical core: sum-Huber objective on log residuals, multi-start L-BFGS-B, variable projection.

Objective (docs/design.md §5): Σ huber_δ(log L_pred − log L_obs), δ = 1e-3, a *sum* (a mean makes
L-BFGS stop early), with analytic gradients from the law's Jacobian.
"""
from __future__ import annotations

import itertools
import logging

import numpy as np
from scipy.optimize import minimize, nnls

from quest_lab.analysis.law_base import Design, Law, ParamSpec
from quest_lab.analysis.settings import HUBER_DELTA

log = logging.getLogger(__name__)

# Tight tolerances: the objective is ~1e-3 at the optimum, so scipy's defaults stop too early.
LBFGS_OPTIONS = {"ftol": 1e-15, "gtol": 1e-10, "maxiter": 2000}
# Multi-start search (`Problem.solve`): how many starts run to convergence (Levenberg–Marquardt, its
# step cap), how many of those scipy polishes.  Global joint search: the steps each start gets before the cut.
CONVERGE_KEEP, LM_MAXITER, POLISH = 16, 500, 2
SCREEN_ITER = 30


def huber(r: np.ndarray, delta: float) -> np.ndarray:
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))


def objective(law: Law, theta: np.ndarray, d: Design, delta: float = HUBER_DELTA) -> float:
    return float(huber(law.log_predict(theta, d)[0] - d.y, delta).sum())


class Problem:
    """Minimise over the `free` entries of theta, the others fixed at `theta_fixed`.

    `weights` (n,) or (K, n) multiply each run's Huber term: a bootstrap resample is a vector
    of multiplicities, so many resamples are optimised as one batch.
    """

    def __init__(self, law: Law, d: Design, free: np.ndarray, theta_fixed: np.ndarray,
                 delta: float = HUBER_DELTA, weights: np.ndarray | None = None) -> None:
        self.law, self.d, self.delta = law, d, delta
        self.free = np.asarray(free, bool)
        self.theta = np.array(theta_fixed, float)
        self.weights = None if weights is None else np.asarray(weights, float)
        self._row = 0  # weights row used by the single-start `fun` (scipy polish)
        specs = law.specs()
        self.lo = np.array([s.lower for s, f in zip(specs, self.free) if f])
        self.hi = np.array([s.upper for s, f in zip(specs, self.free) if f])

    def full(self, x: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Complete parameter vectors; `self.theta` may be one vector or one per weights row."""
        x = np.asarray(x, float)
        fixed = self.theta if self.theta.ndim == 1 or rows is None else self.theta[rows]
        theta = np.broadcast_to(fixed, x.shape[:-1] + self.theta.shape[-1:]).copy()
        theta[..., self.free] = x
        return theta

    def batch_fun(self, X: np.ndarray, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Objectives (K,) and gradients (K, p_free) for K points; `rows` picks weight rows."""
        theta = self.full(X, rows)
        if theta.ndim == 1:
            theta = theta[None, :]
        logp, jac = self.law.batch_log_predict(theta, self.d)
        r = logp - self.d.y
        h = huber(r, self.delta)
        hp = np.clip(r, -self.delta, self.delta)
        if self.weights is not None:
            w = self.weights if self.weights.ndim == 1 else self.weights[rows]
            h, hp = h * w, hp * w
        f = h.sum(axis=1)
        g = np.einsum("kn,knp->kp", hp, jac[..., self.free])
        return f, g

    def terms(self, X: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Log residuals (K, n), their Jacobian over the free parameters (K, n, p_free) and the
        multiplicities of the Huber terms (K, n) for K points (weight rows `rows`)."""
        theta = self.full(X, rows)
        logp, jac = self.law.batch_log_predict(theta, self.d)
        r = logp - self.d.y
        if self.weights is None:
            m = np.ones_like(r)
        else:
            m = np.broadcast_to(self.weights if self.weights.ndim == 1 else self.weights[rows], r.shape)
        return r, jac[..., self.free], m

    def fun(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        f, g = self.batch_fun(x[None, :], rows=np.array([self._row]))
        return float(f[0]), g[0]

    def polish(self, x0: np.ndarray, row: int = 0) -> tuple[float, np.ndarray]:
        """scipy L-BFGS-B with tight tolerances from one start (weights row `row`)."""
        self._row = row
        with np.errstate(all="ignore"):
            res = minimize(self.fun, np.clip(x0, self.lo, self.hi), jac=True, method="L-BFGS-B",
                           bounds=list(zip(self.lo, self.hi)), options=LBFGS_OPTIONS)
        return float(res.fun), res.x

    def solve(self, starts: np.ndarray, screen_iter: int = 200, keep: int = CONVERGE_KEEP,
              polish: int = POLISH) -> tuple[np.ndarray, float]:
        """Successive halving over many starts: every start gets `screen_iter` batched L-BFGS steps
        (loose tolerances), the `keep` best run to convergence by batched Levenberg–Marquardt (a few
        dozen steps where L-BFGS needs thousands along the narrow a–α and b–β valleys), then the
        `polish` best are refined by scipy L-BFGS-B (kept only where it improves)."""
        starts = np.atleast_2d(starts)
        X, f = batched_lbfgs(self, starts, maxiter=screen_iter, ftol=1e-9, gtol=1e-8)
        top = np.argsort(np.where(np.isfinite(f), f, np.inf))[:keep]
        X, f = batched_lm(self, X[top])
        order = np.argsort(np.where(np.isfinite(f), f, np.inf))
        best_f, best_x = np.inf, None
        for i in order[:max(polish, 1)]:
            if np.isfinite(f[i]) and f[i] < best_f:
                best_f, best_x = float(f[i]), X[i]
            if polish:
                fi, xi = self.polish(X[i])
                if np.isfinite(fi) and fi < best_f:
                    best_f, best_x = fi, xi
        if best_x is None:
            raise RuntimeError(f"{self.law.name} law: every L-BFGS start failed (non-finite objective)")
        return self.full(best_x), best_f


def batched_lbfgs(problem: Problem, X0: np.ndarray, maxiter: int = 300, m: int = 8,
                  ftol: float = 1e-12, gtol: float = 1e-10) -> tuple[np.ndarray, np.ndarray]:
    """Projected L-BFGS (box bounds by clipping, Armijo backtracking) on K starts at once.

    Each row k of X0 is an independent problem (row k of the weights when they are 2-D).
    Converged rows drop out of the active set.  Returns final points (K, p) and objectives (K,).
    """
    lo, hi = problem.lo, problem.hi
    X = np.clip(np.array(X0, float), lo, hi)
    K, p = X.shape
    with np.errstate(all="ignore"):
        f, G = problem.batch_fun(X, rows=np.arange(K))
    S = np.zeros((m, K, p))
    Y = np.zeros((m, K, p))
    rho = np.zeros((m, K))
    gamma = np.ones(K)
    last_step = np.ones(K)  # first trial step = min(1, 4 × last accepted): fewer backtracks
    active = np.isfinite(f)
    f = np.where(active, f, np.inf)
    for it in range(maxiter):
        idx = np.nonzero(active)[0]
        if idx.size == 0:
            break
        g = G[idx]
        # two-loop recursion over the ring buffer, newest first
        q = g.copy()
        alphas = []
        order = [(it - 1 - j) % m for j in range(min(it, m))]
        for j in order:
            a_j = rho[j, idx] * np.einsum("kp,kp->k", S[j, idx], q)
            q -= a_j[:, None] * Y[j, idx]
            alphas.append(a_j)
        q *= gamma[idx, None] if it else (1.0 / np.maximum(np.linalg.norm(g, axis=1), 1e-12))[:, None]
        for j, a_j in zip(reversed(order), reversed(alphas)):
            b_j = rho[j, idx] * np.einsum("kp,kp->k", Y[j, idx], q)
            q += (a_j - b_j)[:, None] * S[j, idx]
        d = -q
        x = X[idx]
        # do not push against active bounds; fall back to steepest descent if not a descent direction
        blocked = ((x <= lo) & (d < 0)) | ((x >= hi) & (d > 0))
        d[blocked] = 0.0
        slope = np.einsum("kp,kp->k", g, d)
        bad = ~(slope < 0)
        if bad.any():
            sd = -g[bad]
            sd[((x[bad] <= lo) & (sd < 0)) | ((x[bad] >= hi) & (sd > 0))] = 0.0
            d[bad] = sd / np.maximum(np.linalg.norm(g[bad], axis=1), 1e-12)[:, None]
        step = np.minimum(1.0, 4.0 * last_step[idx])
        f_old = f[idx]
        x_new, f_new, g_new = x.copy(), f_old.copy(), g.copy()
        todo = np.ones(idx.size, bool)
        for _ in range(40):  # Armijo backtracking, per row
            t = np.nonzero(todo)[0]
            if t.size == 0:
                break
            xt = np.clip(x[t] + step[t, None] * d[t], lo, hi)
            with np.errstate(all="ignore"):
                ft, gt = problem.batch_fun(xt, rows=idx[t])
            ok = np.isfinite(ft) & (ft <= f_old[t] + 1e-4 * np.einsum("kp,kp->k", g[t], xt - x[t]))
            acc = t[ok]
            x_new[acc], f_new[acc], g_new[acc] = xt[ok], ft[ok], gt[ok]
            todo[acc] = False
            step[t[~ok]] *= 0.5
        s_vec, y_vec = x_new - x, g_new - g
        sy = np.einsum("kp,kp->k", s_vec, y_vec)
        good = sy > 1e-16
        slot = it % m
        S[slot, idx] = np.where(good[:, None], s_vec, 0.0)
        Y[slot, idx] = np.where(good[:, None], y_vec, 0.0)
        rho[slot, idx] = np.where(good, 1.0 / np.where(good, sy, 1.0), 0.0)
        yy = np.einsum("kp,kp->k", y_vec, y_vec)
        gamma[idx] = np.where(good & (yy > 0), sy / np.where(yy > 0, yy, 1.0), gamma[idx])
        X[idx], f[idx], G[idx] = x_new, f_new, g_new
        last_step[idx] = np.where(todo, last_step[idx], step)
        pg = np.where(((x_new <= lo) & (g_new > 0)) | ((x_new >= hi) & (g_new < 0)), 0.0, g_new)
        done = (todo  # line search failed: no progress possible along d
                | (f_old - f_new <= ftol * np.maximum(np.abs(f_new), 1e-300))
                | (np.abs(pg).max(axis=1) <= gtol))
        active[idx[done]] = False
    return X, f


def batched_lm(problem: Problem, X0: np.ndarray, maxiter: int = LM_MAXITER,
               ftol: float = 1e-13) -> tuple[np.ndarray, np.ndarray]:
    """Levenberg–Marquardt on the sum-Huber objective, K rows at once (row k: its own weights row).

    Each step solves (H + λ·diag H) d = −g with g the exact gradient and H = Jᵀ W J, W the IRLS
    weights min(1, δ/|r|) (the Gauss–Newton model of a quadratic majorizer of Huber); coordinates on
    a bound whose gradient points outward are held fixed, the step is clipped to the box.  A step is
    kept only if it lowers the objective (then λ/3, else λ·4).  A row stops after two consecutive
    kept steps that gain less than `ftol` relative, or when λ exceeds 1e10 (no descent left).
    Returns the final points (K, p) and objectives (K,).
    """
    lo, hi, delta = problem.lo, problem.hi, problem.delta
    X = np.clip(np.array(X0, float), lo, hi)
    K, p = X.shape
    eye = np.eye(p)
    with np.errstate(all="ignore"):
        r, J, m = problem.terms(X, np.arange(K))
        f = (huber(r, delta) * m).sum(axis=1)
    active = np.isfinite(f)
    f = np.where(active, f, np.inf)
    lam = np.full(K, 1e-3)
    small = np.zeros(K, int)
    for _ in range(maxiter):
        idx = np.nonzero(active)[0]
        if idx.size == 0:
            break
        ri, Ji, x = r[idx], J[idx], X[idx]
        w = np.minimum(1.0, delta / np.maximum(np.abs(ri), 1e-300)) * m[idx]
        g = np.einsum("kn,knp->kp", w * ri, Ji)
        H = np.matmul(np.swapaxes(Ji * w[..., None], 1, 2), Ji)
        fixed = ((x <= lo) & (g > 0)) | ((x >= hi) & (g < 0))
        diag = np.maximum(np.einsum("kpp->kp", H), 1e-12)
        A = H + (lam[idx, None] * diag)[:, :, None] * eye
        A = np.where(fixed[:, :, None] | fixed[:, None, :], 0.0, A) + fixed[:, :, None] * eye
        gf = np.where(fixed, 0.0, g)
        with np.errstate(all="ignore"):
            try:
                step = -np.linalg.solve(A, gf[..., None])[..., 0]
            except np.linalg.LinAlgError:  # singular row: a scaled gradient step instead
                step = -gf / diag
            xn = np.clip(x + np.nan_to_num(step), lo, hi)
            rn, Jn, mn = problem.terms(xn, idx)
            fn = (huber(rn, delta) * mn).sum(axis=1)
        ok = np.isfinite(fn) & (fn < f[idx])
        acc, rej = idx[ok], idx[~ok]
        gain = f[acc] - fn[ok]
        X[acc], r[acc], J[acc], f[acc] = xn[ok], rn[ok], Jn[ok], fn[ok]
        lam[acc] = np.maximum(lam[acc] / 3.0, 1e-12)
        lam[rej] *= 4.0
        small[acc] = np.where(gain <= ftol * np.maximum(f[acc], 1e-300), small[acc] + 1, 0)
        active[acc[small[acc] >= 2]] = False
        active[rej[lam[rej] > 1e10]] = False
    return X, f


def grid_starts(specs: list[ParamSpec], free: np.ndarray) -> np.ndarray:
    """Starting points over the free parameters.

    Base parameters: the full Cartesian product of their grids.  Precision parameters of one kind
    (all `eff[...]`) move together — in the staged fit they are independent of each other given
    the base, so a shared grid is as good as a product and stays small.
    """
    free_specs = [s for s, f in zip(specs, free) if f]
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(free_specs):
        key = s.name.split("[", 1)[0] if s.stage == "precision" else s.name
        groups.setdefault(key, []).append(i)
    keys = list(groups)
    grids = [free_specs[groups[k][0]].grid for k in keys]
    combos = np.array(list(itertools.product(*grids)), float)
    out = np.empty((len(combos), len(free_specs)))
    for j, k in enumerate(keys):
        out[:, groups[k]] = combos[:, [j]]
    return out


def varpro_starts(d: Design, n_alpha: int = 40, keep: int = 3) -> np.ndarray:
    """Variable projection for E + A/N^α + B/D^β: for each (α, β) on a grid, (A, B, E) ≥ 0 by NNLS
    on relative residuals (≈ log residuals); the best `keep` points as internal (a, b, e, α, β) starts.
    Polished afterwards by L-BFGS-B on the exact Huber objective, so it reaches the grid's optimum.
    """
    N, D, L = np.exp(d.logN), np.exp(d.logD), np.exp(d.y)
    exps = np.linspace(0.02, 1.5, n_alpha)
    rows = []
    for alpha in exps:
        xa = N ** -alpha / L
        for beta in exps:
            M = np.stack([xa, D ** -beta / L, 1.0 / L], axis=1)
            coef, rnorm = nnls(M, np.ones_like(L))
            rows.append((rnorm, alpha, beta, *coef))
    rows.sort(key=lambda r: r[0])
    starts = []
    for rnorm, alpha, beta, A, B, E in rows[:keep]:
        starts.append([np.log(max(A, 1e-4)), np.log(max(B, 1e-4)), np.log(max(E, 1e-3)), alpha, beta])
    return np.array(starts)


def grouped_varpro(d: Design, n_exp: int = 40, keep: int = 3) -> np.ndarray:
    """Variable projection for L = A_g/N^α + B/D^β + E with one amplitude A_g per precision group
    (g = 0 for full precision, 1 + label index otherwise), shared α, β, B, E: at fixed (α, β) the
    model is linear in (A_0 … A_K, B, E) ≥ 0, solved by NNLS on relative residuals over an
    n_exp × n_exp exponent grid.  Rows of the `keep` best: (α, β, A_0 … A_K, B, E).

    The QuEST law is this model with A_g = A·eff_g^(−α), so the search is global over (α, β)
    whatever the base runs' design (collinear N and D included).
    """
    N, D, L = np.exp(d.logN), np.exp(d.logD), np.exp(d.y)
    K = len(d.labels)
    groups = d.label_idx + 1
    exps = np.linspace(0.02, 1.5, n_exp)
    rows = []
    for alpha in exps:
        amp = np.zeros((d.n, K + 1))
        amp[np.arange(d.n), groups] = N ** -alpha / L
        for beta in exps:
            M = np.hstack([amp, (D ** -beta / L)[:, None], (1.0 / L)[:, None]])
            coef, rnorm = nnls(M, np.ones_like(L))
            rows.append((rnorm, alpha, beta, coef))
    rows.sort(key=lambda r: r[0])
    return np.array([[alpha, beta, *coef] for _, alpha, beta, coef in rows[:keep]])


def perturbed(theta: np.ndarray, specs: list[ParamSpec], free: np.ndarray, n: int,
              rng: np.random.Generator, scale: float = 0.05) -> np.ndarray:
    """`theta` (free part) plus `n` jittered copies, clipped to the bounds (bootstrap refit starts)."""
    x = theta[free]
    lo = np.array([s.lower for s, f in zip(specs, free) if f])
    hi = np.array([s.upper for s, f in zip(specs, free) if f])
    jitter = rng.normal(0.0, scale, size=(n, x.size)) * (1.0 + np.abs(x))
    return np.clip(np.vstack([x, x + jitter]), lo, hi)
