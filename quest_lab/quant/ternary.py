"""BitNet b1.58 (Ma et al. 2024, arXiv 2402.17764) ternary quantizer.

Weights (1.58 bits): γ = mean|W| per output row, W̃ = RoundClip(W/γ, −1, 1)·γ ∈ {−γ, 0, γ}.
Activations: 8-bit absmax per token, x̃ = clamp(round(x·127/max|x|), −128, 127)·max|x|/127, or off (16).
Both use a plain straight-through estimator.
"""
from __future__ import annotations

import torch

from quest_lab.quant.base import Quantizer, register_quantizer
from quest_lab.quant.estimators import STE
from quest_lab.quant.specs import TERNARY_BITS  # noqa: F401  (re-exported)


def ternary_weight(w: torch.Tensor) -> torch.Tensor:
    gamma = w.abs().mean(-1, keepdim=True).clamp_min(1e-5)
    return torch.round(w / gamma).clamp_(-1, 1) * gamma


def absmax_int8(x: torch.Tensor) -> torch.Tensor:
    scale = x.abs().amax(-1, keepdim=True).clamp_min(1e-5) / 127.0
    return torch.round(x / scale).clamp_(-128, 127) * scale


@register_quantizer("ternary")
class TernaryQuantizer(Quantizer):
    """BitNet b1.58 (weights 1.58 bits, activations 8-bit absmax or off)."""

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        fn = ternary_weight if self.role == "weight" else absmax_int8
        return STE.apply(x, fn)
