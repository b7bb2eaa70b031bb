"""Baselines on QuEST's uniform grid: bf16 (identity), ste, absmax, clip, hadamard_clip.

All but absmax use QuEST's grid (docs/design.md §3; `quest.uniform_fake_quant`): per row,
σ = RMS(row), s = α_b·σ + 1e-8, Δ = 2s/(2^b − 1), x̂ = (round(clamp(x, −s, s)/Δ + ½) − ½)·Δ, i.e. the
2^b points −s + kΔ.  They differ only in the backward, as in the QuEST reference
(IST-DASLab/QuEST src/models/quantization/base_linear.py):

- `ste`:   ∂x = ∂x̂ everywhere (reference `STEQuantizer`, centered=True).
- `clip`:  ∂x = ∂x̂ ⊙ 1[|x| ≤ clip_scale·s] (reference `ClipQuantizer`).
- `hadamard_clip`: the same in the rotated basis y = x·H: x̂ = Q(y)·Hᵀ,
  ∂x = ((∂x̂·H) ⊙ 1[|y| ≤ clip_scale·s])·Hᵀ (reference `HadamardClipQuantizer`; the QuEST paper's
  1-bit runs use clip_scale 1.3: for_plots/runs_for_scaling.json in that repository).
- `absmax`: s = max|row| instead of α_b·RMS, ∂x = ∂x̂.  This is what `ste` computed before issue 9
  (it is not the QuEST paper's STE baseline); kept under its own name to reproduce older runs.

With `group_size` G every "row" above is a group of G consecutive elements (σ, s, max per group);
for `hadamard_clip` the groups are taken in the rotated basis (docs/design.md §3).
"""
from __future__ import annotations

import functools

import torch

from quest_lab.quant.base import Quantizer, register_quantizer, row_rms
from quest_lab.quant.estimators import STE, masked_in_basis
from quest_lab.quant.gaussian import gaussian_alpha
from quest_lab.quant.hadamard import hadamard_block_for
from quest_lab.quant.quest import uniform_fake_quant


@register_quantizer("bf16")
class IdentityQuantizer(Quantizer):
    """No quantization (full-precision baseline); only 16 bits is meaningful."""

    def quantize(self, x: torch.Tensor) -> torch.Tensor:  # never reached: bits are always 16
        return x


def gaussian_clip_scale(x: torch.Tensor, bits: int) -> torch.Tensor:
    """s = α_b·RMS(row) + 1e-8 (per row, no gradient)."""
    return gaussian_alpha(bits) * row_rms(x) + 1e-8


def gaussian_grid(x: torch.Tensor, bits: int) -> torch.Tensor:
    """QuEST's 2^b-point grid on [−s, s], s = α_b·RMS(row) (no rotation, no estimator)."""
    return uniform_fake_quant(x, gaussian_clip_scale(x, bits), 2 ** bits)


def absmax_grid(x: torch.Tensor, bits: int) -> torch.Tensor:
    """The same 2^b-point grid on [−s, s] with s = max|row| + 1e-8 (round-to-nearest absmax)."""
    return uniform_fake_quant(x, x.abs().amax(-1, keepdim=True) + 1e-8, 2 ** bits)


def clipped_gaussian_grid(x: torch.Tensor, bits: int, clip_scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(QuEST's grid of x, clip mask 1[|x| ≤ clip_scale·s]) with s = α_b·RMS(row) + 1e-8."""
    s = gaussian_clip_scale(x, bits)
    return uniform_fake_quant(x, s, 2 ** bits), x.abs() <= clip_scale * s


@register_quantizer("ste")
class STEQuantizer(Quantizer):
    """QuEST's grid at s = α_b·RMS (no Hadamard) with a plain straight-through backward: the QuEST
    paper's STE ablation (reference `STEQuantizer`).  Before issue 9 `ste` used s = max|row| (now `absmax`)."""

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        return STE.apply(x, self.grouped(functools.partial(gaussian_grid, bits=int(round(self.bits)))))


@register_quantizer("absmax")
class AbsmaxQuantizer(Quantizer):
    """Round-to-nearest with s = max|row| on QuEST's symmetric 2^b-point grid (no zero level, ±s
    included, so 1 bit works); plain STE backward.  What `ste` computed before issue 9."""

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        return STE.apply(x, self.grouped(functools.partial(absmax_grid, bits=int(round(self.bits)))))


@register_quantizer("clip")
class ClipQuantizer(Quantizer):
    """QuEST's grid at s = α_b·RMS, gradient only where |x| ≤ clip_scale·s (reference `ClipQuantizer`;
    the QuEST paper's 1-bit runs without Hadamard used clip_scale 1.25)."""

    def block(self, k: int) -> int:
        """Hadamard block along a last dim of size k (1 = no rotation)."""
        return 1

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        q = functools.partial(clipped_gaussian_grid, bits=int(round(self.bits)),
                              clip_scale=float(self.options["clip_scale"]))
        return masked_in_basis(x, self.grouped(q), self.block(x.shape[-1]))[0]


@register_quantizer("hadamard_clip")
class HadamardClipQuantizer(ClipQuantizer):
    """`clip` in the block-Hadamard basis (reference `HadamardClipQuantizer`): the QuEST paper's 1-bit
    recipe (W1A1 and W1A16, clip_scale 1.3)."""

    def block(self, k: int) -> int:
        return hadamard_block_for(k, self.options["hadamard_block"])
