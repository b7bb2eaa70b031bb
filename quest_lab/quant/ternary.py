"""BitNet b1.58 (Ma et al. 2024, arXiv 2402.17764) ternary quantizer.

As the BitNet b1.58 authors' reference code defines it ("The Era of 1-bit LLMs: Training Tips, Code
and FAQ", microsoft/unilm bitnet, `weight_quant` / `activation_quant`):
- Weights (1.58 bits): γ = mean|W| over the WHOLE matrix (per tensor), W̃ = clamp(round(W/γ), −1, 1)·γ
  ∈ {−γ, 0, γ}.  Before issue 9 γ was per output row.
- Activations (8 bits): absmax per token, x̃ = clamp(round(x·127/max|x|), −128, 127)·max|x|/127,
  or off (16).
Both use a plain straight-through estimator; scales are clamped at 1e-5 as there.
Note: our model fuses q/k/v (as the QuEST reference's c_attn does) and gate/up into one layer each, so
"per matrix" is per fused matrix (BitNet's Llama has one γ per separate projection).
"""
from __future__ import annotations

import torch

from quest_lab.quant.base import Quantizer, register_quantizer
from quest_lab.quant.estimators import STE
from quest_lab.quant.specs import TERNARY_BITS  # noqa: F401  (re-exported)


def ternary_weight(w: torch.Tensor) -> torch.Tensor:
    """BitNet b1.58 weight quantization: γ = mean|W| (whole tensor), clamp(round(W/γ), −1, 1)·γ."""
    gamma = w.abs().mean().clamp_min(1e-5)
    return torch.round(w / gamma).clamp_(-1, 1) * gamma


def absmax_int8(x: torch.Tensor) -> torch.Tensor:
    """BitNet activation quantization: per-row (token) absmax to int8 [−128, 127]."""
    scale = x.abs().amax(-1, keepdim=True).clamp_min(1e-5) / 127.0
    return torch.round(x / scale).clamp_(-128, 127) * scale


@register_quantizer("ternary")
class TernaryQuantizer(Quantizer):
    """BitNet b1.58 (weights 1.58 bits with one γ per matrix, activations 8-bit absmax per token or off)."""

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        fn = ternary_weight if self.role == "weight" else absmax_int8
        return STE.apply(x, fn)
