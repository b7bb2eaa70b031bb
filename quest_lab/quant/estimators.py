"""Gradient estimators as small autograd Functions.

- `STE`: forward q(x), backward identity.
- `MaskedSTE`: forward (q(x), mask), backward grad ⊙ mask (clipped STE and the QuEST trust estimator).
- `LSQFunction`: learned-step-size quantization (Esser et al. 2019) with gradients for x and the step.
- `ste_in_basis` / `masked_in_basis`: the same two estimators applied in a block-Hadamard-rotated
  basis, as the QuEST reference's Hadamard quantizers do (x̂ = Q(x·H)·Hᵀ).

The quantization rule is passed in as a plain callable evaluated (without autograd) in `forward`.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch.autograd import Function

from quest_lab.quant.hadamard import hadamard_transform


class STE(Function):
    """Straight-through estimator: y = q(x), ∂y/∂x := 1."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, q: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        return q(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad, None


class MaskedSTE(Function):
    """y, M = q(x); backward passes grad only where M = 1 (M is returned, non-differentiable)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, q: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]):
        y, mask = q(x)
        ctx.save_for_backward(mask)
        ctx.mark_non_differentiable(mask)
        return y, mask

    @staticmethod
    def backward(ctx, grad: torch.Tensor, _grad_mask):
        (mask,) = ctx.saved_tensors
        return grad * mask.to(grad.dtype), None


def ste_in_basis(x: torch.Tensor, q: Callable[[torch.Tensor], torch.Tensor], block: int) -> torch.Tensor:
    """x̂ = q(x·H)·Hᵀ (H: normalised block-diagonal Hadamard of `block`; 1 = none), ∂x = ∂x̂."""
    return STE.apply(x, lambda t: hadamard_transform(q(hadamard_transform(t, block)), block))


def masked_in_basis(x: torch.Tensor, q: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
                    block: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(x̂, M) with y = x·H, (ŷ, M) = q(y), x̂ = ŷ·Hᵀ and ∂x = ((∂x̂·H) ⊙ M)·Hᵀ (H symmetric, so the
    same transform applies Hᵀ).  M is in the rotated basis.  QuEST ref. HadamardClipQuantizer."""
    y_hat, mask = MaskedSTE.apply(hadamard_transform(x, block), q)
    return hadamard_transform(y_hat, block), mask


class LSQFunction(Function):
    """LSQ: v̂ = s · (round(clamp(v/s − o, −Qn, Qp)) + o).

    `offset` o = 0 gives the paper's integer grid [−Qn, Qp]·s; o = ½ gives the symmetric
    half-integer grid (k + ½)·s, k ∈ [−Qn, Qp], that the QuEST reference's `LSQQuantizer`
    (raise_zero=True) uses (b bits: Qn = 2^{b−1}, Qp = 2^{b−1} − 1).  Gradients (paper eq. 3 and 5):
      ∂v̂/∂v = 1 inside the clip range, 0 outside;
      ∂v̂/∂s = (q + o) − v/s inside, (q + o) at the clipped ends; times `grad_scale` = 1/√(numel·Qp).
    The step gradient is summed over the dims the step broadcasts over.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, step: torch.Tensor, q_lo: int, q_hi: int, offset: float,
                grad_scale: float) -> torch.Tensor:
        s = step.clamp_min(1e-8)  # keep the grid defined if the optimiser pushes the step to <= 0
        u = x / s - offset
        inside = (u >= q_lo) & (u <= q_hi)
        level = torch.round(u.clamp(q_lo, q_hi)) + offset
        ctx.save_for_backward(u, level, inside, step)
        ctx.grad_scale = grad_scale
        ctx.offset = offset
        return level * s

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        u, level, inside, step = ctx.saved_tensors
        grad_x = grad * inside.to(grad.dtype)
        dstep = torch.where(inside, level - (u + ctx.offset), level)
        grad_step = (grad * dstep * ctx.grad_scale).sum_to_size(step.shape)
        return grad_x, grad_step, None, None, None, None
