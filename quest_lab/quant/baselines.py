"""Baseline quantizers: bf16 (identity), ste (absmax RTN), clip (Gaussian clip + clipped STE), fp4."""
from __future__ import annotations

import torch

from quest_lab.quant.base import Quantizer, register_quantizer, row_rms
from quest_lab.quant.estimators import STE, MaskedSTE
from quest_lab.quant.gaussian import FP4_E2M1_GRID, FP4_RMS_SCALE, gaussian_alpha
from quest_lab.quant.quest import uniform_fake_quant


@register_quantizer("bf16")
class IdentityQuantizer(Quantizer):
    """No quantization (full-precision baseline); only 16 bits is meaningful."""

    def quantize(self, x: torch.Tensor) -> torch.Tensor:  # never reached: bits are always 16
        return x


def _absmax_grid(x: torch.Tensor, bits: int) -> torch.Tensor:
    s = x.abs().amax(-1, keepdim=True) + 1e-8
    return uniform_fake_quant(x, s, 2 ** bits)


@register_quantizer("ste")
class STEQuantizer(Quantizer):
    """Round-to-nearest with s = max|row| on the same symmetric 2^b-point grid as QuEST
    (−s + kΔ, Δ = 2s/(2^b − 1): no zero level, ±s included, so 1 bit works); plain STE backward."""

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        b = int(round(self.bits))
        return STE.apply(x, lambda t: _absmax_grid(t, b))


def _clip_grid(x: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    s = gaussian_alpha(bits) * row_rms(x) + 1e-8
    return uniform_fake_quant(x, s, 2 ** bits), x.abs() <= s


@register_quantizer("clip")
class ClipQuantizer(Quantizer):
    """Gaussian-optimal clip s = α_b·RMS and QuEST's grid, without Hadamard; STE inside [−s, s],
    zero gradient outside (the classic clipped STE QuEST's trust mask is compared against)."""

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        b = int(round(self.bits))
        return MaskedSTE.apply(x, lambda t: _clip_grid(t, b))[0]


def fp4_fake_quant(x: torch.Tensor) -> torch.Tensor:
    """Round each row to the E2M1 grid × (FP4_RMS_SCALE · RMS(row))."""
    grid = torch.tensor(FP4_E2M1_GRID, dtype=x.dtype, device=x.device)
    scale = FP4_RMS_SCALE * row_rms(x) + 1e-12
    y = x.abs() / scale
    idx = torch.bucketize(y, (grid[1:] + grid[:-1]) / 2)  # nearest grid point (ties go down)
    return torch.sign(x) * grid[idx] * scale


@register_quantizer("fp4")
class FP4Quantizer(Quantizer):
    """FP4 E2M1 {0, ±0.5, ±1, ±1.5, ±2, ±3, ±4, ±6} × per-row scale c·RMS, c = FP4_RMS_SCALE ≈ 0.4871
    (Gaussian-MSE optimal, see `optimal_fp4_scale`); plain STE backward."""

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        return STE.apply(x, fp4_fake_quant)
