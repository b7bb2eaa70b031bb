"""An independent float64 oracle of QuEST, written straight from the paper's formulas (arXiv
2502.05003 §3; docs/design.md §3) with numpy and scipy only, so the torch reference
(`quest_lab.quant.quest`) and the kernels are checked against code that shares nothing with them.

Per row x (length K), with H the block-diagonal normalised Sylvester Hadamard (scipy):
    y = x·H;  σ = sqrt(mean(y²));  s = α_b·σ + 1e-8;  Δ = 2s/(2^b − 1)
    grid = {−s + kΔ : k = 0 … 2^b − 1};  ŷ = the grid point nearest to clip(y, −s, s)
    M = 1[|ŷ − y| ≤ T·σ];  x̂ = ŷ·Hᵀ;  ∂x = ((∂out·H) ⊙ M)·Hᵀ
With a group size G (issue 15) the same per-row rule runs on each slice y[g·G:(g+1)·G] of the rotated row.
"""
from __future__ import annotations

import numpy as np
from scipy.linalg import block_diag, hadamard

ALPHA = {1: 0.7978845587, 2: 1.4935346200, 3: 2.0510683541, 4: 2.5139305786, 5: 2.9160938835,
         6: 3.2765972826, 7: 3.6010497188, 8: 3.8849386788}


def block_hadamard_matrix(k: int, block: int) -> np.ndarray:
    h = hadamard(block).astype(np.float64) / np.sqrt(block)
    return block_diag(*([h] * (k // block)))


def _grid_oracle(y: np.ndarray, bits: int, t: float) -> tuple[np.ndarray, np.ndarray]:
    """(ŷ, M) of one 1-D slice y on QuEST's grid at s = α_b·RMS(y)."""
    sigma = np.sqrt(np.mean(y * y))
    s = ALPHA[bits] * sigma + 1e-8
    delta = 2 * s / (2**bits - 1)
    grid = -s + delta * np.arange(2**bits)
    yc = np.clip(y, -s, s)
    y_hat = grid[np.abs(yc[:, None] - grid[None, :]).argmin(axis=1)]
    return y_hat, np.abs(y_hat - y) <= t * sigma


def quest_oracle(x: np.ndarray, bits: int, block: int, trust: float | None = None, group: int | None = None):
    """(x̂, mask in the rotated domain, H) for a 2-D float64 array x, row by row (or group by group)."""
    x = np.asarray(x, dtype=np.float64)
    k = x.shape[1]
    g = k if group is None else group
    h = block_hadamard_matrix(k, block) if block > 1 else np.eye(k)
    t = ALPHA[bits] / (2**bits - 1) if trust is None else trust
    out = np.empty_like(x)
    mask = np.empty(x.shape, dtype=bool)
    for r in range(x.shape[0]):
        y = x[r] @ h
        y_hat = np.empty_like(y)
        for lo in range(0, k, g):
            y_hat[lo:lo + g], mask[r, lo:lo + g] = _grid_oracle(y[lo:lo + g], bits, t)
        out[r] = y_hat @ h.T
    return out, mask, h


def quest_oracle_grad(g: np.ndarray, mask: np.ndarray, h: np.ndarray) -> np.ndarray:
    return ((np.asarray(g, np.float64) @ h) * mask) @ h.T
