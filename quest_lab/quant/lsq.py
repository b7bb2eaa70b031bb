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


@register_quantizer("lsq")
class LSQQuantizer(Quantizer):
    def __init__(self, bits, role, features, options=None, backend="auto", rows=None) -> None:
        super().__init__(bits, role, features, options, backend, rows=rows)
        self.q_lo, self.q_hi = lsq_bounds(int(round(self.bits))) if self.enabled else (0, 0)
        self.step = nn.Parameter(torch.ones(1))  # one step per tensor (1-D: quantizer state, no decay)
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def _init_step(self, x: torch.Tensor) -> None:
        s0 = lsq_init_step(x, int(round(self.bits))).clamp_min(1e-6)
        self.step.copy_(s0.reshape(1).to(self.step.dtype))
        self.initialized.fill_(True)

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        if not bool(self.initialized):
            self._init_step(x)
        grad_scale = 1.0 / math.sqrt(x.numel() * self.q_hi)
        return LSQFunction.apply(x, self.step.to(x.dtype), self.q_lo, self.q_hi, HALF, grad_scale)
