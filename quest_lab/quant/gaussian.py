"""Gaussian MSE-optimal clipping constants (docs/design.md §3) and their numeric recomputation.

`gaussian_alpha(bits)` returns the hard-coded α_b of the QuEST reference: the clip value s = α_b·σ
that minimises the MSE of rounding N(0, 1) to the uniform grid linspace(−α, α, 2^b).
`optimal_gaussian_clip(levels)` recomputes it with scipy from the closed-form cell integrals, so a
test can verify the table.  The table is kept verbatim even where the numeric optimum differs
slightly: at 8 bits the reference α = 3.8849 (MSE 8.782e-5) vs the exact optimum ≈ 3.922
(MSE 8.769e-5): the objective is flat there (0.15 % apart), and the table is what the paper used.
"""
from __future__ import annotations


import numpy as np

# bits -> α_b  (1.585 = log2(3): the 3-level ternary grid {−α, 0, α})
GAUSSIAN_ALPHA: dict[float, float] = {
    1: 0.7978845587,
    1.585: 1.2240089519,
    2: 1.4935346200,
    3: 2.0510683541,
    4: 2.5139305786,
    5: 2.9160938835,
    6: 3.2765972826,
    7: 3.6010497188,
    8: 3.8849386788,
}

# FP4 E2M1 magnitudes; a value is sign · grid[i] · scale.
FP4_E2M1_GRID: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
# scale = FP4_RMS_SCALE · RMS(row) minimises the MSE of N(0, σ²) rounded to the E2M1 grid × scale
# (recomputed by `optimal_fp4_scale()`; MSE at the optimum 0.012685 σ², vs 0.011543 for 4-bit QuEST).
FP4_RMS_SCALE: float = 0.4870791642
# Default trust radius T (σ units) of the `fp4` quantizer: the value the QuEST reference's FP4 runs
# used.  In IST-DASLab/QuEST base_linear.py, `HalfHadamardFP4TrustQuantizer(trust=None)` inherits
# T = (levels[-1] − levels[-2])/2 from `GaussianTrustQuantizer.__init__`, computed on the 4-bit
# *Gaussian* levels (20 Lloyd steps from linspace(−3, 3, 16)) before the FP4 levels replace them; the
# subclass's own `trust = …` line assigns a local and is dead.  So the paper's FP4 point ran with
# T = 0.3186σ, not half the largest E2M1 gap (FP4_RMS_SCALE = 0.4871σ, which that dead line meant).
# Recomputed in tests with `lloyd_max.lloyd_iterate`.
FP4_REFERENCE_TRUST: float = 0.3185766078


def _bits_key(bits: float) -> float:
    for key in GAUSSIAN_ALPHA:
        if abs(float(bits) - key) < 0.01:
            return key
    allowed = ", ".join(f"{k:g}" for k in GAUSSIAN_ALPHA)
    raise ValueError(f"bits={bits!r} has no Gaussian clip constant; allowed: {allowed}")


def gaussian_alpha(bits: float) -> float:
    """α_b of docs/design.md §3 (1.58 / 1.585 both mean the 3-level grid)."""
    return GAUSSIAN_ALPHA[_bits_key(bits)]


def gaussian_grid_mse(points) -> float:
    """Exact MSE of rounding N(0, 1) to the nearest of `points` (any finite set)."""
    from scipy.stats import norm

    c = np.sort(np.asarray(points, dtype=np.float64))
    mids = (c[1:] + c[:-1]) / 2
    lo = np.r_[-np.inf, mids]
    hi = np.r_[mids, np.inf]

    def antiderivative(x: np.ndarray) -> np.ndarray:
        # ∫ (x − c)² φ(x) dx = Φ − xφ + 2cφ + c²Φ
        phi = norm.pdf(x)
        xphi = np.where(np.isinf(x), 0.0, np.nan_to_num(x) * phi)
        cdf = norm.cdf(x)
        return cdf - xphi + 2 * c * phi + c**2 * cdf

    return float(np.sum(antiderivative(hi) - antiderivative(lo)))


def optimal_gaussian_clip(levels: int) -> float:
    """Numerically optimal α for linspace(−α, α, levels) on N(0, 1) (scipy, bounded Brent)."""
    from scipy.optimize import minimize_scalar

    if levels < 2:
        raise ValueError(f"levels={levels!r} must be >= 2")
    res = minimize_scalar(lambda a: gaussian_grid_mse(np.linspace(-a, a, levels)),
                          bounds=(0.05, 10.0), method="bounded", options={"xatol": 1e-12})
    return float(res.x)


def optimal_fp4_scale() -> float:
    """c minimising the Gaussian MSE of the E2M1 grid scaled by c·σ (for verifying FP4_RMS_SCALE)."""
    from scipy.optimize import minimize_scalar

    g = np.asarray(FP4_E2M1_GRID)
    grid = np.r_[-g[:0:-1], g]
    res = minimize_scalar(lambda c: gaussian_grid_mse(c * grid), bounds=(0.05, 3.0),
                          method="bounded", options={"xatol": 1e-12})
    return float(res.x)


def levels_for(bits: float) -> int:
    """Number of grid points for integer bits (2^b); 3 for the ternary 1.58/1.585."""
    key = _bits_key(bits)
    return 3 if key == 1.585 else int(2 ** int(key))


__all__ = ["GAUSSIAN_ALPHA", "FP4_E2M1_GRID", "FP4_REFERENCE_TRUST", "FP4_RMS_SCALE", "gaussian_alpha",
           "gaussian_grid_mse", "optimal_gaussian_clip", "optimal_fp4_scale", "levels_for"]
