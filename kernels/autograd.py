"""Autograd ops over the fused QuEST kernels (what `QuantLinear(backend="triton")` calls).

`quest_fake_quant(x, …)`      → Q(x·H)·Hᵀ      (original domain), ∂x = ((g·H) ⊙ M)·Hᵀ
`quest_fake_quant_rotated(x)` → Q(x·H)         (rotated domain: Q(xH)·Q(WH)ᵀ is the same GEMM),
                                               ∂x = (g ⊙ M)·Hᵀ
Only the packed trust mask (K/8 bytes per row) is saved for the backward.
"""
from __future__ import annotations

import torch

from quest_lab.kernels.quest import quest_quantize_bwd, quest_quantize_fwd


class _QuestFakeQuant(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, bits, alpha, trust, hadamard, block, rotated):
        k = x.shape[-1]
        x2d = x.reshape(-1, k)
        if not x2d.is_contiguous():
            x2d = x2d.contiguous()
        out, mask, _ = quest_quantize_fwd(x2d, bits, alpha, trust, block=block, hadamard=hadamard,
                                          derotate=not rotated)
        ctx.save_for_backward(mask)
        ctx.meta = (block, hadamard, rotated)
        return out.view(x.shape)

    @staticmethod
    def backward(ctx, grad):
        (mask,) = ctx.saved_tensors
        block, hadamard, rotated = ctx.meta
        k = grad.shape[-1]
        g2d = grad.reshape(-1, k)
        if not g2d.is_contiguous():
            g2d = g2d.contiguous()
        dx = quest_quantize_bwd(g2d, mask, block=block, hadamard=hadamard, grad_rotated=rotated)
        return dx.view(grad.shape), None, None, None, None, None, None


def _check(x: torch.Tensor, block: int, hadamard: bool = True) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() < 1:
        raise ValueError("x must be a tensor of shape (..., K)")
    if hadamard and (block < 16 or x.shape[-1] % block):
        raise ValueError(f"last dim of x {tuple(x.shape)} must be a multiple of the Hadamard block={block} "
                         "and the block must be >= 16 for the Triton kernels (use the torch backend)")


def quest_fake_quant(x: torch.Tensor, bits: int, alpha: float, trust: float | None = None,
                     hadamard: bool = True, block: int = 128) -> torch.Tensor:
    """QuEST fake quantization along the last dim, de-rotated: Q(x·H)·Hᵀ (x's dtype and shape).

    One scale per row of (..., K) (tokens for activations, output rows for a weight (N, K)).
    hadamard=False: no rotation (plain Gaussian clip + trust mask).  trust=None: half a step.
    """
    _check(x, block, hadamard)
    return _QuestFakeQuant.apply(x, bits, alpha, trust, hadamard, block, False)


def quest_fake_quant_rotated(x: torch.Tensor, bits: int, alpha: float, trust: float | None = None,
                             block: int = 128) -> torch.Tensor:
    """Like `quest_fake_quant` but returns the rotated-domain Q(x·H) (for GEMMs in the rotated basis)."""
    _check(x, block)
    return _QuestFakeQuant.apply(x, bits, alpha, trust, True, block, True)
