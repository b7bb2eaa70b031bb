"""Fixed-level (non-uniform) quantizers: FP4 E2M1 and Gaussian Lloyd–Max, scaled per row by RMS.

As the QuEST reference does for its FP4 and Gaussian quantizers (IST-DASLab/QuEST
src/models/quantization/base_linear.py: `GaussianSTEQuantizer`, `GaussianClipQuantizer`,
`GaussianTrustQuantizer`, their (Half)Hadamard variants and the FP4 subclasses):

  y = x·H (block Hadamard, when `hadamard`; else y = x),  σ = RMS(row of y) + 1e-8,
  ŷ = σ · c_i with c_i the level nearest to y/σ (ties go to the lower level),  x̂ = ŷ·Hᵀ.

With `group_size` G, σ is the RMS of each group of G consecutive elements of y (the rotated row).

Backward (option `backward`), as a mask M on y, ∂x = ((∂x̂·H) ⊙ M)·Hᵀ:
  ste:   M = 1 everywhere;
  clip:  M = 1[|y|/σ ≤ c_max] (c_max: the outermost level);
  trust: M = 1[|ŷ − y| ≤ T·σ] (T: option `trust`, else the quantizer's `default_trust`).
"""
from __future__ import annotations

import functools
from typing import Callable

import torch

from quest_lab.quant.base import Quantizer, register_quantizer, row_rms
from quest_lab.quant.estimators import masked_in_basis, ste_in_basis
from quest_lab.quant.gaussian import FP4_E2M1_GRID, FP4_REFERENCE_TRUST, FP4_RMS_SCALE
from quest_lab.quant.hadamard import hadamard_block_for
from quest_lab.quant.lloyd_max import signed_levels


@functools.lru_cache(maxsize=64)
def _level_tensors(levels: tuple[float, ...], dtype: torch.dtype, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    c = torch.tensor(levels, dtype=torch.float64)
    return c.to(device=device, dtype=dtype), ((c[1:] + c[:-1]) / 2).to(device=device, dtype=dtype)


def nearest_level(y: torch.Tensor, levels: tuple[float, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """(ŷ, σ): each element of y rounded to σ·(nearest of the ascending `levels`), σ = RMS(row) + 1e-8."""
    c, thresholds = _level_tensors(levels, y.dtype, str(y.device))
    sigma = row_rms(y) + 1e-8
    return c[torch.bucketize(y / sigma, thresholds)] * sigma, sigma


# backward masks: (y, ŷ, σ, quantizer) -> M
MASKS: dict[str, Callable[[torch.Tensor, torch.Tensor, torch.Tensor, "LevelQuantizer"], torch.Tensor]] = {
    "clip": lambda y, y_hat, sigma, q: y.abs() <= q.levels[-1] * sigma,
    "trust": lambda y, y_hat, sigma, q: (y_hat - y).abs() <= q.trust * sigma,
}


class LevelQuantizer(Quantizer):
    """Base: subclasses define `levels` (ascending, σ units) and `default_trust` (σ units)."""

    levels: tuple[float, ...]

    def default_trust(self) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def trust(self) -> float:
        t = self.options["trust"]
        return self.default_trust() if t is None else float(t)

    def block(self, k: int) -> int:
        return hadamard_block_for(k, self.options["hadamard_block"]) if self.options["hadamard"] else 1

    def _masked(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y_hat, sigma = nearest_level(y, self.levels)
        return y_hat, MASKS[self.options["backward"]](y, y_hat, sigma, self)

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        block = self.block(x.shape[-1])
        if self.options["backward"] == "ste":
            return ste_in_basis(x, self.grouped(lambda y: nearest_level(y, self.levels)[0]), block)
        return masked_in_basis(x, self.grouped(self._masked), block)[0]

    def extra_repr(self) -> str:
        return super().extra_repr() + (f", T={self.trust:.4g}" if self.options["backward"] == "trust" else "")


@register_quantizer("fp4")
class FP4Quantizer(LevelQuantizer):
    """FP4 E2M1 {0, ±0.5, ±1, ±1.5, ±2, ±3, ±4, ±6} × FP4_RMS_SCALE (≈ 0.4871, Gaussian-MSE optimal) per
    row of RMS σ.  Defaults (hadamard=True, backward=trust, T = FP4_REFERENCE_TRUST ≈ 0.3186) are the
    QuEST paper's FP4 point (reference `HalfHadamardFP4TrustQuantizer()`; see `FP4_REFERENCE_TRUST` for
    why T is not half the largest E2M1 gap).  Before issue 9 `fp4` was the plain-STE, no-Hadamard
    variant: options hadamard=false, backward=ste."""

    levels = tuple(-FP4_RMS_SCALE * v for v in reversed(FP4_E2M1_GRID[1:])) + tuple(
        FP4_RMS_SCALE * v for v in FP4_E2M1_GRID)

    def default_trust(self) -> float:
        return FP4_REFERENCE_TRUST


@register_quantizer("gaussian")
class GaussianQuantizer(LevelQuantizer):
    """Gaussian Lloyd–Max: the MSE-optimal 2^b levels of N(0, 1) (`lloyd_max.LLOYD_MAX_LEVELS`) × RMS.

    Backward: plain STE by default, as in the reference's `GaussianSTEQuantizer` and the usual QAT
    treatment of a non-uniform grid (the round has zero derivative almost everywhere, so the STE of
    Bengio et al. 2013 passes the gradient through); backward=clip / trust give the reference's
    `GaussianClipQuantizer` / `GaussianTrustQuantizer` (default T: half the outermost gap,
    (c_max − c_{max−1})/2, as there).  The reference's levels are 20 Lloyd steps from
    linspace(−3, 3, 2^b), unconverged above 2 bits; ours are converged (see `lloyd_max`)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.levels = signed_levels(int(round(self.bits))) if self.enabled else ()

    def default_trust(self) -> float:
        return (self.levels[-1] - self.levels[-2]) / 2
