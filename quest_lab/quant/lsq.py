"""LSQ: learned step size quantization (Esser et al., ICLR 2020, arXiv 1902.08153), as the QuEST
reference trains it (IST-DASLab/QuEST base_linear.py, `LSQQuantizer` with its defaults
raise_zero=True, all_positive=False).

- Grid: the symmetric half-integer grid v̂ = s·(round(clamp(v/s − ½, −Qn, Qp)) + ½), i.e. the 2^b
  levels (k + ½)·s, k = −2^{b−1} … 2^{b−1} − 1 (no zero level), with Qn = 2^{b−1}, Qp = 2^{b−1} − 1.
- Step: ONE learnable step per tensor (per weight matrix; per activation quantizer), initialised from
  the first tensor seen as s₀ = 2·mean|v|/√Qp (the LSQ paper's rule, over the whole tensor).
- Gradients (LSQ eq. 3 and 5): ∂v̂/∂v = 1 inside the clip range, 0 outside; the step gradient is
  scaled by g = 1/√(numel·Qp), numel = the elements of the tensor (the whole activation batch).
- Bits: 2–8.  At 1 bit Qp = 0 and the reference's init and gradient scale divide by zero: LSQ is
  undefined there, so the spec does not offer it.
- Not copied: the reference's `+ step·1e-9` output term (a gradient-flow guard, 1e-9 relative).
- Groups (issue 15, not in the LSQ paper): with `group_size` G, one learned step per group of G
  consecutive inputs along K: (rows, K/G) steps for a weight, (K/G,) for activations (a static step per
  group of channels, shared by every token).  Each is initialised by the same rule over its own
  elements (s₀ = 2·mean|v_group|/√Qp, over the first batch for activations) and its gradient is scaled by
  1/√(n·Qp) with n the elements sharing it.  Without G the step is per tensor, as above (so G = K, one
  step per row, is *not* the default here).

Before issue 9 this quantizer used the integer grid [−Qn, Qp]·s (with a zero level) and one step per
weight row.  The step is quantizer state: never weight-decayed here (`train.make_optimizer`).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from quest_lab.quant.base import Quantizer, register_quantizer
from quest_lab.quant.estimators import LSQFunction

HALF = 0.5  # offset of the half-integer grid


def lsq_bounds(bits: int) -> tuple[int, int]:
    """(−Qn, Qp) of the integer code before the +½ shift: (−2^{b−1}, 2^{b−1} − 1)."""
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def lsq_init_step(x: torch.Tensor, bits: int) -> torch.Tensor:
    """s₀ = 2·mean|x|/√Qp over the whole tensor (LSQ paper §2.1; reference `get_initial_step_value`)."""
    return 2 * x.detach().abs().mean() / math.sqrt(lsq_bounds(bits)[1])


def lsq_group_step_shape(role: str, rows: int | None, features: int, group: int) -> tuple[int, ...]:
    """Shape of the per-group steps, broadcasting against x viewed as (..., K/G, G)."""
    if role == "weight":
        if rows is None:
            raise ValueError("lsq with group_size needs rows (= out_features) for a weight quantizer")
        return (rows, features // group, 1)
    return (features // group, 1)


@register_quantizer("lsq")
class LSQQuantizer(Quantizer):
    def __init__(self, bits, role, features, options=None, backend="auto", rows=None, group_size=None) -> None:
        super().__init__(bits, role, features, options, backend, rows=rows, group_size=group_size)
        self.q_lo, self.q_hi = lsq_bounds(int(round(self.bits))) if self.enabled else (0, 0)
        g = self.group_size
        shape = (1,) if g is None or not self.enabled else lsq_group_step_shape(role, rows, features, g)
        # one step per tensor, or per group (quantizer state: never weight-decayed)
        self.step = nn.Parameter(torch.ones(shape))
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))

    def _view(self, x: torch.Tensor) -> torch.Tensor:
        g = self.group_size
        return x if g is None else x.unflatten(-1, (x.shape[-1] // g, g))

    @torch.no_grad()
    def _init_step(self, v: torch.Tensor) -> None:
        b = int(round(self.bits))
        if self.group_size is None:
            s0 = lsq_init_step(v, b)
        else:  # mean |v| over each group's elements (and over the tokens for activations)
            dims = tuple(range(v.dim() - self.step.dim())) + (v.dim() - 1,)
            s0 = 2 * v.abs().mean(dim=dims, keepdim=True).reshape(self.step.shape) / math.sqrt(self.q_hi)
        self.step.copy_(s0.clamp_min(1e-6).reshape(self.step.shape).to(self.step.dtype))
        self.initialized.fill_(True)

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        v = self._view(x)
        if not bool(self.initialized):
            self._init_step(v)
        grad_scale = 1.0 / math.sqrt(x.numel() / self.step.numel() * self.q_hi)
        out = LSQFunction.apply(v, self.step.to(x.dtype), self.q_lo, self.q_hi, HALF, grad_scale)
        return out.reshape(x.shape)
